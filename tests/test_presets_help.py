"""Every flag a built-in preset uses appears in the real CLI's --help at the pinned version.

The CLIs are installed by tests/agents/install.py (PINNED_VERSIONS) and run with HOME in a
temporary folder and no network: inside ``unshare -rn`` (a new network namespace with nothing in
it) where the kernel allows it, else with the proxies pointed at a closed local port. The tests
skip only when the package registry cannot be reached.

aider-chat is too slow to install for every run (98 s); unless PLANRUN_AGENTS_FULL=1, its flags
are checked against the options page shipped in its pinned wheel
(aider/website/docs/config/options.md, the docs text generated from the same argparse parser).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from planrun.core.usage import USAGE_KINDS
from planrun.plan.presets import PINNED_VERSIONS, PRESETS, PROMPT, UNCHECKABLE
from tests.agents import install

# The help pages that document each preset's flags: top level and the subcommands it uses.
HELP_ARGS: dict[str, list[list[str]]] = {
    "claude": [["--help"]],
    "codex": [["--help"], ["exec", "--help"], ["exec", "resume", "--help"]],
    "gemini": [["--help"]],
    "opencode": [["--help"], ["run", "--help"]],
    "copilot": [["--help"]],
    "aider": [["--help"]],
}
PROMPT_MODES = {"argv", "stdin", "file", "type"}
ALLOWED_KEYS = {
    "command",
    "prompt_via",
    "prompt_command",
    "yolo_flag",
    "success",
    "failure",
    "input_pattern",
    "answers",
    "usage",
    "env",
    "secrets",
}


def words_used(preset: str) -> list[str]:
    """The flags (and subcommand/choice words) a preset passes, as they must appear in help."""
    spec = PRESETS[preset]
    tokens: list[str] = []
    for key in ("command", "prompt_command"):
        value = spec.get(key)
        if isinstance(value, list):
            tokens += [str(t) for t in value[1:]]
    yolo = spec.get("yolo_flag")
    if isinstance(yolo, str):
        tokens.append(yolo)
    elif isinstance(yolo, list):
        tokens += [str(t) for t in yolo]
    words = []
    for token in tokens:
        if token == PROMPT or token.startswith("/"):  # the prompt, a path such as /dev/stdin
            continue
        word = token.split("=", 1)[0]
        if word not in words:
            words.append(word)
    return words


def missing_from(text: str, words: list[str]) -> list[str]:
    return [w for w in words if not re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text)]


# -- the presets' shape (no install needed) --------------------------------------------------
def test_every_preset_is_pinned_or_explained() -> None:
    assert set(PRESETS) == {
        "shell",
        "claude",
        "codex",
        "gemini",
        "aider",
        "kiro",
        "copilot",
        "opencode",
    }
    assert set(PINNED_VERSIONS) | set(UNCHECKABLE) == set(PRESETS) - {"shell"}
    assert not set(PINNED_VERSIONS) & set(UNCHECKABLE)
    for registry, package, version in PINNED_VERSIONS.values():
        assert registry in ("npm", "pypi")
        assert package
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), version


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_shape(preset: str) -> None:
    spec = PRESETS[preset]
    assert set(spec) <= ALLOWED_KEYS
    assert spec["prompt_via"] in PROMPT_MODES
    assert spec["usage"] in USAGE_KINDS
    command = spec["command"]
    assert isinstance(command, list)
    assert all(isinstance(t, str) for t in command)
    assert PROMPT not in command  # the prompt is appended (argv) or piped (stdin)
    if preset == "shell":
        assert command == []
        assert spec["prompt_via"] == "argv"
        assert "yolo_flag" not in spec
        return
    follow_up = spec["prompt_command"]
    assert isinstance(follow_up, list)
    assert follow_up.count(PROMPT) == 1
    assert follow_up[0] == command[0]
    for pattern in (spec.get("input_pattern"),):
        if pattern is not None:
            re.compile(str(pattern))
    env = spec["env"]
    assert isinstance(env, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    secrets = spec["secrets"]
    assert isinstance(secrets, list)
    assert secrets
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", s) for s in secrets)


# -- the real --help of the pinned versions --------------------------------------------------
@functools.cache
def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(
            ["unshare", "-rn", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="module")
def installed() -> dict[str, Path]:
    try:
        return install.ensure(install.presets_for_tests())
    except install.RegistryUnreachable as exc:
        print(f"SKIP: {exc}")
        pytest.skip(f"package registry unreachable: {exc}")


def run_help(binary: Path, args: list[str], home: Path) -> str:
    env = {
        "PATH": f"{binary.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "TERM": "dumb",
        # if the namespace is not available: every proxied request fails at once
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    argv = [str(binary), *args]
    if _unshare_works():
        argv = ["unshare", "-rn", *argv]
    done = subprocess.run(
        argv,
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    text = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{text[-2000:]}"
    return text


@pytest.mark.agents
@pytest.mark.parametrize("preset", sorted(PINNED_VERSIONS))
def test_preset_flags_are_in_the_pinned_help(
    preset: str, installed: dict[str, Path], tmp_path: Path
) -> None:
    words = words_used(preset)
    assert words, preset
    binary = installed.get(preset) or install.agent_bin(preset)
    if binary is None:
        # Not installed by the test run (install.SLOW): the docs text in the pinned wheel.
        assert preset == "aider", preset
        wheel = install.pypi_wheel(preset)
        with zipfile.ZipFile(wheel) as archive:
            text = archive.read("aider/website/docs/config/options.md").decode()
        source = f"{wheel.name}:aider/website/docs/config/options.md"
    else:
        version = PINNED_VERSIONS[preset][2]
        text = ""
        for args in HELP_ARGS[preset]:
            text += run_help(binary, args, tmp_path)
        shown = run_help(binary, ["--version"], tmp_path)
        assert version in shown, f"{binary} --version says {shown!r}, pinned {version}"
        source = f"{binary} " + " | ".join(" ".join(a) for a in HELP_ARGS[preset])
    missing = missing_from(text, words)
    assert not missing, f"{preset}: {missing} not in {source}"
    print(f"{preset}: {len(words)} flags found in {source}")

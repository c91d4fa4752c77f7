"""Fixtures and helpers shared by the tests that run real agent CLIs.

Registered for the whole suite in tests/conftest.py (``pytest_plugins``), so test modules
use the fixtures by name without importing them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from planrun.plan.presets import PRESETS
from tests.agents import install
from tests.agents.model_server import Answer, ModelServer, ToolCall


@pytest.fixture(scope="module")
def installed() -> dict[str, Path]:
    try:
        return install.ensure(install.presets_for_tests())
    except install.RegistryUnreachable as exc:
        print(f"SKIP: {exc}")
        pytest.skip(f"package registry unreachable: {exc}")


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as running:
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def repo(tmp_path: Path, home: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    env = {**base_env(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    (path / "README.md").write_text("A repository for an agent test.\n")
    subprocess.run(["git", "-C", str(path), "add", "README.md"], check=True, env=env)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "init"], check=True, env=env)
    return path


def base_env(home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "planrun tests",
        "GIT_AUTHOR_EMAIL": "tests@planrun.invalid",
        "GIT_COMMITTER_NAME": "planrun tests",
        "GIT_COMMITTER_EMAIL": "tests@planrun.invalid",
    }


def agent_env(preset: str, binary: Path, home: Path, server: ModelServer) -> dict[str, str]:
    env = base_env(home)
    env["PATH"] = f"{binary.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    # Anything not sent to the model server directly goes to it as a proxy request: recorded
    # and refused (server.outbound()).
    env.update(
        {
            "HTTPS_PROXY": server.url,
            "HTTP_PROXY": server.url,
            "https_proxy": server.url,
            "http_proxy": server.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    preset_env = PRESETS[preset]["env"]
    assert isinstance(preset_env, dict)
    env.update({str(k): str(v) for k, v in preset_env.items()})
    return env


# -- Codex ----------------------------------------------------------------------------------
CODEX_CONFIG = """\
model = "mock-model"
model_provider = "planrun-test"
check_for_update_on_startup = false

[model_providers.planrun-test]
name = "planrun test model"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "PLANRUN_TEST_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false
"""


def codex_write(tools: frozenset[str]) -> Answer:
    """Codex's file-writing tool depends on the model family: use whichever it offers."""
    command = "printf 'hi from codex' > hello.txt"
    if "exec_command" in tools:  # unified exec (0.169.0's default for unknown models)
        return ToolCall("exec_command", {"cmd": command, "login": False, "yield_time_ms": 5000})
    if "apply_patch" in tools:
        patch = "*** Begin Patch\n*** Add File: hello.txt\n+hi from codex\n*** End Patch\n"
        return ToolCall("apply_patch", patch)
    if "shell_command" in tools:
        return ToolCall("shell_command", {"command": command})
    return ToolCall("shell", {"command": ["bash", "-c", command]})


def codex_env(installed: dict[str, Path], home: Path, server: ModelServer) -> dict[str, str]:
    codex_home = home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(CODEX_CONFIG.format(url=server.url))
    env = agent_env("codex", installed["codex"], home, server)
    env.update({"CODEX_HOME": str(codex_home), "PLANRUN_TEST_API_KEY": "dummy"})
    return env

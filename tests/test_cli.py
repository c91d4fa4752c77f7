"""The command line: help for every argument, options before or after PLAN, completion.

Issue 15: every argument says what it is for, each command's ``--help`` ends with examples
and exit codes, an option may come before PLAN (``apply --only a plan.yaml``), and
``planrun completion bash|zsh|fish`` prints a script made from the same parser.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from planrun.cli import build_parser, main
from planrun.commands import spread_lists
from tests.runs import last_run_folder

PARSER = build_parser()
COMMANDS = dict(PARSER.commands)
#: a value each positional accepts (by dest), for parsing only
POSITIONALS = {
    "plans": ["a.yaml"],
    "which": ["plan"],
    "shell": ["bash"],
    "text": ["yes"],
    "action": ["comment"],
}


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def _positionals(parser: argparse.ArgumentParser) -> list[str]:
    words: list[str] = []
    for action in _arguments(parser):
        if not action.option_strings:
            words += POSITIONALS.get(action.dest, [f"{action.dest}.yaml"])
    return words


def _parse(argv: list[str]) -> argparse.Namespace:
    return PARSER.parse_args(spread_lists(COMMANDS, argv))


def test_every_argument_has_help() -> None:
    missing = [
        f"{name} {action.dest}"
        for name, parser in [("planrun", PARSER), *COMMANDS.items()]
        for action in _arguments(parser)
        if not action.help and not isinstance(action, argparse._SubParsersAction)
    ]
    assert missing == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_help_has_examples_and_exit_codes(name: str) -> None:
    text = COMMANDS[name].format_help()
    assert "\nexamples:\n  planrun " + name in text
    assert "\nexit codes:\n  0   " in text
    assert "\n  2   " in text


def test_help_names_every_exit_code() -> None:
    for text in (PARSER.format_help(), COMMANDS["apply"].format_help()):
        for code in ("0", "1", "2", "3", "4", "130"):
            assert f"\n  {code} " in text, code
        assert "wait for a person" in text


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_may_come_before_the_positionals(name: str) -> None:
    parser = COMMANDS[name]
    positionals = _positionals(parser)
    for action in _arguments(parser):
        if not action.option_strings or action.nargs == 0:
            continue
        value = str(action.choices[0]) if action.choices else "7"  # type: ignore[index]
        flag = action.option_strings[-1]
        before = _parse([name, flag, value, *positionals])
        after = _parse([name, *positionals, flag, value])
        assert before == after, flag


@pytest.mark.parametrize(
    ("argv", "only", "force"),
    [
        ("--only a plan.yaml", ["a"], []),
        ("--only a --only b plan.yaml", ["a", "b"], []),
        ("--only a,b plan.yaml", ["a", "b"], []),
        ("--only=a,b plan.yaml", ["a", "b"], []),
        ("plan.yaml --only a b", ["a", "b"], []),  # as it always worked
        ("plan.yaml --only a b --force c d", ["a", "b"], ["c", "d"]),
        ("--only a b plan.yaml --force c", ["a", "b"], ["c"]),
        ("-j 2 plan.yaml --only a b", ["a", "b"], []),
        ("--force c plan.yaml --only a", ["a"], ["c"]),
    ],
)
def test_list_options_before_or_after_plan(argv: str, only: list[str], force: list[str]) -> None:
    args = _parse(["apply", *argv.split()])
    assert (args.plan, args.only, args.force) == ("plan.yaml", only, force)


def test_an_empty_key_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--only", "a,,b", "plan.yaml"]) == 2
    assert "a key is empty" in capsys.readouterr().err


def test_apply_with_only_before_plan_runs_that_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"], io.StringIO()) == 0
    assert main(["apply", "--only", "lint", "--progress", "none", "plan.yaml"]) == 0
    report = json.loads((last_run_folder(tmp_path / "plan.yaml") / "report.json").read_text())
    assert [t["key"] for t in report["tasks"]] == ["lint"]


def _completion(shell: str) -> str:
    out = io.StringIO()
    assert main(["completion", shell], out) == 0
    return out.getvalue()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_name_every_command_and_parse(shell: str, tmp_path: Path) -> None:
    script = _completion(shell)
    for name in COMMANDS:
        assert name in script
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / f"planrun.{shell}"
    path.write_text(script)
    check = [shell, "--no-execute" if shell == "fish" else "-n", str(path)]
    assert subprocess.run(check, capture_output=True, text=True, check=False).returncode == 0


def test_bash_completes_commands_options_choices_and_plan_files(tmp_path: Path) -> None:
    (tmp_path / "nightly.yaml").write_text("")
    (tmp_path / "planrun.bash").write_text(_completion("bash"))

    def complete(*words: str) -> list[str]:
        line = " ".join(["planrun", *words])
        script = (
            f"source planrun.bash; COMP_WORDS=({line}); COMP_CWORD={len(words)}; "
            'COMP_LINE="$*"; _shtab_planrun; printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    assert complete("app") == ["apply", "approve"]
    assert complete("apply", "--on") == ["--only", "--on-failure"]
    assert complete("graph", "nightly.yaml", "--format", "''") == ["mermaid", "dot", "json"]
    assert complete("validate", "ni") == ["nightly.yaml"]

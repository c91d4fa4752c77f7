"""Long descriptions, items and prompts against Linux's 128 KiB limit on one argv/env string."""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import pytest

from planrun.cli import main
from planrun.environment import CONTEXT_VAR_LIMIT, bounded, context_vars
from planrun.launch import MAX_ARG_STRLEN

LONG = "word " * 30000  # 150000 bytes: over 128 KiB


def test_linux_limits_one_string_to_max_arg_strlen_counting_its_nul() -> None:
    subprocess.run(["true", "x" * (MAX_ARG_STRLEN - 1)], check=True)
    with pytest.raises(OSError, match="Argument list too long") as caught:
        subprocess.run(["true", "x" * MAX_ARG_STRLEN], check=False)
    assert caught.value.errno == errno.E2BIG
    name = "PLANRUN_TASK_DESCRIPTION="
    env = {"PLANRUN_TASK_DESCRIPTION": "x" * (MAX_ARG_STRLEN - len(name))}
    with pytest.raises(OSError, match="Argument list too long") as caught:
        subprocess.run(["/bin/true"], env=env, check=False)
    assert caught.value.errno == errno.E2BIG


def test_a_short_value_is_kept_as_it_is() -> None:
    assert bounded("") == ""
    assert bounded("é" * (CONTEXT_VAR_LIMIT // 2)) == "é" * (CONTEXT_VAR_LIMIT // 2)


@pytest.mark.parametrize("unit", ["a", "é", "€", "😀", "a\udcff"])
def test_a_long_value_is_cut_on_a_character_and_says_how_long_it_was(unit: str) -> None:
    value = unit * (CONTEXT_VAR_LIMIT + 7)
    size = len(value.encode("utf-8", "surrogatepass"))
    cut = bounded(value)
    marker = f"… [truncated: {size} bytes in all]"
    assert cut.endswith(marker)
    head = cut[: -len(marker)]
    assert value.startswith(head)
    assert len(cut.encode("utf-8", "surrogatepass")) <= CONTEXT_VAR_LIMIT
    assert len(cut.encode("utf-8", "surrogatepass")) > CONTEXT_VAR_LIMIT - 8


def test_every_context_variable_is_bounded() -> None:
    item = {"id": "big", "text": LONG}
    env = context_vars(
        {"task": {"key": "T", "description": LONG, "reason": LONG}, "item": item, "attempt": 1}
    )
    assert env["PLANRUN_TASK_KEY"] == "T"
    assert env["PLANRUN_ATTEMPT"] == "1"
    for name in ("PLANRUN_TASK_DESCRIPTION", "PLANRUN_ITEM", "PLANRUN_REASON"):
        assert len(env[name].encode()) <= CONTEXT_VAR_LIMIT
        assert env[name].endswith(" bytes in all]")
    assert env["PLANRUN_TASK_DESCRIPTION"].startswith("word word ")
    assert env["PLANRUN_ITEM"].startswith(str(item)[:100])


def write_plan(tmp_path: Path, via: str, command: str) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
version: 1
name: long
providers:
  cat:
    command: [sh, -c, "{command}"]
    prompt_via: {via}
    autonomous_prompt_template: "{{{{ task.description }}}}"
tasks:
  T: {{provider: cat, description: "{LONG}"}}
""")
    return plan


def apply(plan: Path) -> int:
    return main(["apply", str(plan), "--progress", "none", "--report", str(plan) + ".json"])


def task_report(plan: Path) -> dict:  # type: ignore[type-arg]
    report = json.loads(Path(str(plan) + ".json").read_text())
    return {t["key"]: t for t in report["tasks"]}["T"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("via", "command"),
    [
        ("stdin", "cat > prompt.txt"),
        ("file", 'cat \\"$0\\" > prompt.txt'),  # the prompt file is appended to the command
    ],
)
def test_a_long_prompt_goes_through_stdin_or_a_file(
    tmp_path: Path, clean_env: Path, via: str, command: str
) -> None:
    plan = write_plan(tmp_path, via, command)
    assert apply(plan) == 0
    assert task_report(plan)["status"] == "done"
    assert (tmp_path / "prompt.txt").read_text() == LONG  # the whole prompt


def test_the_task_s_processes_get_the_description_cut_short(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
version: 1
name: long
tasks:
  T:
    description: "{LONG}"
    run: [sh, -c, 'printf %s "$PLANRUN_TASK_DESCRIPTION" > env.txt']
""")
    assert apply(plan) == 0
    seen = (tmp_path / "env.txt").read_text()
    assert seen.startswith("word word ")
    assert seen.endswith("… [truncated: 150000 bytes in all]")
    assert len(seen.encode()) <= CONTEXT_VAR_LIMIT


def test_a_prompt_too_long_for_argv_fails_to_start_and_says_what_to_do(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = write_plan(tmp_path, "argv", "true")
    assert apply(plan) == 1
    task = task_report(plan)
    assert task["status"] == "failed"
    assert task["attempts"][0]["outcome"] == "startup_failed"
    assert task["reason"] == (
        "startup_failed: the prompt is 150000 bytes: Linux refuses to start a command with "
        "an argument over 131071 bytes (MAX_ARG_STRLEN); set prompt_via: stdin or "
        "prompt_via: file on provider cat to send long prompts"
    )


def test_a_command_argument_too_long_fails_to_start_and_names_it(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
version: 1
name: long
tasks:
  T: {{description: "{LONG}", run: [echo, "{{{{ task.description }}}}"]}}
""")
    assert apply(plan) == 1
    reason = task_report(plan)["reason"]
    assert reason.startswith("startup_failed: argument 1 of the command is 150000 bytes: ")
    assert reason.endswith("pass long text through a file or stdin instead")

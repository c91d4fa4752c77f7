"""Long descriptions, items and prompts against Linux's 128 KiB limit on one argv/env string,
and NUL bytes, which no argv/env string can hold."""

from __future__ import annotations

import errno
import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from planrun.cli import main
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan, Task
from planrun.run.environment import CONTEXT_VAR_LIMIT, bounded, context_vars
from planrun.run.launch import MAX_ARG_STRLEN, NulByte, build_launch

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


# --- NUL bytes ------------------------------------------------------------------------------

PROMPT_WITH_NUL = "Fix the build.\nThen run the tests\0 and commit.\n"


def test_exec_refuses_a_nul_byte_in_an_argument() -> None:
    with pytest.raises(ValueError, match="embedded null byte"):
        subprocess.run(["true", "a\0b"], check=False)


def _launch_context(plan: CompiledPlan, task: Task, worktree: str) -> dict[str, Any]:
    """The context a run renders with (as planrun.run.context builds it)."""
    return {
        "task": task.template_context(),
        "item": task.item,
        "project": plan.project_context(task.project),
        "plan": plan.plan_context(),
        "run": {"id": "run-1", "started_at": "2026-01-01T00:00:00Z"},
        "attempt": 1,
        "turn": 1,
        "prompt": "",
        "worktree": worktree,
        "branch": "",
        "log_path": "/log",
    }


@pytest.mark.parametrize("via", ["argv", "stdin", "file", "type"])
def test_a_prompt_file_with_a_nul_byte_fails_to_start_and_says_why(
    tmp_path: Path, via: str
) -> None:
    """The text of a prompt_file is checked when the plan is validated; a prompt holding a
    NUL that still reaches launch (here: the file's text, put into the task) starts nothing
    and writes no prompt file."""
    prompt_file = tmp_path / "prompt.md"
    prompt_file.write_text(PROMPT_WITH_NUL, encoding="utf-8")
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(f"""\
version: 1
providers:
  bot: {{command: [bot, --run, "{{{{ run.id }}}}"], prompt_via: {via}}}
tasks:
  T: {{provider: bot, prompt: "placeholder"}}
""")
    plan = load_plan(plan_path)
    task = replace(plan.tasks["T"], prompt=prompt_file.read_text(encoding="utf-8"))
    prompt_dir = tmp_path / "prompts"
    with pytest.raises(NulByte) as caught:
        build_launch(task, plan.providers["bot"], _launch_context(plan, task, "/wt"), prompt_dir)
    assert caught.value.field == "the prompt (the task's prompt or prompt_file)"
    assert caught.value.index == PROMPT_WITH_NUL.index("\0")
    assert caught.value.message == (
        "the prompt (the task's prompt or prompt_file) contains a NUL byte (\\0) at line 2, "
        "column 19: a NUL byte cannot be passed to a process; remove it from the plan or the "
        "file it came from"
    )
    assert not prompt_dir.exists()


def test_validation_refuses_a_prompt_file_with_a_nul_byte_before_any_side_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "prompt.md").write_text(PROMPT_WITH_NUL, encoding="utf-8")
    (tmp_path / "plan.yaml").write_text("""\
version: 1
tasks:
  T: {provider: claude, prompt_file: prompt.md}
""")
    monkeypatch.chdir(tmp_path)
    assert main(["apply", "plan.yaml", "--progress", "none"]) == 2
    assert capsys.readouterr().err == (
        "plan.yaml:3:38: prompt_file 'prompt.md' contains a NUL character (\\0) on line 2, "
        "column 19, which cannot be passed to a process; remove it\n1 error\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml", "prompt.md"]


@pytest.mark.parametrize(
    ("run", "field"),
    [
        ('[echo, "{{ worktree }}"]', "argument 1 of the task's run command"),
        ('{shell: "ls {{ worktree }}"}', "the shell text of the task's run command"),
    ],
)
def test_a_command_given_a_nul_byte_at_run_time_fails_to_start_and_names_it(
    tmp_path: Path, run: str, field: str
) -> None:
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(f"version: 1\ntasks:\n  T: {{run: {run}}}\n")
    plan = load_plan(plan_path)
    task = plan.tasks["T"]
    with pytest.raises(NulByte) as caught:
        build_launch(task, plan.providers["shell"], _launch_context(plan, task, "/w\0t"), tmp_path)
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field} contains a NUL byte (\\0) at character ")
    assert caught.value.message.endswith(
        ": a NUL byte cannot be passed to a process; remove "
        "it from the plan or the file it came from"
    )


def test_a_provider_command_given_a_nul_byte_at_run_time_names_its_argument(
    tmp_path: Path,
) -> None:
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text("""\
version: 1
providers:
  bot: {command: [bot, --in, "{{ worktree }}"], prompt_via: stdin}
tasks:
  T: {provider: bot, prompt: "Fix it"}
""")
    plan = load_plan(plan_path)
    task = plan.tasks["T"]
    with pytest.raises(NulByte) as caught:
        build_launch(task, plan.providers["bot"], _launch_context(plan, task, "/w\0t"), tmp_path)
    assert caught.value.message == (
        "argument 2 of provider bot's command contains a NUL byte (\\0) at character 3: a NUL "
        "byte cannot be passed to a process; remove it from the plan or the file it came from"
    )


def test_a_nul_byte_only_a_run_produces_fails_that_task_to_start(
    tmp_path: Path, clean_env: Path
) -> None:
    """Validation renders with sample values; a template that gives a NUL only with the run's
    own values is caught at launch: startup_failed, naming the argument, nothing run."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("""\
version: 1
name: nul
tasks:
  T:
    run: [sh, -c, "echo ran > ran.txt", '{{ "\\x00" if run.id != "run-id" else "" }}']
""")
    assert main(["validate", str(plan)]) == 0
    assert apply(plan) == 1
    task = task_report(plan)
    assert task["status"] == "failed"
    assert task["attempts"][0]["outcome"] == "startup_failed"
    assert task["reason"] == (
        "startup_failed: argument 3 of the task's run command contains a NUL byte (\\0) at "
        "character 1: a NUL byte cannot be passed to a process; remove it from the plan or the "
        "file it came from"
    )
    assert not (tmp_path / "ran.txt").exists()


def test_a_prompt_file_saved_as_utf16_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "prompt.md").write_bytes("Fix it.\n".encode("utf-16-le"))  # no BOM: valid UTF-8
    (tmp_path / "plan.yaml").write_text("""\
version: 1
tasks:
  T: {provider: claude, prompt_file: prompt.md}
""")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "plan.yaml"]) == 2
    assert capsys.readouterr().err == (
        "plan.yaml:3:38: prompt_file 'prompt.md' contains a NUL character (\\0) on line 1, "
        "column 2, which cannot be passed to a process; remove it (the file looks like UTF-16: "
        "save it as UTF-8)\n1 error\n"
    )

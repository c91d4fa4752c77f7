"""The plan model: durations, strict fields, commands, inheritance (defaults → parent → task)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from planrun.core.outcomes import DEFAULT_RETRY_ON, Outcome
from planrun.plan.durations import format_duration, parse_duration
from planrun.plan.model import PlanFile, ShellCommand, TaskSpec
from planrun.plan.resolved import CommandSpec
from tests.plan.helpers import compile_text, errors_of


def test_durations() -> None:
    cases = {
        "90s": 90,
        "10m": 600,
        "1h30m": 5400,
        "1h 30m": 5400,
        "1.5h": 5400,
        "250ms": 0.25,
        "2d": 172800,
        "1m30s": 90,
    }
    assert {text: parse_duration(text) for text in cases} == cases


def test_bad_durations_say_how_to_write_one() -> None:
    for text in ["10", "10x", "", "-5m", "1m30", "m", "1.h"]:
        with pytest.raises(ValueError, match="write it like 90s, 10m, 1h30m or 250ms"):
            parse_duration(text)
    with pytest.raises(ValueError, match="longer than zero"):
        parse_duration("0s")


def test_format_duration_reads_back() -> None:
    for seconds, text in [(5400, "1h30m"), (0.25, "250ms"), (90061, "1d1h1m1s"), (1.5, "1.5s")]:
        assert format_duration(seconds) == text
        assert parse_duration(text) == seconds
    for seconds in [1, 59, 61, 3599, 3601, 86399, 86401, 1234567]:
        assert parse_duration(format_duration(seconds)) == seconds


def _plan(**task: object) -> dict[str, object]:
    return {"version": 1, "tasks": {"a": {"run": ["true"], **task}}}


def test_values_are_never_coerced() -> None:
    for field, value in [("priority", "3"), ("review", "yes"), ("priority", 1.5)]:
        with pytest.raises(ValidationError):
            PlanFile.model_validate(_plan(**{field: value}))


def test_commands_are_argv_or_shell() -> None:
    plan = PlanFile.model_validate(_plan(run={"shell": "make all"}, verify=["make", "test"]))
    spec = plan.tasks["a"]
    assert spec.run == ShellCommand(shell="make all")
    assert spec.verify == ["make", "test"]
    assert CommandSpec.of(spec.run).as_data() == {"shell": "make all"}
    with pytest.raises(ValidationError, match="write a command as a list"):
        PlanFile.model_validate(_plan(run="make all"))


def test_project_setup_accepts_text_as_a_shell_command() -> None:
    plan = PlanFile.model_validate(
        {**_plan(), "projects": {"p": {"path": ".", "setup": ["pip install -e .", ["ls"]]}}}
    )
    assert plan.projects["p"].setup == [ShellCommand(shell="pip install -e ."), ["ls"]]


def test_log_limit_is_a_size_with_a_unit_or_null() -> None:
    def limit(value: object) -> int | None:
        plan = PlanFile.model_validate({**_plan(), "settings": {"log_limit": value}})
        return plan.settings.log_limit

    assert PlanFile.model_validate(_plan()).settings.log_limit == 100_000_000
    assert limit("5MiB") == 5 * 1024 * 1024
    assert limit("1.5 KB") == 1500
    assert limit(None) is None
    for bad in ("0B", "12", "5 TB", 12, True):
        with pytest.raises(ValidationError):
            limit(bad)


def test_needs_and_blocked_by_are_aliases_but_exclusive() -> None:
    assert TaskSpec.model_validate({"blocked_by": ["x"]}).dependencies == ["x"]
    assert TaskSpec.model_validate({"needs": ["y"]}).dependencies == ["y"]
    with pytest.raises(ValidationError, match="use either needs or blocked_by"):
        TaskSpec.model_validate({"needs": ["x"], "blocked_by": ["x"]})


def test_blocked_by_links_like_needs(tmp_path: Path) -> None:
    plan = compile_text(
        """
        version: 1
        tasks:
          a: {run: [echo]}
          b: {blocked_by: [a], run: [echo]}
        """,
        tmp_path,
    )
    assert plan.graph.waits_for("b") == ["a"]


def test_retry_on_takes_only_retryable_outcomes() -> None:
    spec = TaskSpec.model_validate({"retry": {"on": ["failed", "interrupted"]}})
    assert spec.retry is not None
    assert spec.retry.on == [Outcome.FAILED, Outcome.INTERRUPTED]
    with pytest.raises(ValidationError, match="conflict is never retried blindly"):
        TaskSpec.model_validate({"retry": {"on": ["conflict"]}})


INHERITANCE = """
version: 1
settings:
  secrets: [S1, S2]
defaults:
  timeout: 5m
  env: {A: "1", B: "1"}
  tags: [d]
  secrets: [S1]
  retry: {attempts: 3, backoff: {initial: 2s, factor: 3}}
  hooks:
    on_task_start: [[echo, d]]
    on_task_retry: [[echo, dr]]
tasks:
  epic:
    title: Epic
    priority: 5
    timeout: 1m
    env: {B: "2", C: "2"}
    tags: [e]
    retry: {backoff: {max: 1m}, on: [failed]}
    hooks: {on_task_start: [[echo, e]]}
  child:
    parent: epic
    run: [echo]
    env: {C: "3"}
    tags: [c]
    secrets: [S2]
    retry: {attempts: 5}
  grandchild-group:
    parent: epic
  leaf:
    parent: grandchild-group
    run: [echo]
    priority: 1
  plain:
    run: [echo]
"""


def test_a_child_inherits_defaults_then_its_parent_then_its_own(tmp_path: Path) -> None:
    child = compile_text(INHERITANCE, tmp_path).tasks["child"]
    assert child.priority == 5
    assert child.timeout == 60
    assert dict(child.env) == {"A": "1", "B": "2", "C": "3"}
    assert child.tags == ("d", "e", "c")
    assert child.secrets == ("S1", "S2")
    retry = child.retry
    assert (retry.attempts, retry.initial, retry.factor, retry.max) == (5, 2, 3, 60)
    assert retry.jitter == 0.2  # built in
    assert retry.on == frozenset({Outcome.FAILED})
    assert child.hook_commands("on_task_start") == (CommandSpec(argv=("echo", "e")),)
    assert child.hook_commands("on_task_retry") == (CommandSpec(argv=("echo", "dr")),)


def test_inheritance_runs_through_every_ancestor(tmp_path: Path) -> None:
    leaf = compile_text(INHERITANCE, tmp_path).tasks["leaf"]
    assert leaf.priority == 1
    assert leaf.timeout == 60
    assert leaf.parent == "grandchild-group"
    assert dict(leaf.env) == {"A": "1", "B": "2", "C": "2"}


def test_a_task_without_parent_gets_defaults_over_built_ins(tmp_path: Path) -> None:
    plain = compile_text(INHERITANCE, tmp_path).tasks["plain"]
    assert plain.priority == 0
    assert plain.timeout == 300
    assert plain.retry.attempts == 3
    assert plain.retry.max == 300  # built in
    assert plain.retry.on == frozenset(DEFAULT_RETRY_ON)


def test_built_in_defaults(tmp_path: Path) -> None:
    task = compile_text("version: 1\ntasks:\n  a: {run: [echo]}\n", tmp_path).tasks["a"]
    assert (task.provider, task.backend, task.kind) == ("shell", "subprocess", "work")
    assert (task.timeout, task.idle_timeout, task.input_timeout) == (3600, None, 600)
    assert (task.retry.attempts, task.max_turns, task.autonomous, task.review) == (
        1,
        3,
        True,
        False,
    )
    assert task.run_when == "success"


def test_a_task_with_run_is_a_shell_task_whatever_the_default_provider(tmp_path: Path) -> None:
    plan = compile_text(
        """
        version: 1
        defaults: {provider: claude}
        tasks:
          cmd: {run: [echo, hi]}
          agent: {title: Fix it}
        """,
        tmp_path,
    )
    assert plan.tasks["cmd"].provider == "shell"
    assert plan.tasks["agent"].provider == "claude"


def test_children_inherit_their_parents_needs(tmp_path: Path) -> None:
    plan = compile_text(
        """
        version: 1
        tasks:
          setup: {run: [echo]}
          epic: {needs: [setup]}
          one: {parent: epic, run: [echo]}
          two: {parent: epic, run: [echo], needs: [one]}
        """,
        tmp_path,
    )
    assert plan.graph.waits_for("one") == ["setup"]
    assert plan.graph.waits_for("two") == ["one", "setup"]
    assert plan.graph.waits_for("epic") == ["one", "two"]


def test_a_parent_needing_its_own_child_is_explained(tmp_path: Path) -> None:
    assert errors_of(
        """
        version: 1
        tasks:
          epic: {needs: [one]}
          one: {parent: epic, run: [echo]}
        """,
        tmp_path,
    ) == [
        "4:18: epic needs one, which is one of its own children (a parent already waits "
        "for its children)"
    ]


def test_the_plan_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    text = "version: 1\ntasks:\n  a: {run: [echo]}\n"
    assert compile_text(text, tmp_path, "release-2.yaml").name == "release-2"
    assert errors_of(text, tmp_path, "my plan.yaml") == [
        "1:1: the file name 'my plan' cannot name the plan; add `name:`"
    ]

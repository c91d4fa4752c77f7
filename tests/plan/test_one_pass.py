"""`planrun validate` reports every problem of a plan in one pass (issue 15).

A misspelt key no longer hides a cycle, an unknown provider or an undefined template
name; a problem that does hide checks says which, once. The property: junk written into
any fields of a valid plan is reported on exactly the junk's lines, never elsewhere.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planrun.errors import PlanError
from planrun.plan.load import load_plan
from tests.plan.helpers import compile_text, errors_of

#: A valid plan that uses every kind of link; ``#J`` marks a line whose value may be junked.
BASE = """\
version: 1
name: base
settings:
  max_concurrent: 2 #J
  secrets: [TOKEN] #J
defaults:
  provider: shell #J
  timeout: 10m #J
providers:
  bot:
    command: [echo] #J
    prompt_via: stdin #J
projects:
  api:
    path: . #J
    integrate: none #J
hooks:
  on_run_end: [[echo, "{{ run.status }}"]] #J
tasks:
  EPIC:
    title: "Epic {{ plan.name }}" #J
  a:
    parent: EPIC #J
    run: [echo, "{{ task.key }}"] #J
    secrets: [TOKEN] #J
  b:
    needs: [a] #J
    provider: bot #J
    prompt: "Work on {{ task.title }}" #J
    project: api #J
  c:
    for_each: {items: [x, y]} #J
    run: [echo, "{{ item }}"] #J
  d:
    for_each: {same_as: c} #J
    needs: ["c[x]"] #J
    run: [echo, "{{ item }}"] #J
    timeout: 5m #J
  e:
    needs: [d, b] #J
    run: {shell: "echo {{ task.key }}"} #J
    retry: {attempts: 2} #J
"""
LINES = BASE.splitlines()
JUNKABLE = [n for n, line in enumerate(LINES) if line.endswith(" #J")]
#: values no field of a plan accepts
JUNK = ["{zz: 1}", "[{zz: 1}]"]


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="planrun-one-pass-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _junked(choices: dict[int, str]) -> str:
    lines = list(LINES)
    for n, junk in choices.items():
        key = lines[n].split(":", 1)[0]
        lines[n] = f"{key}: {junk}"
    return "\n".join(lines) + "\n"


def test_the_base_plan_is_valid(folder: Path) -> None:
    plan = compile_text(BASE, folder)
    assert {"a", "b", "c[x]", "d[y]", "e"} <= set(plan.tasks)


@settings(max_examples=60, deadline=None, database=None)
@given(
    choices=st.dictionaries(
        st.sampled_from(JUNKABLE), st.sampled_from(JUNK), min_size=1, max_size=4
    )
)
def test_junk_is_reported_where_it_is_and_nowhere_else(
    folder: Path, choices: dict[int, str]
) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(folder / "plan.yaml", _junked(choices))
    lines = {d.location.line - 1 for d in caught.value.diagnostics}
    assert lines == set(choices), [str(d) for d in caught.value.diagnostics]


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(choices=st.dictionaries(st.sampled_from(JUNKABLE), st.sampled_from(JUNK), max_size=2))
def test_a_cycle_and_an_undefined_name_are_reported_beside_any_junk(
    folder: Path, choices: dict[int, str]
) -> None:
    """Whatever else is broken, the problems of two tasks that no junk touches are found."""
    extra = (
        "  x:\n    needs: [y]\n    run: [echo, '{{ task.nope }}']\n"
        "  y:\n    needs: [x]\n    run: [echo, ok]\n"
    )
    with pytest.raises(PlanError) as caught:
        load_plan(folder / "plan.yaml", _junked(choices) + extra)
    messages = [d.message for d in caught.value.diagnostics]
    assert any(m.startswith("dependency cycle x → y → x") for m in messages), messages
    assert any(m.startswith("task.nope is undefined") for m in messages), messages


def test_a_problem_that_hides_checks_says_which_once(tmp_path: Path) -> None:
    found = errors_of(
        """\
        version: 1
        providers:
          bot: {command: [bot], prompt_via: pigeon}
        tasks:
          a: {provider: bot, prompt: "{{ task.nope }}"}
          b: {provider: bot, prompt: hi}
          c: {run: {shel: make}}
        """,
        tmp_path,
    )
    assert found == [
        "3:37: providers.bot.prompt_via: expected 'argv', 'stdin', 'file' or 'type'; got text"
        " 'pigeon'; this hides the checks of tasks a and b",
        "7:12: tasks.c.run: a shell command is written {shell: 'text'}; unknown key 'shel'"
        " (did you mean 'shell'?); this hides the other checks of task c",
    ]


def test_a_syntax_error_says_it_hides_everything(tmp_path: Path) -> None:
    assert errors_of("version: 1\ntasks: [a\n", tmp_path)[0].endswith(
        "; this hides every other check of the plan"
    )


def test_a_fan_out_that_is_cut_drops_the_needs_on_its_items(tmp_path: Path) -> None:
    """A dependent of one item of a broken fan-out is not told the item is unknown."""
    found = errors_of(
        """\
        version: 1
        tasks:
          a: {for_each: {items: [x], glob: "*"}, run: [echo, "{{ item }}"]}
          b: {for_each: {same_as: a}, run: [echo, "{{ item }}"]}
          c: {needs: ["a[x]", "b[x]"], run: [echo, "{{ task.nope }}"]}
        """,
        tmp_path,
    )
    assert len(found) == 2, found
    assert found[0].endswith("this hides the other checks of tasks a and b")
    assert found[1].startswith("5:44: task.nope is undefined")


def test_cut_secrets_and_defaults_invent_nothing(tmp_path: Path) -> None:
    found = errors_of(
        """\
        version: 1
        settings: {secrets: [TOKEN, "not a name"]}
        defaults: {provider: [claude]}
        tasks:
          a: {prompt: hi}
          b: {run: [echo, ok], secrets: [TOKEN]}
        """,
        tmp_path,
    )
    assert [f.split(": ", 1)[0] for f in found] == ["2:29", "3:22"]
    assert found[1].endswith("this hides the checks of task a")


def test_values_yaml_refuses_hide_no_other_task(tmp_path: Path) -> None:
    """An unsupported tag or a NUL character is cut like a value the schema refuses."""
    found = errors_of(
        """\
        version: 1
        tasks:
          a: {run: [echo, !env HOME]}
          b: {run: [echo, "x\\0y"], needs: [c]}
          c: {run: [echo, ok], needs: [b]}
          d: {run: [echo, "{{ task.nope }}"]}
        """,
        tmp_path,
    )
    assert [f.split(": ", 1)[1].split(";")[0][:24] for f in found] == [
        "the YAML tag !env is not",
        "this text contains a NUL",
        "dependency cycle b → c →",
        "task.nope is undefined",
    ]
    assert found[0].endswith("this hides the other checks of task a")


def test_a_tag_on_version_hides_everything(tmp_path: Path) -> None:
    found = errors_of("version: !env V\ntasks: {a: {run: [true]}}\n", tmp_path)
    assert found == [
        "1:10: the YAML tag !env is not supported; plans are plain YAML (remove the tag);"
        " this hides every other check of the plan"
    ]

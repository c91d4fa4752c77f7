"""Templates: strict undefined names found at validate time, shell quoting, one-pass rendering,
the sandbox."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from planrun.plan import templates
from planrun.plan.item import Item
from planrun.plan.templates import TemplateProblem, check, render, render_argv
from tests.plan.helpers import compile_text, errors_of

HOSTILE = ["$(touch pwned)", "`touch pwned`", "'; touch pwned; echo '", "a b\nc", "*", "-n", ""]


def test_an_undefined_variable_is_a_located_error_at_validate_time(tmp_path: Path) -> None:
    assert errors_of(
        """
        version: 1
        tasks:
          greet:
            run: [echo, "hello {{ task.titel }}"]
        """,
        tmp_path,
    ) == ["5:17: task.titel is undefined (did you mean task.title?)"]


def test_an_undefined_name_in_a_literal_block_points_at_its_line(tmp_path: Path) -> None:
    assert errors_of(
        """
        version: 1
        tasks:
          a:
            provider: claude
            prompt: |
              Fix {{ task.key }}.
              Then {{ nothing }}.
        """,
        tmp_path,
    ) == [
        "8:7: nothing is undefined; templates can use attempt, branch, item, plan, project, "
        "prompt, run, task, turn, verify, worktree"
    ]


def test_undefined_messages_name_the_path() -> None:
    context = {"task": {"key": "K", "title": "T"}, "item": None, "plan": {"name": "p"}}
    cases = {
        "{{ task.nam }}": "task.nam is undefined; task has key, title",
        "{{ item.path }}": "item.path is undefined: this task has no for_each, so it has no item",
        "{{ plan.nme }}": "plan.nme is undefined (did you mean plan.name?)",
        "{{ tsk.key }}": "tsk is undefined (did you mean task?)",
    }
    for text, message in cases.items():
        with pytest.raises(TemplateProblem) as caught:
            render(text, context)
        assert caught.value.message == message


@pytest.mark.parametrize("value", HOSTILE)
def test_shell_templates_quote_every_inserted_value(value: str, tmp_path: Path) -> None:
    command = render("printf '%s' {{ value }}", {"value": value}, shell=True)
    done = subprocess.run(
        ["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout == value
    assert not (tmp_path / "pwned").exists()


def test_shell_quoting_of_item_fields_and_loops(tmp_path: Path) -> None:
    item = Item("x", {"id": "x", "paths": ["a b.py", "$(touch pwned).py"]})
    command = render(
        'for f in {% for p in item.paths %}{{ p }} {% endfor %}; do echo "[$f]"; done',
        {"item": item},
        shell=True,
    )
    done = subprocess.run(
        ["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout == "[a b.py]\n[$(touch pwned).py]\n"
    assert not (tmp_path / "pwned").exists()


def test_argv_templates_render_each_element_into_exactly_one_argument() -> None:
    for value in HOSTILE:
        argv = render_argv(["echo", "--", "{{ v }}", "x{{ v }}y"], {"v": value})
        assert argv == ["echo", "--", value, f"x{value}y"]


def test_inserted_text_is_never_rendered_again() -> None:
    context = {"task": {"description": "{{ 7*7 }} {% if true %}x{% endif %}"}}
    assert render("Do: {{ task.description }}", context) == (
        "Do: {{ 7*7 }} {% if true %}x{% endif %}"
    )
    assert render("{{ task.description }}", context, shell=True) == (
        "'{{ 7*7 }} {% if true %}x{% endif %}'"
    )


def test_task_text_from_an_item_stays_literal_in_the_prompt(tmp_path: Path) -> None:
    plan = compile_text(
        """
        version: 1
        tasks:
          fix:
            provider: claude
            title: "Fix {{ item.id }}"
            description: "Look at {{ item.note }}"
            for_each:
              items: [{id: a, note: "{{ 7*7 }}"}]
        """,
        tmp_path,
    )
    task = plan.tasks["fix[a]"]
    assert task.description == "Look at {{ 7*7 }}"
    template = plan.providers["claude"].autonomous_prompt_template
    prompt = render(template, {"task": task.template_context(), "item": task.item})
    assert "Look at {{ 7*7 }}" in prompt
    assert "49" not in prompt


def test_raw_blocks_keep_braces() -> None:
    assert render("{% raw %}{{ literal }}{% endraw %}", {}) == "{{ literal }}"


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ task.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ task.update({'key': 'x'}) }}",
        "{{ 'x' * 1000000000 }}",
        "{{ [0] * 10 ** 9 }}",
        "{{ 9 ** 9999999 }}",
    ],
)
def test_the_sandbox_refuses_private_attributes_mutation_and_huge_values(text: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        render(text, {"task": {"key": "k"}})
    assert "(templates run in a sandbox)" in caught.value.message


def test_a_mapping_field_wins_over_a_dict_method() -> None:
    batch = Item("0", {"id": "0", "items": ["a", "b"], "values": 3})
    assert render("{{ item.items | join(',') }} {{ item.values }}", {"item": batch}) == "a,b 3"
    assert render("{{ item.keys() | list | length }}", {"item": batch}) == "3"


@pytest.mark.parametrize(
    "text",
    [
        "plain text",
        "{{ task.key }}",
        "{{ task['key'] }} and {{ item.path }}",
        "{{ task.missing }}",
        "{{ item.path }}",
        "{{ nope }}",
        "{{ task.key | upper }}",
        "{% if task.key %}{{ task.nope }}{% endif %}",
        "{{ task.key.__class__ }}",
        "{{ task.items }}",
        "{{ range }}",
        "{{ task.key",
    ],
)
def test_check_fails_exactly_when_render_fails(text: str) -> None:
    for context in ({"task": {"key": "k"}, "item": None}, {"task": {"key": "k"}, "item": {}}):
        assert _problem(check, text, context) == _problem(render, text, context)


def _problem(function: Callable[..., object], text: str, context: dict[str, object]) -> str | None:
    try:
        function(text, context)
    except TemplateProblem as exc:
        return exc.message
    return None


def test_syntax_errors_report_the_template_line() -> None:
    with pytest.raises(TemplateProblem) as caught:
        render("line one\n{{ broken", {})
    assert (caught.value.message, caught.value.line) == (
        "template syntax error: unexpected end of template, expected 'end of print statement'.",
        2,
    )
    assert templates.is_template("a {# comment #}")
    assert not templates.is_template("a { b } c")

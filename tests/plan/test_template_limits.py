"""Templates cannot exhaust CPU or memory: loops, ranges, the text a template builds and its
time are bounded, each with a located error (README, "Template limits").

A hostile template is rendered in a child process with a memory ceiling and a deadline, so
that a missing bound fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from planrun.plan import template_limits
from planrun.plan.templates import TemplateProblem, render

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CEILING = 1536 * 2**20  # far above what a bounded template needs

_RENDER = """
import json, sys
from planrun.plan.templates import TemplateProblem, render
try:
    out = render(sys.argv[1], {"task": {"key": "K"}})
    print(json.dumps({"ok": len(out)}))
except TemplateProblem as e:
    print(json.dumps({"problem": e.message, "line": e.line}))
"""


def _ceiling() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CEILING, MEMORY_CEILING))


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def render_in_child(text: str) -> dict[str, object]:
    """What rendering ``text`` gives, in a child that may use ~1.5 GB and 60 s at most."""
    out = subprocess.run(
        [sys.executable, "-c", _RENDER, text],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_ceiling,
        env=_child_env(),
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, object] = json.loads(out.stdout)
    return result


HOSTILE = {
    "nested huge ranges": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "range(100000) has more than 10,000 items",
    ),
    "nested loops": (
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "loops more than 100,000 times",
    ),
    "a loop of large strings": (
        "{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}",
        "more than 4,194,304 characters",
    ),
    "doubling in a namespace": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
        "more than 4,194,304 characters",
    ),
    "doubling with +": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "more than 4,194,304 characters",
    ),
    "a set block": (
        "{% set s %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}",
        "more than 4,194,304 characters",
    ),
    "a list of shared strings joined": (
        "{{ (['x' * 100000] * 1000) | join }}",
        "more than 4,194,304 characters",
    ),
    "a wide centre": ("{{ 'x' | center(1000000000) }}", "more than 4,194,304 characters"),
    "a wide ljust": ("{{ 'x'.ljust(1000000000) }}", "more than 4,194,304 characters"),
    "replace as an amplifier": (
        "{{ ('x' * 100000) | replace('x', 'y' * 100000) }}",
        "more than 4,194,304 characters",
    ),
    "a printf width": ("{{ '%999999999s' | format('x') }}", "more than 4,194,304 characters"),
    "a % width": ("{{ '%999999999s' % 'x' }}", "more than 4,194,304 characters"),
    "a str.format width": ("{{ '{:>999999999}'.format(1) }}", "more than 4,194,304 characters"),
    "expandtabs": ("{{ ('\t' * 100000).expandtabs(100000) }}", "more than 4,194,304 characters"),
    "indent": ("{{ ('x\n' * 50000) | indent(100000) }}", "more than 4,194,304 characters"),
    "a recursive loop": (
        "{% for x in range(10) recursive %}{% if loop.depth < 12 %}{{ loop(range(10)) }}"
        "{% endif %}{% endfor %}",
        "loops more than 100,000 times",
    ),
    "lipsum": ("{{ lipsum(100000000) }}", "lipsum is undefined"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_template_is_refused_quickly(name: str) -> None:
    text, message = HOSTILE[name]
    started = time.monotonic()
    result = render_in_child(text)
    assert message in str(result.get("problem")), result
    assert time.monotonic() - started < 30


def test_exponential_macro_recursion_runs_out_of_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_limits, "MAX_SECONDS", 0.5)
    text = (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}\n"
        "{{ f(60) }}"
    )
    started = time.monotonic()
    with pytest.raises(TemplateProblem, match=r"ran for more than 0\.5 s") as caught:
        render(text, {})
    assert time.monotonic() - started < 10
    assert caught.value.line == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{% for i in range(10000) %}{% endfor %}{{ range(10000) | sum }}", "49995000"),
        ("{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}ok", "ok"),
        ("{{ '%d' | format(12345678901) }}", "12345678901"),
        ("{{ '{:>5}'.format(1) }}", "    1"),
        ("{{ ('x' * 100000) | replace('x', 'yy') | length }}", "200000"),
        ("{{ (['ab'] * 1000) | join(', ') | length }}", "3998"),
        ("{{ task.key | center(9) }}", "    K    "),
        ("{% for x in range(3) recursive %}{{ x }}{% endfor %}", "012"),
        (
            "{% for x in [3, 1, 2] if x > 1 %}{{ loop.index }}{{ loop.last }}{% endfor %}",
            "1False2True",
        ),
    ],
)
def test_real_templates_are_well_within_the_bounds(text: str, expected: str) -> None:
    assert render(text, {"task": {"key": "K"}}) == expected


def test_a_megabyte_prompt_renders() -> None:
    text = "{% for i in range(1000) %}{{ task.key * 1000 }}\n{% endfor %}"
    assert len(render(text, {"task": {"key": "K"}})) == 1001000


def test_validate_refuses_a_loop_bomb_with_a_located_error(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        textwrap.dedent(
            """\
            version: 1
            tasks:
              A:
                provider: claude
                prompt: |
                  Hello.
                  {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "planrun", "validate", str(plan)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_ceiling,
        env=_child_env(),
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert f"{plan}:7:7: template: range(100000) has more than 10,000 items" in out.stderr, (
        out.stderr
    )


@pytest.mark.parametrize(
    "text", ["{{ '%*s' | format(999999999, 'x') }}", "{{ '{:>{}}'.format(1, 999999999) }}"]
)
def test_widths_passed_as_arguments_are_bounded_too(text: str) -> None:
    with pytest.raises(TemplateProblem, match="more than 4,194,304 characters"):
        render(text, {})

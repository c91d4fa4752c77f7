"""What ``planrun apply`` imports, and what start-up work must not change.

networkx (only used to explain a dependency cycle) and Jinja2 (only used for text that holds
template syntax) are imported when needed, not at start-up: each check runs planrun in a
fresh interpreter and reads ``sys.modules`` at the end. The fingerprint tests pin values
that users' state databases hold: a change to how fingerprints are computed must never
change them. No test here measures time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from planrun.core.fingerprint import FORMAT, _digest, definition, fingerprint
from planrun.plan import templates
from planrun.plan.load import load_plan
from tests.plan.test_graph import CYCLE

ROOT = Path(__file__).resolve().parent.parent

#: Runs ``planrun ARGS`` in-process (as the console script does), then prints its exit code
#: and every module it imported, as the last line of stdout.
_RUN = """\
import json, sys
from planrun.cli import main
code = main(sys.argv[1:], out=sys.stderr)
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _planrun(folder: Path, *args: str) -> tuple[int, set[str], str]:
    """Exit code, imported modules and stderr of ``planrun ARGS`` in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "PLANRUN_FAULT_AT"}
    env.update({"CI": "true", "PYTHONPATH": str(ROOT)})
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    return result["code"], set(result["modules"]), done.stderr


def _write(folder: Path, text: str) -> Path:
    path = folder / "plan.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


PLAIN = """\
version: 1
name: plain
tasks:
  first:
    title: The first step
    run: [sh, -c, "echo one > first.out"]
  second:
    needs: [first]
    env: {WHO: second}
    run: {shell: "echo $WHO > second.out"}
  checks:
    needs: [second]
    for_each: {items: [a, b]}
    run: ["true"]
"""


def test_apply_without_cycles_or_templates_imports_neither_networkx_nor_jinja(
    tmp_path: Path,
) -> None:
    plan = _write(tmp_path, PLAIN)
    code, modules, stderr = _planrun(tmp_path, "apply", str(plan), "--progress", "none")
    assert code == 0, stderr
    assert (tmp_path / "first.out").read_text() == "one\n"
    assert (tmp_path / "second.out").read_text() == "second\n"
    # the run really went through the scheduler, the sessions and the store
    assert {"planrun.run.scheduler", "planrun.sessions.subprocess", "pydantic", "trio"} <= modules
    assert "networkx" not in modules
    assert "jinja2" not in modules
    assert "planrun.plan.sandbox" not in modules


def test_validate_without_cycles_or_templates_imports_neither(tmp_path: Path) -> None:
    plan = _write(tmp_path, PLAIN)
    code, modules, stderr = _planrun(tmp_path, "validate", str(plan))
    assert code == 0, stderr
    assert "networkx" not in modules
    assert "jinja2" not in modules


def test_a_cycle_is_still_explained_with_networkx(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(CYCLE.lstrip("\n"))
    code, modules, stderr = _planrun(tmp_path, "validate", str(plan))
    assert code == 2
    assert stderr.splitlines() == [
        f"{plan}:4:13: dependency cycle a → c → b → a: a needs c (line 4), "
        "c needs b (line 10), b needs a (line 7); remove one of these dependencies",
        "1 error",
    ]
    assert "networkx" in modules


def test_a_plan_with_templates_still_renders_them(tmp_path: Path) -> None:
    plan = _write(
        tmp_path,
        """\
        version: 1
        name: templated
        tasks:
          greet:
            title: "Greet {{ plan.name }}"
            run: {shell: "echo {{ task.title }} > {{ task.key }}.out"}
          each:
            for_each: {items: [north, "two words"]}
            run: [sh, -c, 'echo "$1" > "item-$2.out"', sh, "{{ item }}", "{{ item.index }}"]
        """,
    )
    code, modules, stderr = _planrun(tmp_path, "apply", str(plan), "--progress", "none")
    assert code == 0, stderr
    assert (tmp_path / "greet.out").read_text() == "Greet templated\n"
    assert (tmp_path / "item-0.out").read_text() == "north\n"
    assert (tmp_path / "item-1.out").read_text() == "two words\n"
    assert "jinja2" in modules
    assert "networkx" not in modules


def test_template_errors_are_unchanged_by_the_lazy_sandbox(tmp_path: Path) -> None:
    assert templates.render("plain {text}", {}) == "plain {text}"
    assert templates.render("{{ a }} {{ b }}", {"a": "x y", "b": 1}, shell=True) == "'x y' 1"
    with pytest.raises(templates.TemplateProblem) as caught:
        templates.render("{{ task.nam }}", {"task": {"name": "n"}})
    assert caught.value.message == "task.nam is undefined (did you mean task.name?)"
    with pytest.raises(templates.TemplateProblem) as caught:
        templates.check("{% if %}", {})
    assert caught.value.message.startswith("template syntax error: ")
    assert caught.value.line == 1


# --- fingerprints ---------------------------------------------------------------------------

PINNED_PLAN = """\
version: 1
name: pinned
settings:
  secrets: [TOKEN]
providers:
  echo-agent:
    command: [sh, -c, 'cat', echo-agent]
    prompt_via: stdin
    yolo_flag: --yes
    env: {MODE: quiet}
tasks:
  build:
    title: Build it
    description: "Ünïcode — text"
    env: {LEVEL: "3", A: b}
    secrets: [TOKEN]
    run: [make, "{{ task.key }}"]
    verify: {shell: "test -f out"}
  shards:
    needs: [build]
    for_each:
      items:
        - {id: north, weight: 1.5, tags: [a, b]}
        - {id: south, weight: 2, nested: {x: null}}
    run: {shell: "echo {{ item.id }}"}
  ask:
    provider: echo-agent
    needs: [build]
    base_branch: main
    prompt: "Say {{ task.key }}"
  auto:
    provider: echo-agent
    autonomous: false
"""

#: Computed by planrun before fingerprinting was made faster; they are stored in users'
#: state databases, so they must never change (a deliberate change bumps FORMAT).
PINNED = {
    "build": "4876dd6ef2c5b740f5c0dbfe230d8bb8ba76f3a286d3d0bb66118378770c9b67",
    "ask": "376c1e0646fb707eabd8743ac0c901a4c8d86685e4b2d22dfb297e9becb8e5f2",
    "auto": "0e29a8f2fe1ed32a848098985191b498b4c3ca201c8b04769c7f7bef7392ee7d",
    "shards[north]": "969d46291e4bc344cf67b8114e00032186fda1ff59eadde8aa8c2f2a73120342",
    "shards[south]": "311d6de3271e5fd79e2892cdcce85be594a1acc8060d971d6b4118c3fcfa8677",
}
PINNED_FIELDS_OF_BUILD = {
    "run": "6bbc23f739f8f6f9",
    "prompt": "74234e98afe7498f",
    "title": "6633a2cf1845d277",
    "description": "a26a8e2655712e5f",
    "item": "74234e98afe7498f",
    "provider": "74234e98afe7498f",
    "project": "74234e98afe7498f",
    "base_branch": "74234e98afe7498f",
    "env": "7180222c94820391",
    "secrets": "8978e77d1b2d2acd",
    "verify": "d971f5062d0e5e5c",
}


def _pinned_plan(folder: Path) -> Any:
    return load_plan(_write(folder, PINNED_PLAN))


def test_fingerprints_keep_their_values(tmp_path: Path) -> None:
    plan = _pinned_plan(tmp_path)
    assert FORMAT == 1
    found = {key: fingerprint(plan, plan.tasks[key])[0] for key in plan.work}
    assert found == PINNED
    fields = fingerprint(plan, plan.tasks["build"])[1]
    assert fields == PINNED_FIELDS_OF_BUILD
    assert list(fields) == list(PINNED_FIELDS_OF_BUILD)  # the order apply records them in


def test_fingerprints_hash_the_json_of_the_whole_definition(tmp_path: Path) -> None:
    """The fingerprint is built from each field's text; it equals hashing the whole."""
    plans = [_pinned_plan(tmp_path), load_plan(ROOT / "plans" / "everything.yaml")]
    for plan in plans:
        for key in plan.work:
            task = plan.tasks[key]
            fields = definition(plan, task)
            whole, each = fingerprint(plan, task)
            assert whole == _digest({"format": FORMAT, **fields}), key
            assert each == {name: _digest(value)[:16] for name, value in fields.items()}, key

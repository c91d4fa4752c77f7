"""schemas/plan.schema.json: generated from the models, current, and in agreement with the
loader on every example plan."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from planrun.cli import main
from planrun.commands.starter import STARTER_PLAN
from planrun.plan.load import load_plan
from planrun.plan.source import parse

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schemas" / "plan.schema.json"
PLANS = sorted((ROOT / "plans").glob("*.yaml"))
EXAMPLES = ["batch-refactor", "multi-project", "diamond", "everything"]


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema())


def test_the_schema_file_is_what_planrun_schema_plan_prints() -> None:
    out = io.StringIO()
    assert main(["schema", "plan"], out) == 0
    assert SCHEMA_FILE.read_text(encoding="utf-8") == out.getvalue(), (
        "schemas/plan.schema.json is stale: run `python -m planrun schema plan > "
        "schemas/plan.schema.json`"
    )


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(_schema())
    assert _schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_examples_exist_and_point_editors_at_the_schema() -> None:
    names = {p.stem for p in PLANS}
    assert set(EXAMPLES) <= names
    for path in PLANS:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/plan.schema.json", path


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_every_example_plan_passes_the_schema_and_planrun_validate(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = parse(path.read_bytes(), path.name).data
    errors = [e.message for e in _validator().iter_errors(data)]
    assert errors == []
    monkeypatch.chdir(ROOT)
    assert main(["validate", f"plans/{path.name}"]) == 0
    assert capsys.readouterr().err == ""


def test_the_starter_plan_passes_the_schema_and_the_loader(tmp_path: Path) -> None:
    data = parse(STARTER_PLAN, "plan.yaml").data
    assert [e.message for e in _validator().iter_errors(data)] == []
    assert len(load_plan(tmp_path / "plan.yaml", STARTER_PLAN).work) == 3


def test_the_schema_accepts_what_the_loader_accepts() -> None:
    """Durations as text, commands as argv or {shell}, setup as text, nulls, anchors."""
    text = """
    version: 1
    settings: {tmux_socket: null, budget: {wall_time: 1h30m}}
    defaults: &d {timeout: 90s, retry: {backoff: {initial: 250ms}}}
    projects:
      p: {path: ., setup: ["make deps", [make, deps], {shell: make deps}]}
    hooks: {on_run_end: [{shell: "echo done"}, [echo, done]]}
    tasks:
      a: {<<: *d, run: [echo, hi], verify: {shell: "test -f x"}}
      b: {needs: ["a"], for_each: {matrix: {v: ["3.10"]}}, run: {shell: "echo {{ item.v }}"}}
    """
    data = parse(text, "p.yaml").data
    assert [e.message for e in _validator().iter_errors(data)] == []


REJECTED = [
    "15-version-2",
    "17-missing-tasks",
    "19-unknown-top-level-key",
    "20-unknown-task-field",
    "21-priority-as-text",
    "22-bool-as-text",
    "23-bad-duration",
    "24-duration-as-number",
    "29-key-with-path-characters",
    "48-command-as-string",
    "50-bad-choice",
    "58-zero-max-concurrent",
    "59-empty-command",
    "69-needs-not-a-list",
    "70-task-not-a-mapping",
    "71-shell-command-typo",
]


def test_the_schema_rejects_what_the_model_rejects() -> None:
    validator = _validator()
    for case in REJECTED:
        path = ROOT / "tests" / "plans_bad" / f"{case}.yaml"
        data = parse(path.read_bytes(), path.name).data
        assert list(validator.iter_errors(data)), f"the schema accepts {case}"

"""``--events``: every line carries ``schema``, ``run_id`` and an ISO-8601 ``time``, and
matches the JSON Schema ``planrun schema events`` prints (generated from the event
dataclasses)."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest

from planrun.cli import main
from planrun.core.events import Event, EventKind
from planrun.schemas import _type_schema, schema_for
from tests import runs

ROOT = Path(__file__).resolve().parent.parent

PLAN = """\
version: 1
name: events
hooks:
  on_task_success: [[sh, -c, "exit 7"]]
defaults:
  retry: {{attempts: 2, backoff: {{initial: 10ms, max: 10ms, jitter: 0}}}}
tasks:
  flaky:
    run:
      shell: |
        if [ -e {dir}/once ]; then echo fine; exit 0; fi
        touch {dir}/once; echo "boom \\"quoted\\" ✓"; exit 3
  broken: {{needs: [flaky], run: [sh, -c, "exit 1"]}}
  after: {{needs: [broken], run: [echo, never]}}
"""


def test_every_line_of_a_real_run_matches_the_events_schema(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(dir=tmp_path), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    assert main(["apply", str(plan), "--progress", "none", "--events", str(events)]) == 1
    validator = jsonschema.Draft202012Validator(schema_for("events"))
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    run_id = runs.last_run_folder(plan).name
    for line in lines:
        assert [e.message for e in validator.iter_errors(line)] == [], line
        assert line["schema"] == 1
        assert line["run_id"] == run_id
        when = datetime.fromisoformat(line["time"])
        assert when.utcoffset() is not None
        assert abs(when.timestamp() - line["at"]) < 1e-3
    kinds = {line["kind"] for line in lines}
    assert kinds >= {
        "run_started",
        "task_queued",
        "attempt_started",
        "process_started",
        "output",
        "attempt_finished",
        "retry_scheduled",
        "hook_ran",
        "task_finished",
        "run_finished",
    }


def test_the_schema_rejects_a_line_without_its_stamps_or_with_a_stray_field() -> None:
    validator = jsonschema.Draft202012Validator(schema_for("events"))
    line = {
        "schema": 1,
        "run_id": "r",
        "time": "2026-01-01T00:00:00.000000Z",
        "at": 1.0,
        "kind": "task_queued",
        "key": "A",
    }
    assert list(validator.iter_errors(line)) == []
    for name in ("schema", "run_id", "time"):
        assert list(validator.iter_errors({k: v for k, v in line.items() if k != name}))
    assert list(validator.iter_errors({**line, "stray": 1}))
    assert list(validator.iter_errors({**line, "kind": "no_such_kind"}))


def test_every_event_class_has_a_definition_and_the_readme_lists_every_kind() -> None:
    schema = schema_for("events")
    kinds = {d["properties"]["kind"]["const"] for d in schema["$defs"].values()}
    assert kinds == {kind.value for kind in EventKind}
    assert all(d["description"] for d in schema["$defs"].values())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [k.value for k in EventKind if f"`{k.value}`" not in readme] == []
    assert Event.__subclasses__()  # the generator walks these


def test_a_field_type_the_generator_does_not_know_is_an_error() -> None:
    with pytest.raises(TypeError, match="no JSON Schema for an event field"):
        _type_schema(bytes)


def test_the_events_schema_file_is_what_the_generator_makes() -> None:
    text = (ROOT / "schemas" / "events.schema.json").read_text(encoding="utf-8")
    assert json.loads(text) == schema_for("events"), (
        "schemas/events.schema.json is stale: run `python -m planrun.schemas`"
    )
    jsonschema.Draft202012Validator.check_schema(json.loads(text))


def test_planrun_schema_events_prints_the_schema() -> None:
    out = io.StringIO()
    assert main(["schema", "events"], out) == 0
    assert json.loads(out.getvalue()) == schema_for("events")

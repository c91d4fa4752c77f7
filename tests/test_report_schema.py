"""schemas/report.schema.json is generated from the report model and kept fresh."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema

from planrun.cli import main

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "report.schema.json"


def test_the_report_schema_file_is_what_planrun_schema_report_prints() -> None:
    out = io.StringIO()
    assert main(["schema", "report"], out=out) == 0
    assert json.loads(SCHEMA.read_text()) == json.loads(out.getvalue()), (
        "schemas/report.schema.json is stale: run `planrun schema report > "
        "schemas/report.schema.json`"
    )


def test_the_report_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA.read_text()))

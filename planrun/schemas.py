"""JSON Schemas generated from the models (kept in schemas/ and checked for staleness)."""

from __future__ import annotations

from typing import Any


def schema_for(which: str) -> dict[str, Any]:
    if which == "plan":
        from planrun.plan.model import plan_json_schema

        return plan_json_schema()
    if which == "report":
        from planrun.report.model import report_json_schema

        return report_json_schema()
    raise ValueError(f"no schema named {which!r}")

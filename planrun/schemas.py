"""JSON Schemas generated from the models (kept in schemas/ and checked for staleness).

The plan and report schemas come from their pydantic models. The events schema is built
here from the event dataclasses (:mod:`planrun.core.events`) and the stamps
:class:`planrun.ui.events.JsonLines` adds, so a field added to an event appears in it
without pydantic on the path of a run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planrun.core.events import Event

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
NAMES = ("plan", "report", "events")


def schema_for(which: str) -> dict[str, Any]:
    if which == "plan":
        from planrun.plan.model import plan_json_schema

        return plan_json_schema()
    if which == "report":
        from planrun.report.model import report_json_schema

        return report_json_schema()
    if which == "events":
        return events_json_schema()
    raise ValueError(f"no schema named {which!r}")


def schema_text(which: str) -> str:
    """The schema as ``planrun schema WHICH`` prints it and the files hold it."""
    return json.dumps(schema_for(which), indent=2, sort_keys=False) + "\n"


def write_files(root: Path) -> list[Path]:
    """Write every generated file under the checkout ``root``; the paths written."""
    written = []
    for which in NAMES:
        path = root / "schemas" / f"{which}.schema.json"
        path.write_text(schema_text(which), encoding="utf-8")
        written.append(path)
    return written


def events_json_schema() -> dict[str, Any]:
    """One line of ``--events``: one object per kind of event, told apart by ``kind``."""
    from planrun.core.events import Event, EventKind
    from planrun.ui.events import EVENTS_SCHEMA_VERSION

    classes = {cls.kind: cls for cls in _subclasses(Event)}
    common = _common_properties(EVENTS_SCHEMA_VERSION)
    definitions = {
        classes[kind].__name__: _event_schema(classes[kind], common) for kind in EventKind
    }
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://planrun.dev/schemas/events.schema.json",
        "title": f"planrun --events line (schema {EVENTS_SCHEMA_VERSION})",
        "description": "One JSON object per line of `planrun apply --events FILE|-`.",
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in definitions],
        "$defs": definitions,
    }


def _subclasses(cls: type[Event]) -> list[type[Event]]:
    found: list[type[Event]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _common_properties(version: int) -> dict[str, Any]:
    return {
        "schema": {"const": version, "description": "the version of this line format"},
        "run_id": {"type": "string", "description": "the run this event belongs to"},
        "time": {
            "type": "string",
            "format": "date-time",
            "description": "when it happened, ISO-8601 in UTC",
        },
        "at": {"type": "number", "description": "when it happened, in Unix seconds"},
        "key": {
            "type": ["string", "null"],
            "description": "the task's key; null for the run's own moments",
        },
    }


def _event_schema(cls: type[Event], common: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    own = {
        f.name: _type_schema(hints[f.name]) for f in dataclasses.fields(cls) if f.name not in common
    }
    properties = {**common, "kind": {"const": cls.kind.value}, **own}
    return {
        "type": "object",
        "description": (cls.__doc__ or "").strip(),
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _type_schema(hint: Any) -> dict[str, Any]:
    """The schema of a field's type; a type this does not know is an error (extend it)."""
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_type_schema(arg) for arg in args]}
    if origin in (Mapping, dict) and args and args[0] is str:
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    if origin in (list, tuple) and args:
        return {"type": "array", "items": _type_schema(args[0])}
    raise TypeError(f"no JSON Schema for an event field of type {hint!r}")


if __name__ == "__main__":  # python -m planrun.schemas [CHECKOUT]: regenerate the files
    for path in write_files(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(f"wrote {path}")

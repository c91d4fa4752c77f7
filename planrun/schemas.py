"""JSON Schemas generated from the models, shipped in the package and checked for staleness.

The plan and report schemas come from their pydantic models; the plan's field
descriptions from the docstrings under the fields of :mod:`planrun.plan.model` (read from
its source here, not at every start-up). The events schema is built from the event
dataclasses (:mod:`planrun.core.events`) and the stamps :class:`planrun.ui.events.JsonLines`
adds, so a field added to an event appears in it without pydantic on the path of a run.

The files live in ``planrun/data/`` (in the wheel, for editors offline: ``planrun init``
points at the installed copy) and, as links to them, in the checkout's ``schemas/``.
``python -m planrun.schemas`` writes them and docs/plan.md again.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
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

        return with_field_docs(plan_json_schema())
    if which == "report":
        from planrun.report.model import report_json_schema

        return report_json_schema()
    if which == "events":
        return events_json_schema()
    raise ValueError(f"no schema named {which!r}")


def schema_text(which: str) -> str:
    """The schema as ``planrun schema WHICH`` prints it and the files hold it."""
    return json.dumps(schema_for(which), indent=2, sort_keys=False) + "\n"


def packaged(which: str) -> Path:
    """Where the installed planrun keeps the ``which`` schema (``planrun/data/``)."""
    return Path(__file__).resolve().parent / "data" / f"{which}.schema.json"


def write_files(root: Path) -> list[Path]:
    """Write every generated file under the checkout ``root``; the paths written."""
    from planrun.plandoc import plan_reference

    written = []
    for which in NAMES:
        path = root / "planrun" / "data" / f"{which}.schema.json"
        path.write_text(schema_text(which), encoding="utf-8")
        written.append(path)
    reference = root / "docs" / "plan.md"
    reference.write_text(plan_reference(), encoding="utf-8")
    return [*written, reference]


# ---------------------------------------------------------------- plan field docs


def with_field_docs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each model field's docstring as its property's ``description``."""
    from planrun.plan import model

    for name, node in [("PlanFile", schema), *schema.get("$defs", {}).items()]:
        cls = getattr(model, name, None)
        docs = field_docs(cls) if isinstance(cls, type) else {}
        for field, prop in node.get("properties", {}).items():
            if field in docs:
                prop["description"] = docs[field]
    return schema


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings under the fields of ``cls`` and its bases (the nearest wins), each
    as one line."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if base.__module__.startswith("planrun."):
            docs.update(_own_field_docs(base.__module__, base.__qualname__))
    return docs


@functools.cache
def _own_field_docs(module: str, name: str) -> dict[str, str]:
    tree = _module_tree(module)
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    docs: dict[str, str] = {}
    body = found[0].body if found else []
    for statement, after in itertools.pairwise(body):
        target = statement.target if isinstance(statement, ast.AnnAssign) else None
        if (
            isinstance(target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


@functools.cache
def _module_tree(module: str) -> ast.Module:
    return ast.parse(inspect.getsource(sys.modules[module]))


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


if __name__ == "__main__":  # python -m planrun.schemas [CHECKOUT]: write the files again
    for path in write_files(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(f"wrote {path}")

"""pydantic validation errors → one-line, located diagnostics a person can act on."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from planrun.errors import Diagnostic
from planrun.plan.source import Source, is_lossy_float

_TYPE_NAMES = {
    str: "text",
    int: "a whole number",
    float: "a number",
    bool: "true/false",
    list: "a list",
    dict: "a mapping",
    type(None): "nothing (null)",
}


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else empty."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe(value: Any) -> str:
    name = _TYPE_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return name
    return f"{name} {value!r}"


def diagnostics_from(
    exc: ValidationError, source: Source, root_model: type[BaseModel]
) -> list[Diagnostic]:
    return [_one(err, source, root_model) for err in exc.errors()]


def data_path(data: Any, loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], bool]:
    """Keep the parts of a pydantic ``loc`` that exist in the data (drops union tags).

    Returns the path and whether the error concerns a mapping *key* (``[key]`` in loc).
    """
    path: list[int | str] = []
    node = data
    is_key = False
    for part in loc:
        if part == "[key]":
            is_key = True
            break
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and len(path) == len(loc):
            break
    return tuple(path), is_key


def _one(err: ErrorDetails, source: Source, root_model: type[BaseModel]) -> Diagnostic:
    loc = tuple(err["loc"])
    path, is_key = data_path(source.data, loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _fields_at(root_model, loc[:-1], source.data)
        message = f"unknown key {key!r}{suggest(key, known)}"
        return Diagnostic(source.locate((*path[:-1], key), key=True), message)
    if kind == "missing":
        return Diagnostic(source.locate(path), f"missing required key {str(loc[-1])!r}")
    location = source.locate(path, key=is_key)
    return Diagnostic(location, _message(err, source, path, is_key))


def _message(
    err: ErrorDetails, source: Source, path: tuple[int | str, ...], is_key: bool
) -> str:
    kind = err["type"]
    value = err.get("input")
    field = _field_name(path)
    if is_key:
        return f"{value!r} is not a valid key: keys match [A-Za-z0-9][A-Za-z0-9._-]* (no spaces, slashes or shell characters)"
    if kind in ("value_error", "assertion_error"):
        text = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return f"{field}: {text}" if field else text
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        hint = ""
        if isinstance(value, str):
            choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",")]
            hint = suggest(value, [c for c in choices if c])
        return f"{field}: expected {expected}; got {describe(value)}{hint}"
    if kind == "string_pattern_mismatch":
        pattern = str(err.get("ctx", {}).get("pattern", ""))
        if "A-Za-z_" in pattern:
            what = "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        else:
            what = "a task key ([A-Za-z0-9][A-Za-z0-9._-]*)"
        return f"{field}: {value!r} is not {what}"
    if kind == "string_type":
        raw = source.raw_text(path)
        if isinstance(value, float) and raw is not None and is_lossy_float(raw):
            return f'{field}: {raw} is read as the number {value!r}; quote it ("{raw}") to keep the text'
        return f"{field}: expected text; got {describe(value)} (quote it if you mean text)"
    message = err["msg"]
    got = "" if isinstance(value, dict | list) else f"; got {describe(value)}"
    return f"{field}: {message[0].lower()}{message[1:]}{got}" if field else message


def _field_name(path: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def _fields_at(root: type[BaseModel], loc: tuple[int | str, ...], data: Any) -> list[str]:
    """Field names of the model that a ``loc`` points into (for did-you-mean)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:
            continue
        if part in fields:
            model = _model_of(fields[part].annotation)
        # dict keys (task names) and union tags leave the model as it is
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None

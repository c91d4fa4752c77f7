"""pydantic validation errors → one-line, located diagnostics a person can act on.

Every message says what is wrong in the plan's own terms (``tasks.build.priority``, "a whole
number", "text") and, where there is one, what to write instead. pydantic's own phrasing
("Input should be a valid integer") never reaches the user.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from planrun.errors import Diagnostic, suggest
from planrun.plan.scalars import is_lossy_float
from planrun.plan.source import Source

Path = tuple[int | str, ...]

#: Pairs of task fields that exclude each other: (first, second, message).
EXCLUSIVE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("needs", "blocked_by", "use either needs or blocked_by (its alias), not both"),
    ("prompt", "prompt_file", "use either prompt or prompt_file, not both"),
)

_PLAIN_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_TYPE_WORDS = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_LIST_LIMIT = 12


def describe(value: Any) -> str:
    """A value as the plan wrote it: ``text 'x'``, ``the number 3``, ``true``, ``a list``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"text {value!r}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def field_name(path: Path) -> str:
    """``tasks.build.retry.on[1]``; keys that are not plain words are quoted."""
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _PLAIN_PART.match(part):
            parts.append(("." if parts else "") + part)
        else:
            parts.append(f"[{part!r}]")
    return "".join(parts)


def diagnostics_from(
    exc: ValidationError, source: Source, root_model: type[BaseModel]
) -> list[Diagnostic]:
    """One diagnostic per problem; a union's alternative type errors are merged into one."""
    return [found for _, _, found in located_diagnostics(exc, source, root_model)]


def located_diagnostics(
    exc: ValidationError, source: Source, root_model: type[BaseModel]
) -> list[tuple[Path, bool, Diagnostic]]:
    """:func:`diagnostics_from`, each with the data path it concerns and whether the
    problem is that path's key (what :mod:`planrun.plan.salvage` cuts away)."""
    errors = [(data_path(source.data, tuple(err["loc"])), err) for err in exc.errors()]
    errors = _drop_shallow_union_errors(errors)
    merged = _merge_type_errors(errors)
    return [
        (path, is_key, _one(err, path, is_key, source, root_model))
        for (path, is_key), err in merged
    ]


def data_path(data: Any, loc: tuple[int | str, ...]) -> tuple[Path, bool]:
    """Keep the parts of a pydantic ``loc`` that exist in the data (drops union tags).

    Returns the path and whether the error concerns a mapping *key* (``[key]`` in loc).
    A last part naming a key that is absent (a missing or unknown key) is kept.
    """
    path: list[int | str] = []
    node = data
    for index, part in enumerate(loc):
        if part == "[key]":
            return tuple(path), True
        if (isinstance(node, dict) and isinstance(part, str) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]  # type: ignore[index]  # the condition checked the types
            path.append(part)
        elif isinstance(node, dict) and index == len(loc) - 1 and isinstance(part, str):
            path.append(part)  # a key that is not there: missing or unknown
    return tuple(path), False


Located = tuple[tuple[Path, bool], ErrorDetails]


def _drop_shallow_union_errors(errors: list[Located]) -> list[Located]:
    """In a union, the alternative that got further explains the problem better."""
    deep = [path for (path, _), _ in errors]
    return [
        ((path, is_key), err)
        for (path, is_key), err in errors
        if not (
            err["type"] in _TYPE_WORDS
            and any(len(other) > len(path) and other[: len(path)] == path for other in deep)
        )
    ]


def _merge_type_errors(errors: list[Located]) -> list[Located]:
    """Type errors at one place (each alternative of a union) become one error."""
    result: list[Located] = []
    at: dict[tuple[Path, bool], int] = {}
    for where, err in errors:
        if err["type"] in _TYPE_WORDS and where in at:
            first = result[at[where]][1]
            if first["type"] in _TYPE_WORDS or first["type"] == "union":
                expected = _expected(first) + " or " + _TYPE_WORDS[err["type"]]
                result[at[where]] = (where, {**first, "type": "union", "msg": expected})
                continue
        if err["type"] in _TYPE_WORDS:
            at[where] = len(result)
        result.append((where, err))
    return result


def _expected(err: ErrorDetails) -> str:
    return err["msg"] if err["type"] == "union" else _TYPE_WORDS[err["type"]]


def _one(
    err: ErrorDetails, path: Path, is_key: bool, source: Source, root_model: type[BaseModel]
) -> Diagnostic:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _fields_at(root_model, loc[:-1])
        return Diagnostic(source.locate(path, key=True), _unknown_key(key, known))
    if kind == "missing":
        return Diagnostic(source.locate(path[:-1]), _missing(path[:-1], str(loc[-1])))
    if kind == "value_error" and len(path) == 2 and path[0] == "tasks":
        exclusive = _exclusive_location(err, path, source)
        if exclusive is not None:
            return exclusive
    location = source.locate(path, key=is_key)
    if is_key:
        return Diagnostic(location, _key_message(err, path))
    return Diagnostic(location, _message(err, source, path))


def _unknown_key(key: str, known: list[str]) -> str:
    hint = suggest(key, known)
    if not hint and known and len(known) <= _LIST_LIMIT:
        hint = f"; expected one of {', '.join(known)}"
    return f"unknown key {key!r}{hint}"


def _missing(parent: Path, key: str) -> str:
    where = f"{field_name(parent)}: " if parent else ""
    if not parent and key == "version":
        return "missing required key 'version' (add `version: 1` at the top)"
    if not parent and key == "tasks":
        return "missing required key 'tasks' (a plan needs at least one task)"
    return f"{where}missing required key {key!r}"


def _exclusive_location(err: ErrorDetails, path: Path, source: Source) -> Diagnostic | None:
    text = _value_error_text(err)
    for _first, second, message in EXCLUSIVE_FIELDS:
        if text == message:
            return exclusive_diagnostic(source, str(path[1]), second, message)
    return None


def exclusive_diagnostic(source: Source, task: str, second: str, message: str) -> Diagnostic:
    """The diagnostic for a task that sets two exclusive fields, at the second one's key."""
    return Diagnostic(
        source.locate(("tasks", task, second), key=True),
        f"{field_name(('tasks', task))}: {message}",
    )


def exclusive_problems(source: Source) -> list[Diagnostic]:
    """Exclusive task fields set together, found in the raw data.

    pydantic runs a model's own checks only when its fields are valid, so these are also
    looked for directly: a plan with a wrong priority *and* both needs and blocked_by gets
    both errors at once.
    """
    tasks = source.data.get("tasks") if isinstance(source.data, dict) else None
    if not isinstance(tasks, dict):
        return []
    found = []
    for key, spec in tasks.items():
        if not isinstance(spec, dict):
            continue
        for first, second, message in EXCLUSIVE_FIELDS:
            if first in spec and second in spec:
                found.append(exclusive_diagnostic(source, str(key), second, message))
    return found


def _key_message(err: ErrorDetails, path: Path) -> str:
    value = err.get("input")
    pattern = str(err.get("ctx", {}).get("pattern", ""))
    if err["type"] == "string_type":
        return f"{value!r} cannot be a key here: keys are text"
    if err["type"] == "string_too_long":
        limit = err.get("ctx", {}).get("max_length")
        return f"key {str(value)[:40]!r}... is longer than {limit} characters"
    if "A-Za-z_]" in pattern:
        return (
            f"{value!r} is not a valid environment variable name: use letters, digits and _, "
            "and do not start with a digit"
        )
    container = f" in {field_name(path[:-1])}" if path[:-1] else ""
    return (
        f"{value!r} cannot be a key{container}: keys use letters, digits, '.', '_' and '-' and "
        "start with a letter or digit (they name branches and folders)"
    )


def _message(err: ErrorDetails, source: Source, path: Path) -> str:
    field = field_name(path)
    prefix = f"{field}: " if field else ""
    return prefix + _problem(err, source, path)


def _value_error_text(err: ErrorDetails) -> str:
    return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _problem(err: ErrorDetails, source: Source, path: Path) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx", {})
    if kind in ("value_error", "assertion_error"):
        return _value_error_text(err)
    if kind == "literal_error":
        return _literal(value, str(ctx.get("expected", "")), path)
    if kind == "string_pattern_mismatch":
        return _pattern(value, str(ctx.get("pattern", "")))
    if kind in _TYPE_WORDS or kind == "union":
        return _wrong_type(_expected(err), value, source.raw_text(path))
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return _bound(kind, ctx, value)
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is longer than {ctx.get('max_length')} characters"
    if kind == "too_short" and path == ("tasks",):
        return "a plan needs at least one task"
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"needs at least {n} {'entry' if n == 1 else 'entries'}"
    if kind == "too_long":
        return f"holds more than {ctx.get('max_length')} entries"
    message = str(err["msg"])
    got = "" if isinstance(value, dict | list) else f"; got {describe(value)}"
    return f"{message[0].lower()}{message[1:]}{got}"


def _literal(value: Any, expected: str, path: Path) -> str:
    if path == ("version",):
        return f"this planrun reads plan format version 1; got {describe(value)}"
    choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",")]
    hint = suggest(value, [c for c in choices if c]) if isinstance(value, str) else ""
    return f"expected {expected}; got {describe(value)}{hint}"


def _pattern(value: Any, pattern: str) -> str:
    if "A-Za-z_]" in pattern:
        return (
            f"{value!r} is not an environment variable name (letters, digits and _, "
            "not starting with a digit)"
        )
    if r"\[" in pattern:
        return f"{value!r} is not a task key or KEY[item-id]"
    return (
        f"{value!r} is not a valid key: use letters, digits, '.', '_' and '-', "
        "starting with a letter or digit"
    )


def _wrong_type(expected: str, value: Any, raw: str | None) -> str:
    got = describe(value)
    if expected == "text" and raw is not None and not isinstance(value, dict | list):
        if isinstance(value, float) and is_lossy_float(raw):
            return f'{raw} is read as the number {value!r}; quote it ("{raw}") to keep the text'
        kind = "true/false" if isinstance(value, bool) else "a number"
        if value is None:
            kind = "null"
        return f'expected text; {raw} is read as {kind} (quote it: "{raw}")'
    if isinstance(value, str) and raw is not None:
        if expected == "a whole number" and re.fullmatch(r"[-+]?\d+", value.strip()):
            return f"expected a whole number; got text {value!r} (remove the quotes)"
        if expected == "a number" and _is_number(value):
            return f"expected a number; got text {value!r} (remove the quotes)"
        if expected == "true or false":
            return f"expected true or false; got text {value!r} (write true or false)"
        if expected.startswith("a list"):
            plain = value.isprintable() and not set(value) & set(" ,[]{}:#'\"")
            return (
                f"expected a list; got {got} (write {f'[{value}]' if plain else 'a list: [...]'})"
            )
    if isinstance(value, float) and expected == "a whole number":
        return f"expected a whole number; got {got}"
    return f"expected {expected}; got {got}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bound(kind: str, ctx: dict[str, Any], value: Any) -> str:
    words = {
        "greater_than_equal": ("ge", "at least"),
        "greater_than": ("gt", "more than"),
        "less_than_equal": ("le", "at most"),
        "less_than": ("lt", "less than"),
    }
    name, phrase = words[kind]
    return f"must be {phrase} {ctx.get(name)}; got {value!r}"


def _fields_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the model that a ``loc`` points into (for did-you-mean).

    Mapping keys the plan chooses (task names, provider names) and union tags are stepped
    over: a task called ``retry`` is still a task.
    """
    model: Any = root
    in_mapping = False
    for part in loc:
        if isinstance(part, int):
            continue
        if in_mapping:
            in_mapping = False
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            continue  # a union tag
        annotation = fields[part].annotation
        in_mapping = _is_mapping(annotation)
        model = _model_of(annotation) or model
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _is_mapping(annotation: Any) -> bool:
    if getattr(annotation, "__origin__", None) is dict:
        return True
    return any(_is_mapping(arg) for arg in getattr(annotation, "__args__", ()) or ())


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None

"""Where a plan's state lives, found without compiling the plan.

The read-only commands (``status``, ``logs``, ``report``) use :func:`locate` to find the
state store of a plan without loading the whole plan (a 10,000-task plan takes far longer
to compile than ``status`` may take): :func:`plan_identity` reads the YAML event stream
only as far as the plan's name and ``settings.state_dir``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planrun.core.frozen import frozen
from planrun.errors import UsageError
from planrun.state.folder import STATE_FILE

if TYPE_CHECKING:
    from planrun.plan.resolved import CompiledPlan


def state_dir_for(plan: CompiledPlan, override: Path | None) -> Path:
    """The state folder ``apply`` uses for a compiled ``plan`` (``override``: --state-dir).

    An override is held to the rules the plan's own ``settings.state_dir`` is validated
    with (not in git's data, not a system folder): UsageError before anything is made.
    """
    from planrun.core.names import state_folder

    if override is not None:
        from planrun.plan.paths import state_dir_problem

        problem = state_dir_problem(override.resolve())
        if problem is not None:
            raise UsageError(f"--state-dir {override}: {problem}")
        return override.resolve()
    return (plan.directory / state_folder(plan.name, plan.settings.state_dir)).resolve()


@frozen
class Located:
    """Where a plan's state lives. ``plan_name`` is None when no plan was named."""

    state_dir: Path
    plan_name: str | None = None
    plan_path: Path | None = None

    @property
    def db_path(self) -> Path:
        return self.state_dir / STATE_FILE


def locate(plan: str | None, state_dir: Path | None) -> Located:
    """The state folder of ``plan`` (or of the current folder), as ``apply`` would use it.

    With a plan: its name and its state folder (:func:`planrun.workspace.names.state_folder`,
    relative to the plan's folder) unless ``state_dir`` overrides it. Without: ``state_dir``
    or ``./.planrun``, or the one plan's folder inside it (UsageError when it holds
    several: name the plan). Raises UsageError for a plan file that does not exist,
    PlanError for one that cannot be read.
    """
    from planrun.core.names import STATE_PARENT, state_folder

    if plan is None:
        return _only_state((state_dir or Path(STATE_PARENT)).resolve())
    path = Path(plan)
    if not path.is_file():
        raise UsageError(f"{plan}: no such plan file")
    name, configured = plan_identity(path)
    folder = state_dir or path.resolve().parent / state_folder(name, configured)
    return Located(folder.resolve(), name, path.resolve())


def _only_state(folder: Path) -> Located:
    """``folder`` if it holds a store, else the one plan state folder inside it."""
    if (folder / STATE_FILE).exists():
        return Located(folder)
    inside = sorted(p.parent for p in folder.glob(f"*/{STATE_FILE}"))
    if len(inside) > 1:
        names = ", ".join(p.name for p in inside)
        raise UsageError(f"{folder} holds the state of several plans ({names}): name the plan")
    return Located(inside[0] if inside else folder)


def plan_identity(path: Path) -> tuple[str, str | None]:
    """A plan's name and ``settings.state_dir`` (None when not set) without compiling it.

    Reads the YAML event stream only as far as needed, so that a read-only command on a
    10,000-task plan answers at once. Anything unusual at those two places (an alias, a
    merge key, a syntax error) falls back to loading the plan properly, which reports
    errors with their location.
    """
    try:
        found = _scan_identity(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        found = None
    if found is None:
        from planrun.plan.load import load_plan

        compiled = load_plan(path)
        return compiled.name, compiled.settings.state_dir
    name, state_dir = found
    return name or path.stem, state_dir


class _Unusual(Exception):
    """The cheap reading cannot be trusted here; load the plan properly."""


def _scan_identity(text: str) -> tuple[str | None, str | None] | None:
    """(name, state_dir) from the top-level mapping's events, or None when unsure."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    events = iter(YAML(typ="safe").parse(text))
    try:
        return _top_level(events, _wanted(text))
    except (_Unusual, YAMLError, StopIteration):
        return None


def _wanted(text: str) -> set[str]:
    """The top-level keys worth looking for: in a block mapping every top-level key starts
    a line, so a key that starts no line is absent and the scan can stop before the tasks.
    (A flow-style top level is noticed by :func:`_top_level`, which then wants both.)"""
    import re

    if re.search(r"(?m)^<<\s*:", text):
        raise _Unusual  # a merge key at the top: let the real loader expand it
    return {k for k in ("name", "settings") if re.search(rf"(?m)^[\"']?{k}[\"']?\s*:", text)}


def _top_level(events: Iterator[Any], wanted: set[str]) -> tuple[str | None, str | None]:
    from ruamel.yaml import events as ev

    while not isinstance(start := next(events), ev.MappingStartEvent):
        pass
    if start.flow_style:
        wanted = {"name", "settings"}
    name: str | None = None
    state_dir: str | None = None
    while wanted:
        event = next(events)
        if isinstance(event, ev.MappingEndEvent):
            break
        key = _scalar_key(event)
        value = next(events)
        if key == "name":
            name = _scalar_value(value)
        elif key == "settings":
            state_dir = _settings_state_dir(events, value)
        else:
            _skip(events, value)
        wanted.discard(key)
    return name, state_dir


def _scalar_key(event: Any) -> str:
    from ruamel.yaml import events as ev

    if not isinstance(event, ev.ScalarEvent) or event.value == "<<":
        raise _Unusual
    return str(event.value)


def _scalar_value(event: Any) -> str | None:
    from ruamel.yaml import events as ev

    if isinstance(event, ev.ScalarEvent):
        return None if event.value in ("", "~", "null") and event.style is None else event.value
    raise _Unusual


def _settings_state_dir(events: Iterator[Any], start: Any) -> str | None:
    from ruamel.yaml import events as ev

    if not isinstance(start, ev.MappingStartEvent):
        _skip(events, start)
        if isinstance(start, ev.AliasEvent):
            raise _Unusual
        return None
    state_dir = None
    while True:
        event = next(events)
        if isinstance(event, ev.MappingEndEvent):
            return state_dir
        key = _scalar_key(event)
        value = next(events)
        if key == "state_dir":
            state_dir = _scalar_value(value)
        else:
            _skip(events, value)


def _skip(events: Iterator[Any], start: Any) -> None:
    """Consume the rest of the node that ``start`` began."""
    from ruamel.yaml import events as ev

    depth = 1 if isinstance(start, ev.CollectionStartEvent) else 0
    while depth:
        event = next(events)
        if isinstance(event, ev.CollectionStartEvent):
            depth += 1
        elif isinstance(event, ev.CollectionEndEvent):
            depth -= 1

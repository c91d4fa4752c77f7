"""Loading a plan: text → YAML data → validated model → compiled plan, or every error."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from planrun.errors import Diagnostic, Location, PlanError
from planrun.plan.compile import CompiledPlan, compile_plan
from planrun.plan.diagnose import describe, diagnostics_from, exclusive_problems
from planrun.plan.model import PlanFile
from planrun.plan.source import MAX_BYTES, Source, parse


def read_plan_text(path: Path) -> bytes:
    """The plan's bytes, refusing folders, missing files and oversized files up front."""
    name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PlanError.single(Location(name), "no such file") from None
    except OSError as exc:
        raise PlanError.single(Location(name), f"cannot read: {exc.strerror}") from None
    if path.is_dir():
        raise PlanError.single(Location(name), "is a folder, not a plan file")
    if size > MAX_BYTES:
        raise PlanError.single(
            Location(name, 1, 1),
            f"the file is {size:,} bytes; plans are limited to {MAX_BYTES:,} bytes",
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PlanError.single(Location(name), f"cannot read: {exc.strerror}") from None


class SchemaError(PlanError):
    """The plan does not fit the schema. ``failed_tasks`` names the tasks that do not, when
    every problem lies in a task (None when one lies elsewhere)."""

    def __init__(self, diagnostics: list[Diagnostic], failed_tasks: set[str] | None) -> None:
        super().__init__(diagnostics)
        self.failed_tasks = failed_tasks


def validate_source(source: Source) -> PlanFile:
    """The plan model of ``source``, or a PlanError (a :class:`SchemaError` when the
    schema refused it) with every schema problem."""
    if not isinstance(source.data, dict):
        raise PlanError.single(
            source.locate(()),
            "a plan is a mapping with version, tasks and other keys; "
            f"this file holds {describe(source.data)}",
        )
    try:
        return PlanFile.model_validate(source.data)
    except ValidationError as exc:
        found = diagnostics_from(exc, source, PlanFile)
        locs = [error["loc"] for error in exc.errors()]
        in_tasks = all(len(loc) > 1 and loc[0] == "tasks" for loc in locs)
        failed = {str(loc[1]) for loc in locs} if in_tasks else None
        raise SchemaError([*found, *exclusive_problems(source)], failed) from None


def load_plan(path: str | Path, text: str | bytes | None = None) -> CompiledPlan:
    """Read, validate and compile the plan at ``path``; raise PlanError listing every problem.

    ``text`` stands in for the file's content when given (the path then only names it and
    anchors relative paths). Nothing but PlanError escapes for any input.
    """
    path = Path(path)
    raw = read_plan_text(path) if text is None else text
    with _no_cyclic_gc():
        source = parse(raw, str(path))
        found = list(source.problems)
        try:
            model = validate_source(source)
        except PlanError as error:
            failed = error.failed_tasks if isinstance(error, SchemaError) else None
            graph = _graph_problems(source, path, failed) if failed is not None else []
            raise PlanError([*found, *error.diagnostics, *graph]) from None
        try:
            compiled = compile_plan(source, model, path)
        except PlanError as error:
            raise PlanError([*found, *error.diagnostics]) from None
        if found:
            raise PlanError(found)
        return compiled


def _graph_problems(source: Source, path: Path, failed: set[str]) -> list[Diagnostic]:
    """What compiling finds in a plan whose tasks did not all validate (matrix I5: a cycle,
    a self-need and an unknown need are reported in the same pass as a misspelt key).

    Each task that failed validation (``failed``) stands in as a task that keeps only its
    ``needs`` (or ``blocked_by``) and ``parent``, when those are well-formed, so that the
    graph is checked as written. The caller tries this only when every problem lies in a
    task (a provider or project the tasks use may otherwise be the broken part); nothing
    is tried when a failed task fans out (its items are unknown): the schema's problems
    are then all there is to report.
    """
    tasks = source.data.get("tasks") if isinstance(source.data, dict) else None
    if not isinstance(tasks, dict):
        return []
    parents = {
        spec["parent"]
        for spec in tasks.values()
        if isinstance(spec, dict) and isinstance(spec.get("parent"), str)
    }
    salvaged: dict[str, object] = {}
    for key, spec in tasks.items():
        if key not in failed:
            salvaged[key] = spec
            continue
        if not isinstance(spec, dict) or "for_each" in spec:
            return []
        stand_in: dict[str, object] = {} if key in parents else {"run": ["true"]}
        stand_in.update({k: v for k, v in spec.items() if _graph_field(k, v)})
        salvaged[key] = stand_in
    data = {**source.data, "tasks": salvaged}
    try:
        model = PlanFile.model_validate(data)
    except ValidationError:  # the stand-ins themselves do not hold: nothing more to say
        return []
    try:
        compile_plan(Source(source.name, source.text, data, source.root), model, path)
    except PlanError as error:
        return list(error.diagnostics)
    return []


def _graph_field(name: str, value: object) -> bool:
    """Whether a failed task's field is one its stand-in keeps: well-formed needs, parent."""
    if name == "parent":
        return isinstance(value, str)
    texts = isinstance(value, list) and all(isinstance(item, str) for item in value)
    return name in ("needs", "blocked_by") and texts


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a plan is built.

    Loading creates hundreds of thousands of long-lived, acyclic objects; the collector
    would rescan them again and again (half the time of a 10,000-task load). Reference
    counting still frees everything; cycles made meanwhile are collected afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

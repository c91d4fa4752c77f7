"""Loading a plan: text → YAML data → validated model → compiled plan, or every error."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from planrun.errors import Location, PlanError
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


def validate_source(source: Source) -> PlanFile:
    """The plan model of ``source``, or a PlanError with every schema problem."""
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
        raise PlanError([*found, *exclusive_problems(source)]) from None


def load_plan(path: str | Path, text: str | bytes | None = None) -> CompiledPlan:
    """Read, validate and compile the plan at ``path``; raise PlanError listing every problem.

    ``text`` stands in for the file's content when given (the path then only names it and
    anchors relative paths). Nothing but PlanError escapes for any input.
    """
    path = Path(path)
    raw = read_plan_text(path) if text is None else text
    with _no_cyclic_gc():
        source = parse(raw, str(path))
        model = validate_source(source)
        return compile_plan(source, model, path)


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

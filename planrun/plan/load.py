"""Loading a plan: text → YAML data → validated model → compiled plan, or every error at once.

A plan compiled before, unchanged and from unchanged files, comes from the cache instead
(:mod:`planrun.plan.cache`): then neither the YAML parser nor the schema models are imported.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from planrun.core.frozen import frozen
from planrun.errors import Diagnostic, Location, PlanError
from planrun.plan import cache, probes
from planrun.plan.resolved import CompiledPlan

if TYPE_CHECKING:
    from planrun.plan.model import PlanFile
    from planrun.plan.reads import Mentions
    from planrun.plan.source import Source

#: The largest plan file read (planrun.plan.source refuses bigger texts too).
MAX_BYTES = 32 * 1024 * 1024


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


HIDES_EVERYTHING = "this hides every other check of the plan"


@frozen
class Salvaged:
    """What validating found: the plan cut down to what fits (same text and node tree),
    its model (None when nothing more can be checked) and the problems found."""

    source: Source
    model: PlanFile | None
    diagnostics: tuple[Diagnostic, ...]


def validate_source(source: Source) -> Salvaged:
    """The plan model of ``source``, cut down to what fits the schema, with every schema
    problem (:mod:`planrun.plan.salvage`); a PlanError if the root is not a mapping."""
    from pydantic import ValidationError

    from planrun.plan.diagnose import describe
    from planrun.plan.model import PlanFile

    if not isinstance(source.data, dict):
        raise PlanError.single(
            source.locate(()),
            "a plan is a mapping with version, tasks and other keys; "
            f"this file holds {describe(source.data)}",
        )
    if not source.unusable:
        try:
            return Salvaged(source, PlanFile.model_validate(source.data), ())
        except ValidationError:
            pass
    from planrun.plan.salvage import salvage  # a plan with problems: cut and report them

    return salvage(source)


def load_plan(
    path: str | Path, text: str | bytes | None = None, *, mentions: Mentions | None = None
) -> CompiledPlan:
    """Read, validate and compile the plan at ``path``; raise PlanError listing every problem.

    One pass finds them all: what the schema refuses is reported and cut away, and the
    rest is compiled, so that graph, provider and template problems are reported with
    the schema's. ``text`` stands in for the file's content when given (the path then only
    names it and anchors relative paths). ``mentions`` are the agents' items, which
    ``planrun serve`` gives (a plan compiled with them is never cached). Nothing but
    PlanError escapes for any input.
    """
    path = Path(path)
    if text is not None or mentions is not None:
        with _no_cyclic_gc():
            return _load(path, read_plan_text(path) if text is None else text, mentions)
    raw = read_plan_text(path)
    with _no_cyclic_gc():
        cached = cache.fetch(path, raw)
        if cached is not None:
            return cached
        with probes.recording() as asked:
            compiled = _load(path, raw)
            compiled.fingerprints  # noqa: B018  (made now, so that the cache keeps them)
        cache.keep(path, raw, asked, compiled)
        return compiled


def _load(path: Path, raw: str | bytes, mentions: Mentions | None = None) -> CompiledPlan:
    """Parse, validate and compile ``raw`` (see :func:`load_plan`)."""
    from planrun.plan.compile import compile_plan

    source = _parse(raw, str(path))
    salvaged = validate_source(source)
    found = [*source.problems, *salvaged.diagnostics]
    if salvaged.model is None:
        raise PlanError(found)
    try:
        compiled = compile_plan(salvaged.source, salvaged.model, path, mentions)
    except PlanError as error:
        raise PlanError([*found, *error.diagnostics]) from None
    if found:
        raise PlanError(found)
    return compiled


def _parse(raw: str | bytes, name: str) -> Source:
    """:func:`parse`, whose problems (but an empty file) hide every other check: the first
    one says so."""
    from planrun.plan.source import parse

    try:
        return parse(raw, name)
    except PlanError as error:
        first, *rest = error.diagnostics
        if first.message.startswith("the plan is empty"):
            raise
        noted = Diagnostic(first.location, f"{first.message}; {HIDES_EVERYTHING}")
        raise PlanError([noted, *rest]) from None


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

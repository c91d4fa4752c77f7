"""Loading a plan: text → YAML data → validated model → compiled plan, or every error."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from planrun.errors import Location, PlanError
from planrun.plan.compile import CompiledPlan, compile_plan
from planrun.plan.diagnose import diagnostics_from
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
            Location(name), f"the file is {size} bytes; plans are limited to {MAX_BYTES}"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PlanError.single(Location(name), f"cannot read: {exc.strerror}") from None


def validate_source(source: Source) -> PlanFile:
    if not isinstance(source.data, dict):
        kind = "a list" if isinstance(source.data, list) else f"{type(source.data).__name__}"
        raise PlanError.single(
            source.locate(()),
            f"a plan is a mapping with version, tasks and other keys; this file holds {kind}",
        )
    try:
        return PlanFile.model_validate(source.data)
    except ValidationError as exc:
        raise PlanError(_polish(diagnostics_from(exc, source, PlanFile))) from None


def _polish(diagnostics: list) -> list:  # type: ignore[type-arg]
    from planrun.errors import Diagnostic

    result = []
    for d in diagnostics:
        message = d.message
        if message.startswith("tasks: dictionary should have at least 1 item"):
            message = "tasks: a plan needs at least one task"
        result.append(Diagnostic(d.location, message))
    return result


def load_plan(path: str | Path, text: str | bytes | None = None) -> CompiledPlan:
    """Read, validate and compile the plan at ``path``; raise PlanError listing every problem."""
    path = Path(path)
    raw = read_plan_text(path) if text is None else text
    source = parse(raw, str(path))
    model = validate_source(source)
    return compile_plan(source, model, path)

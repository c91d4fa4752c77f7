"""``plan`` and ``apply`` over a plan with ``repositories:``: clone or fetch them first
(:mod:`planrun.changes.clones`), and say which were left out and why."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from planrun.plan.resolved import CompiledPlan

if TYPE_CHECKING:
    from planrun.changes.clones import Prepared


def with_repositories(plan: CompiledPlan, err: TextIO) -> tuple[CompiledPlan, Prepared | None]:
    """The plan to decide on: without the repositories that opted out or could not be
    cloned (each named on ``err``); unchanged when it has no ``repositories:``."""
    if not plan.repositories:
        return plan, None
    from planrun.changes.clones import prepare_repositories

    prepared = prepare_repositories(plan)
    for left in prepared.left:
        what = "not run" if left.failed else "ignored"
        print(f"planrun: {left.repo} ({left.project}): {what}: {left.why}", file=err)
    return prepared.plan, prepared

"""From a compiled plan and an open state to the one decision, and to a run's settings.

``planrun plan`` and ``planrun apply`` (and ``approve``) call :func:`decide_for` with the
same inputs, so they cannot disagree: the fingerprints of the plan's tasks, what the store
knows of them (:class:`planrun.state.folder.State`), and what the integration branches
say (:func:`planrun.workspace.targets.inspect_landings`: landed work that is gone, landings
that planrun died before recording). :func:`settings_for` turns the decision into what the
scheduler and the workspace are told.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import trio

from planrun.core.decision import (
    NO_LANDINGS,
    PLAIN,
    Choices,
    Known,
    Landings,
    RunDecision,
    decide_run,
)
from planrun.core.outcomes import Status

if TYPE_CHECKING:
    from planrun.plan.resolved import CompiledPlan
    from planrun.run.context import RunSettings


def fingerprints_of(plan: CompiledPlan) -> dict[str, tuple[str, dict[str, str]]]:
    """The plan's fingerprints (a copy: the plan keeps its own)."""
    return dict(plan.fingerprints)


def decide_for(
    plan: CompiledPlan,
    known: Mapping[str, Known],
    choices: Choices = PLAIN,
    fingerprints: Mapping[str, tuple[str, Mapping[str, str]]] | None = None,
) -> RunDecision:
    """The one decision (:func:`planrun.core.decision.decide_run`) with the landings read
    from the plan's git projects. Raises TargetError for a target planrun did not make."""
    fps = fingerprints if fingerprints is not None else fingerprints_of(plan)
    landings = read_landings(plan, known, {k: fp for k, (fp, _) in fps.items()})
    return decide_run(plan, fps, known, choices, landings)


def read_landings(
    plan: CompiledPlan, known: Mapping[str, Known], fingerprints: Mapping[str, str]
) -> Landings:
    """What the target branches say of ``known`` (nothing to read: no git call at all)."""
    if not any(p.worktrees for p in plan.projects.values()):
        return NO_LANDINGS
    from planrun.workspace.targets import inspect_landings

    return trio.run(inspect_landings, plan, known, fingerprints)


def landed_commits(known: Mapping[str, Known], decision: RunDecision) -> dict[str, str]:
    """Each task's landed commit that dependents' bases must contain: done tasks that stay
    up to date, and landings found on the target."""
    steps = decision.steps
    landed = {
        k: t.landed_commit
        for k, t in known.items()
        if t.status is Status.DONE and t.landed_commit and k in steps and not steps[k].decision.run
    }
    landed.update(decision.adopted)
    return landed


def settings_for(settings: RunSettings, decision: RunDecision) -> None:
    """Tell the run what the decision says: what is done, in review, out of attempts, and
    the attempt budgets of what runs."""
    settings.done = decision.done
    settings.in_review = decision.in_review
    settings.exhausted = decision.exhausted
    runs = {k: s.decision for k, s in decision.steps.items() if s.decision.run}
    settings.prior_attempts = {k: d.prior_attempts for k, d in runs.items()}
    settings.attempt_credit = {k: d.credit for k, d in runs.items() if d.credit}

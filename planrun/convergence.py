"""Which tasks ``apply`` runs, and why (pure): the Terraform-like part of planrun.

A task is up to date when its last success is durable, its fingerprint is unchanged and no
task it waits for runs again. Everything else runs: new tasks, changed ones (naming the
fields that changed), ones that never finished, forced ones, and the dependents of any of
these. A task that failed keeps its spent attempts unless ``--rerun-failed`` (or a change
of definition) gives it a fresh budget.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from planrun.outcomes import Status
from planrun.plan.compile import CompiledPlan


@dataclass(frozen=True)
class Known:
    """What the store remembers of a task (from earlier runs)."""

    fingerprint: str
    status: Status
    attempts: int
    done_run_id: str | None = None
    fields: Mapping[str, str] | None = None  # per-field hashes of the done definition


@dataclass(frozen=True)
class Decision:
    run: bool
    why: str
    prior_attempts: int = 0


def work_under(plan: CompiledPlan, key: str) -> list[str]:
    """A work task itself, or the work tasks inside a group."""
    task = plan.tasks[key]
    if task.kind == "work":
        return [key]
    return [k for child in task.children for k in work_under(plan, child)]


def decide(
    plan: CompiledPlan,
    fingerprints: Mapping[str, tuple[str, Mapping[str, str]]],
    known: Mapping[str, Known],
    *,
    force: Collection[str] = (),
    force_all: bool = False,
    rerun_failed: bool = False,
) -> dict[str, Decision]:
    forced = {k for key in force for k in work_under(plan, key)}
    decisions: dict[str, Decision] = {}
    for key in plan.work:
        fp, fields = fingerprints[key]
        seen = known.get(key)
        decisions[key] = _one(
            plan,
            key,
            fp,
            fields,
            seen,
            decisions,
            forced=force_all or key in forced,
            rerun_failed=rerun_failed,
        )
    return decisions


def _one(
    plan: CompiledPlan,
    key: str,
    fp: str,
    fields: Mapping[str, str],
    seen: Known | None,
    earlier: Mapping[str, Decision],
    *,
    forced: bool,
    rerun_failed: bool,
) -> Decision:
    if forced:
        return Decision(True, "forced")
    if seen is None:
        return Decision(True, "new: never ran")
    if seen.fingerprint != fp:
        return Decision(True, "changed: " + _changed(seen.fields, fields))
    prior = 0 if (rerun_failed and seen.status is Status.FAILED) else seen.attempts
    if seen.status is not Status.DONE:
        what = {Status.FAILED: "failed", Status.RUNNING: "interrupted"}.get(
            seen.status, seen.status.value
        )
        return Decision(True, f"not done: {what} last time", prior_attempts=prior)
    for need in _work_needs(plan, key):
        if earlier.get(need, Decision(False, "")).run:
            return Decision(True, f"need {need} runs again")
    return Decision(False, f"up to date (done in run {seen.done_run_id})")


def _changed(before: Mapping[str, str] | None, now: Mapping[str, str]) -> str:
    if not before:
        return "definition"
    names = sorted(n for n in set(before) | set(now) if before.get(n) != now.get(n))
    return ", ".join(names) if names else "definition"


def _work_needs(plan: CompiledPlan, key: str) -> list[str]:
    found: list[str] = []
    for need in plan.graph.waits_for(key):
        found += work_under(plan, need)
    return found

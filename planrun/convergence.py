"""Which tasks ``apply`` runs, and why (pure): the Terraform-like part of planrun (SPEC §5).

A work task is *up to date*, and is not run, when all of these hold:

- its last success is durable (``task_state`` says DONE, written by ``task_done``);
- its fingerprint is unchanged (:mod:`planrun.fingerprint`);
- no task it waits for runs again in this apply;
- no task it waits for became done in a *later* run than it did (the need was re-done
  after it, e.g. by ``--only``, or by an apply that died before it could re-run this one).

Everything else runs, with a reason a human can read: ``new: never ran``,
``changed: run, env`` (the fields whose hash changed), ``not done: failed last time``,
``not done: interrupted last time``, ``forced``, ``need B runs again``,
``need B was done again after it (run R)``. Up-to-date tasks get
``up to date (done in run R)``.

Attempt budgets: a task that failed, or was interrupted because planrun died, keeps the
attempts it already started (``prior_attempts``), so a task that kills planrun every time
still runs out of attempts (with the default ``retry.attempts: 1``, one crash is enough:
``--rerun-failed`` then gives it new ones). A task that was *cancelled* (Ctrl-C,
``on_failure``) was stopped through no fault of its own and gets a fresh budget, as do
changed, forced (``--force``, ``--force-all``) and, with ``--rerun-failed``, failed tasks
(``prior_attempts == 0``).

Nothing here reads a store or a clock; :func:`planrun.commands.state.known_tasks` builds the
:class:`Known` records from the store.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from planrun.outcomes import Status

if TYPE_CHECKING:
    from planrun.plan.compile import CompiledPlan

#: A task's fingerprint and the short hash of each of its fields (planrun.fingerprint).
Fingerprints = Mapping[str, tuple[str, Mapping[str, str]]]


@dataclass(frozen=True)
class Known:
    """What the store remembers of a task from earlier runs.

    ``attempts`` are the attempts started for ``fingerprint`` since the budget was last
    reset; ``done_order`` ranks ``done_run_id`` among the plan's runs (higher is later), so
    that a need done again after its dependent is noticed.
    """

    fingerprint: str
    status: Status
    attempts: int
    done_run_id: str | None = None
    fields: Mapping[str, str] | None = None  # per-field hashes of the recorded definition
    done_order: int | None = None
    credit: int = 0  # attempts not charged (the first cut short by planrun's own death)


@dataclass(frozen=True)
class Decision:
    """Whether ``apply`` runs a task, why, and how many of its attempts are already spent."""

    run: bool
    why: str
    prior_attempts: int = 0  # attempts already started (numbering goes on from here)
    credit: int = 0  # of those, how many do not count against retry.attempts

    @property
    def charged(self) -> int:
        return self.prior_attempts - self.credit


def work_under(plan: CompiledPlan, key: str) -> list[str]:
    """``key`` itself if it is a work task, else the work tasks inside the group."""
    task = plan.tasks[key]
    if task.kind == "work":
        return [key]
    return [k for child in task.children for k in work_under(plan, child)]


def decide(
    plan: CompiledPlan,
    fingerprints: Fingerprints,
    known: Mapping[str, Known],
    *,
    force: Collection[str] = (),
    force_all: bool = False,
    rerun_failed: bool = False,
) -> dict[str, Decision]:
    """A decision for every work task of ``plan``, in dependency order.

    ``fingerprints`` must cover ``plan.work``; ``known`` may lack tasks that never ran.
    ``force`` may name groups (their work tasks are forced). A task runs when one of its
    needs runs, so the result is closed under "dependents of what runs".
    """
    forced = {k for key in force for k in work_under(plan, key)}
    decisions: dict[str, Decision] = {}
    for key in _dependency_order(plan):
        fp, fields = fingerprints[key]
        decisions[key] = _one(
            plan,
            key,
            fp,
            fields,
            known,
            decisions,
            forced=force_all or key in forced,
            rerun_failed=rerun_failed,
        )
    return decisions


def _dependency_order(plan: CompiledPlan) -> list[str]:
    """The work tasks, every task after the tasks it waits for."""
    work = set(plan.work)
    return [k for k in plan.graph.topological() if k in work]


def _one(
    plan: CompiledPlan,
    key: str,
    fp: str,
    fields: Mapping[str, str],
    known: Mapping[str, Known],
    earlier: Mapping[str, Decision],
    *,
    forced: bool,
    rerun_failed: bool,
) -> Decision:
    seen = known.get(key)
    if forced:
        return Decision(True, "forced")
    if seen is None:
        return Decision(True, "new: never ran")
    if seen.fingerprint != fp:
        return Decision(True, "changed: " + _changed(seen.fields, fields))
    if seen.status is not Status.DONE:
        fresh = seen.status is Status.CANCELLED or (rerun_failed and seen.status is Status.FAILED)
        prior = 0 if fresh else seen.attempts
        credit = 0 if fresh else seen.credit
        return Decision(
            True, f"not done: {_what(seen.status)} last time", prior_attempts=prior, credit=credit
        )
    return _against_needs(plan, key, seen, known, earlier)


def _against_needs(
    plan: CompiledPlan,
    key: str,
    seen: Known,
    known: Mapping[str, Known],
    earlier: Mapping[str, Decision],
) -> Decision:
    """A task done with its current definition: up to date unless a need moved on."""
    for need in _work_needs(plan, key):
        if earlier.get(need, Decision(False, "")).run:
            return Decision(True, f"need {need} runs again")
        other = known.get(need)
        if _later(other, seen):
            assert other is not None
            return Decision(True, f"need {need} was done again after it (run {other.done_run_id})")
    return Decision(False, f"up to date (done in run {seen.done_run_id})")


def _later(need: Known | None, task: Known) -> bool:
    """True when ``need`` was last done in a later run than ``task``."""
    if need is None or need.done_order is None or task.done_order is None:
        return False
    return need.done_order > task.done_order


def _what(status: Status) -> str:
    named = {Status.FAILED: "failed", Status.RUNNING: "interrupted"}
    return named.get(status, status.value)


def _changed(before: Mapping[str, str] | None, now: Mapping[str, str]) -> str:
    """The names of the fields whose hash differs, or ``definition`` when unknown."""
    if not before:
        return "definition"
    names = sorted(n for n in set(before) | set(now) if before.get(n) != now.get(n))
    return ", ".join(names) if names else "definition"


def _work_needs(plan: CompiledPlan, key: str) -> list[str]:
    """The work tasks ``key`` waits for directly, seeing through groups."""
    found: list[str] = []
    for need in plan.graph.waits_for(key):
        found += work_under(plan, need)
    return found

"""What happens to each task next, and why (pure): the one decision of planrun (SPEC §5).

``planrun plan``, ``apply``, ``approve`` and ``status`` all read it from :func:`decide_run`,
so ``plan`` never predicts what ``apply`` does not do. Nothing here reads a store, a
repository or a clock: the edges gather :class:`Known` records (from the store) and
:class:`Landings` (from the integration branches) and pass them in.

First, per work task, whether its work is *current* (:func:`decide`). It is, and the task
is not run, when all of these hold:

- its last success is durable (``task_state`` says DONE, written by ``task_done``);
- its fingerprint is unchanged (:mod:`planrun.core.fingerprint`);
- what it landed is still on its integration branch (a branch deleted, reset or rewritten
  loses it: the task runs again);
- no task it waits for runs again in this apply;
- no task it waits for became done in a *later* run than it did.

A task whose last attempt landed its work but died before recording it (the landing
commit's trailer names that attempt) is current too: it is *adopted*, recorded done
without running again, so nothing lands twice. So is a done task whose landed commit was
rebased (a changeset's moved base): its trailer is found under a new commit, which is
recorded as its landing.

Then each task gets one :class:`Action`, in dependency order: ``run`` (nothing it needs
runs first), ``wait`` (it runs after needs that run in the same apply), ``up to date``,
``in review`` (waits for ``planrun approve``), ``fail`` (its attempts are spent),
``blocked`` (a need fails for sure or waits for review, so it cannot run) or ``skip``
(``run_when: failure`` and no need can fail).

Attempt budgets: a task that failed, or was interrupted, keeps the attempts it already
started (``prior_attempts``). Attempts cut short by planrun's own death are not charged,
up to :data:`INTERRUPT_CREDIT` of them in a row, so a crash or two never uses up a task,
while a task that kills planrun every time still runs out. A *cancelled* task (Ctrl-C,
``on_failure``) gets a fresh budget, as do changed and forced tasks and, with
``--rerun-failed``, failed ones.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from planrun.core.frozen import frozen
from planrun.core.outcomes import Status

if TYPE_CHECKING:
    from planrun.plan.resolved import CompiledPlan

#: A task's fingerprint and the short hash of each of its fields (planrun.core.fingerprint).
Fingerprints = Mapping[str, tuple[str, Mapping[str, str]]]

#: How many attempts in a row, cut short by planrun's own death, are not charged.
INTERRUPT_CREDIT = 3


@frozen
class Known:
    """What the store remembers of a task from earlier runs.

    ``attempts`` are the attempts started for ``fingerprint`` since the budget was last
    reset; ``credit`` how many of the latest of them planrun's own death cut short;
    ``done_order`` ranks ``done_run_id`` among the plan's runs (higher is later), so that
    a need done again after its dependent is noticed. ``landed_commit`` is what the done
    run landed; ``last_attempt`` names the latest attempt (``run_id#n``), which a landing
    trailer on the target can prove landed.
    """

    fingerprint: str
    status: Status
    attempts: int
    done_run_id: str | None = None
    fields: Mapping[str, str] | None = None  # per-field hashes of the recorded definition
    done_order: int | None = None
    credit: int = 0
    landed_commit: str | None = None
    last_attempt: str | None = None


@frozen
class Landings:
    """What the integration branches say, gathered by the workspace edge.

    ``gone``: done tasks whose landed commit is no longer on their target → why (the
    branch was deleted, reset or rewritten). ``found``: tasks whose latest attempt's
    landing commit (by its trailer) is on the target → that commit.
    """

    gone: Mapping[str, str] = field(default_factory=dict)
    found: Mapping[str, str] = field(default_factory=dict)
    moved: Mapping[str, str] = field(default_factory=dict)  # done work rebased → its commit


@frozen
class Decision:
    """Whether a task's work must be done (again), why, and its attempts already spent."""

    run: bool
    why: str
    prior_attempts: int = 0  # attempts already started (numbering goes on from here)
    credit: int = 0  # of those, how many do not count against retry.attempts
    adopted: str | None = None  # a landing found on the target: recorded done, not run
    fresh: bool = False  # start from the target's tip: earlier work is not continued

    @property
    def charged(self) -> int:
        return self.prior_attempts - self.credit


#: The decision of every task that never ran, shared (a plan may hold 100,000 of them).
NEVER_RAN = Decision(True, "new: never ran", fresh=True)


class Action(StrEnum):
    RUN = "run"
    WAIT = "wait"
    UP_TO_DATE = "up to date"
    IN_REVIEW = "in review"
    FAIL = "fail"
    BLOCKED = "blocked"
    SKIP = "skip"


@frozen
class Step:
    """What ``apply`` does with one work task next, and why."""

    action: Action
    why: str
    decision: Decision


_RUN_NEW = Step(Action.RUN, NEVER_RAN.why, NEVER_RAN)


@frozen
class Choices:
    """The apply options that change decisions."""

    force: Collection[str] = ()
    force_all: bool = False
    rerun_failed: bool = False


@frozen
class RunDecision:
    """The one decision for a whole plan: a :class:`Step` per work task, in dependency
    order, and what the run must be told."""

    steps: Mapping[str, Step]

    @property
    def done(self) -> dict[str, str]:
        """Up-to-date tasks → the reason shown."""
        return {k: s.why for k, s in self.steps.items() if s.action is Action.UP_TO_DATE}

    @property
    def in_review(self) -> dict[str, str]:
        return {k: s.why for k, s in self.steps.items() if s.action is Action.IN_REVIEW}

    @property
    def exhausted(self) -> dict[str, str]:
        """Tasks apply fails at once (no attempts left) → why."""
        return {k: s.why for k, s in self.steps.items() if s.action is Action.FAIL}

    @property
    def adopted(self) -> dict[str, str]:
        """Tasks whose landing was found on the target → the commit (recorded done)."""
        return {k: s.decision.adopted for k, s in self.steps.items() if s.decision.adopted}

    @property
    def fresh(self) -> set[str]:
        """Tasks that run and start over: earlier work on their branch is not continued."""
        return {k for k, s in self.steps.items() if s.decision.run and s.decision.fresh}

    @property
    def decisions(self) -> dict[str, Decision]:
        return {k: s.decision for k, s in self.steps.items()}


#: No apply options: what a plain ``planrun apply`` decides.
PLAIN = Choices()
#: No word from the integration branches (no git project, or not read).
NO_LANDINGS = Landings()


def decide_run(
    plan: CompiledPlan,
    fingerprints: Fingerprints,
    known: Mapping[str, Known],
    choices: Choices = PLAIN,
    landings: Landings = NO_LANDINGS,
) -> RunDecision:
    """The :class:`Step` of every work task of ``plan`` (see the module doc)."""
    known = recognise_legacy(plan, fingerprints, known)
    decisions = decide(
        plan,
        fingerprints,
        known,
        force=choices.force,
        force_all=choices.force_all,
        rerun_failed=choices.rerun_failed,
        landings=landings,
    )
    forced = _forced(plan, choices)
    steps: dict[str, Step] = {}
    for key in _dependency_order(plan):
        seen = known.get(key)
        review = (
            seen is not None
            and seen.status is Status.IN_REVIEW
            and key not in forced
            and seen.fingerprint == fingerprints[key][0]
            and decisions[key].run
        )
        steps[key] = _step(plan, key, decisions[key], steps, review=review)
    return RunDecision(steps)


def recognise_legacy(
    plan: CompiledPlan, fingerprints: Fingerprints, known: Mapping[str, Known]
) -> Mapping[str, Known]:
    """``known`` with each fingerprint of the form before project paths were portable
    (:func:`planrun.core.fingerprint.legacy_fingerprint`) that matches the task's definition
    today read as today's fingerprint (and field hashes): a store written before the
    upgrade re-runs nothing. Only a fingerprint that differs is looked at twice."""
    from planrun.core.fingerprint import legacy_fingerprint

    upgraded: dict[str, Known] | None = None
    for key, seen in known.items():
        now = fingerprints.get(key)
        if now is None or seen.fingerprint == now[0] or key not in plan.tasks:
            continue
        if legacy_fingerprint(plan, plan.tasks[key]) == seen.fingerprint:
            upgraded = dict(known) if upgraded is None else upgraded
            upgraded[key] = replace(seen, fingerprint=now[0], fields=dict(now[1]))
    return known if upgraded is None else upgraded


def _step(
    plan: CompiledPlan, key: str, decision: Decision, earlier: Mapping[str, Step], *, review: bool
) -> Step:
    task = plan.tasks[key]
    if review:
        why = f"waiting for review: planrun approve {plan.path.name} {key}"
        return Step(Action.IN_REVIEW, why, decision)
    if not decision.run:
        return Step(Action.UP_TO_DATE, decision.why, decision)
    needs = [(n, earlier[n]) for n in work_needs(plan, key)]
    stuck = [(n, s) for n, s in needs if s.action in (Action.FAIL, Action.BLOCKED)]
    parked = [(n, s) for n, s in needs if s.action is Action.IN_REVIEW]
    running = [n for n, s in needs if s.action in (Action.RUN, Action.WAIT)]
    if parked:
        return Step(Action.BLOCKED, f"waits for the review of {parked[0][0]}", decision)
    if task.run_when == "success" and stuck:
        name, step = stuck[0]
        what = "has no attempts left" if step.action is Action.FAIL else "is blocked"
        return Step(Action.BLOCKED, f"need {name} {what}", decision)
    if task.run_when == "failure" and not stuck and not running:
        return Step(Action.SKIP, "run_when is failure and no need fails", decision)
    if decision.charged >= task.retry.attempts:
        return Step(Action.FAIL, _exhausted(decision, task.retry.attempts), decision)
    if running:
        return Step(Action.WAIT, f"{decision.why}; after {', '.join(running)}", decision)
    if decision is NEVER_RAN:
        return _RUN_NEW
    return Step(Action.RUN, decision.why, decision)


def _exhausted(decision: Decision, attempts: int) -> str:
    """Why a task has no attempts left, saying which attempts planrun's death cut short."""
    spent = f"{decision.charged} of {attempts} spent"
    if decision.credit:
        spent += f"; {decision.credit} more interrupted by planrun's own death, not charged"
    return f"no attempts left ({spent}; {decision.why}); `apply --rerun-failed` gives new ones"


def work_under(plan: CompiledPlan, key: str) -> list[str]:
    """``key`` itself if it is a work task, else the work tasks inside the group."""
    task = plan.tasks[key]
    if task.kind == "work":
        return [key]
    return [k for child in task.children for k in work_under(plan, child)]


def _forced(plan: CompiledPlan, choices: Choices) -> set[str]:
    if choices.force_all:
        return set(plan.work)
    return {k for key in choices.force for k in work_under(plan, key)}


def decide(
    plan: CompiledPlan,
    fingerprints: Fingerprints,
    known: Mapping[str, Known],
    *,
    force: Collection[str] = (),
    force_all: bool = False,
    rerun_failed: bool = False,
    landings: Landings = NO_LANDINGS,
) -> dict[str, Decision]:
    """Whether each work task of ``plan`` must run, in dependency order (no actions yet).

    ``fingerprints`` must cover ``plan.work``; ``known`` may lack tasks that never ran.
    ``force`` may name groups (their work tasks are forced). A task runs when one of its
    needs runs, so the result is closed under "dependents of what runs".
    """
    forced = _forced(plan, Choices(force, force_all))
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
            forced=key in forced,
            rerun_failed=rerun_failed,
            landings=landings,
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
    landings: Landings,
) -> Decision:
    seen = known.get(key)
    if forced:
        return Decision(True, "forced", fresh=True)
    if seen is None:
        return NEVER_RAN
    if seen.fingerprint != fp:
        return Decision(True, "changed: " + _changed(seen.fields, fields), fresh=True)
    if seen.status is not Status.DONE:
        found = landings.found.get(key)
        if found is not None:
            run = (seen.last_attempt or "?").partition("#")[0]
            why = f"up to date (landed {found[:12]} in run {run}; planrun died before recording it)"
            return Decision(False, why, adopted=found)
        fresh = seen.status is Status.CANCELLED or (rerun_failed and seen.status is Status.FAILED)
        prior = 0 if fresh else seen.attempts
        credit = 0 if fresh else seen.credit
        return Decision(
            True, f"not done: {_what(seen.status)} last time", prior_attempts=prior, credit=credit
        )
    gone = landings.gone.get(key)
    if gone is not None:
        return Decision(True, f"landed work gone: {gone}", fresh=True)
    kept = _against_needs(plan, key, seen, known, earlier)
    moved = landings.moved.get(key)
    if moved is None or kept.run:
        return kept
    return Decision(False, f"up to date (its work was rebased to {moved[:12]})", adopted=moved)


def _against_needs(
    plan: CompiledPlan,
    key: str,
    seen: Known,
    known: Mapping[str, Known],
    earlier: Mapping[str, Decision],
) -> Decision:
    """A task done with its current definition: up to date unless a need moved on."""
    for need in work_needs(plan, key):
        if earlier.get(need, Decision(False, "")).run:
            return Decision(True, f"need {need} runs again", fresh=True)
        other = known.get(need)
        if _later(other, seen):
            assert other is not None
            why = f"need {need} was done again after it (run {other.done_run_id})"
            return Decision(True, why, fresh=True)
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


def work_needs(plan: CompiledPlan, key: str) -> list[str]:
    """The work tasks ``key`` waits for directly, seeing through groups, sorted."""
    found: set[str] = set()
    for need in plan.graph.waits_for(key):
        found.update(work_under(plan, need))
    return sorted(found)

"""One ``apply``, from a compiled plan to its exit code (the command only parses).

Order matters: the state lock, then the state folder (recovering a dead run), the one
decision (:mod:`planrun.run.prepare`), the run recorded with what was decided, then the
scheduler under a signal watcher (:func:`planrun.run.wiring.run_with_signals`). The report
is written on every way out, a crash of planrun itself included, and a report that cannot
be written is named without hiding the run's own result.
"""

from __future__ import annotations

import secrets
import socket
import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from planrun import __version__
from planrun.core.decision import Choices, RunDecision
from planrun.core.events import Observers
from planrun.core.frozen import frozen
from planrun.core.outcomes import Status
from planrun.core.runstate import RunState
from planrun.errors import StoreError
from planrun.plan.resolved import CompiledPlan
from planrun.report.model import ChangesetReport, PlanInfo, RunReport, total_usage
from planrun.report.outputs import Outputs, Written, write_reports
from planrun.run.context import RunSettings
from planrun.run.prepare import decide_for, fingerprints_of, landed_commits, settings_for
from planrun.run.scheduler import Scheduler
from planrun.run.tracking import outbox_for, run_tracked
from planrun.run.wiring import sessions_for, shared_workspace, workspace_for
from planrun.state.folder import State, open_state
from planrun.state.store import iso
from planrun.workspace.base import Bases

if TYPE_CHECKING:
    from planrun.changes.basemove import Reconciled
    from planrun.changes.publisher import Publisher
    from planrun.trackers.outbox import Outbox

EXIT_OK, EXIT_FAILED, EXIT_WAITING, EXIT_INTERRUPTED = 0, 1, 4, 130
#: Statuses a task waits in for a person: `planrun approve`, `planrun answer`.
WAITING_FOR_A_PERSON = frozenset({Status.IN_REVIEW, Status.NEEDS_INPUT})


@frozen
class ApplyOptions:
    """What the command line adds to the plan for one apply."""

    state_dir: Path
    max_concurrent: int | None = None
    on_failure: str | None = None
    only: list[str] | None = None
    choices: Choices = field(default_factory=Choices)
    dry_run: bool = False
    outputs: Outputs = field(default_factory=Outputs)
    shared: SharedOptions | None = None  # a run shared through PostgreSQL (docs/scale-out.md)
    follow_up: bool = False  # open PRs' requested changes and failing checks to the agent


@frozen
class SharedOptions:
    store: str  # postgresql://...
    run_id: str | None = None
    remote: str = "origin"


@frozen
class Applied:
    """How an apply ended: its exit code, where its JSON report is, and what went wrong
    besides the tasks (a journal or report that could not be written), for the user."""

    exit_code: int
    report: Path | None
    problems: tuple[str, ...] = ()


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def apply_plan(plan: CompiledPlan, options: ApplyOptions, observers: Observers) -> Applied:
    """Run ``plan`` (see the module doc); ``observers`` see every event of the run."""
    settings = RunSettings(
        run_id=new_run_id(),
        state_dir=options.state_dir,
        max_concurrent=options.max_concurrent,
        on_failure=options.on_failure,
        only=options.only,
    )
    with ExitStack() as stack:
        claims = None if options.shared is None else _join(plan, options, settings, stack)
        if not options.dry_run:
            stack.callback(_lock(options.state_dir).release)
        state = stack.enter_context(open_state(plan, options.state_dir, readonly=options.dry_run))
        reconciled = _reconciled(plan, state, settings, options, claims)
        if reconciled is not None and reconciled.force:
            force = (*options.choices.force, *sorted(reconciled.force))
            options = replace(options, choices=replace(options.choices, force=force))
        scheduler, fingerprints = _scheduler(plan, state, settings, options, observers, claims)
        outbox = outbox_for(plan, state, scheduler, observers)  # status back to trackers
        publisher = _publisher(plan, state, scheduler, observers, reconciled)  # pull requests
        try:
            trio.run(_run, scheduler, outbox, publisher)
        finally:  # written on every way out, a crash of planrun itself included
            report = build_report(plan, scheduler, fingerprints)
            report.exit_code = _exit_code(run_exit_code(scheduler), publisher, scheduler)
            report.changesets = _changesets(publisher)
            end_error = _end(state, settings.run_id, report.status)
            written = write_reports(
                plan, report, options.state_dir, options.outputs, default=not options.dry_run
            )
    applied = _applied(plan, scheduler, settings, options, end_error, written)
    if publisher is None or applied.exit_code not in (0, 1, 4) or applied.problems:
        return applied
    return replace(applied, exit_code=_exit_code(applied.exit_code, publisher, scheduler))


def _reconciled(
    plan: CompiledPlan, state: State, settings: RunSettings, options: ApplyOptions, claims: Any
) -> Reconciled | None:
    """Changesets whose base moved (planrun.changes.basemove), before the decision."""
    if options.dry_run or claims is not None or options.only:
        return None
    if not any(p.changeset for p in plan.projects.values()):
        return None
    from planrun.run.reconciling import reconcile_for

    return reconcile_for(plan, state, settings, follow_up=options.follow_up)


def _publisher(
    plan: CompiledPlan,
    state: State,
    scheduler: Scheduler,
    observers: Observers,
    reconciled: Reconciled | None = None,
) -> Publisher | None:
    """The changesets' publisher (planrun.changes), if the plan has changesets."""
    if state.readonly or state.journal is None:
        return None
    closes = bool(plan.repositories) and plan.publishing.close_unmatched
    if not closes and not plan.has_changesets:
        return None  # imports nothing of planrun.changes (nor httpx)
    from planrun.changes.wiring import publisher_for

    settings, redact = scheduler.settings, scheduler.run_context.redact
    publisher = publisher_for(
        plan, state.store, settings.run_id, settings.environ, redact, observers, settings.state_dir
    )
    if publisher is not None:
        publisher.before_run(reconciled)
    return publisher


async def _run(scheduler: Scheduler, outbox: Outbox | None, publisher: Publisher | None) -> None:
    if publisher is None:
        await run_tracked(scheduler, outbox)
        return
    from planrun.changes.wiring import run_published

    await run_published(partial(run_tracked, scheduler, outbox), publisher)


def _exit_code(code: int, publisher: Publisher | None, scheduler: Scheduler) -> int:
    """``code`` under the plan's ``changesets.fail_on`` (planrun.changes.wiring); a
    canary wave that halted the rest fails the run whatever ``fail_on`` says."""
    waves = scheduler.state.waves
    halted = waves is not None and waves.halted is not None
    if publisher is not None:
        from planrun.changes.wiring import exit_code

        code = exit_code(code, publisher, _broken(scheduler))
    return 1 if halted and code in (0, 4) else code


def _changesets(publisher: Publisher | None) -> list[ChangesetReport]:
    """What the run's changesets came to, for its report (read back from the store)."""
    if publisher is None:
        return []
    from planrun.changes.records import run_changesets

    try:
        return run_changesets(publisher.store, publisher.run_id)
    except StoreError:  # the report is still written; the store says the rest
        return []


def _broken(scheduler: Scheduler) -> set[str]:
    broken = (Status.FAILED, Status.CANCELLED, Status.SKIPPED)
    tasks = scheduler.state.tasks.items()
    return {k for k, t in tasks if t.status in broken and not t.expected}


def _lock(state_dir: Path) -> Any:
    from planrun.state.lock import StateLock

    return StateLock.acquire(state_dir)


def _join(
    plan: CompiledPlan, options: ApplyOptions, settings: RunSettings, stack: ExitStack
) -> Any:
    """This machine's claims in the shared run (closed, leaving the run, on the way out)."""
    from planrun.run.shared_open import join

    assert options.shared is not None
    shared = options.shared
    claims = join(
        shared.store, plan, shared.run_id, options.state_dir, new_run_id(), settings.run_id
    )
    stack.callback(claims.close)
    print(f"planrun: shared run {claims.run_id} (machine {claims.machine})", file=sys.stderr)
    return claims


def _scheduler(
    plan: CompiledPlan,
    state: State,
    settings: RunSettings,
    options: ApplyOptions,
    observers: Observers,
    claims: Any = None,
) -> tuple[Scheduler, Mapping[str, tuple[str, Any]]]:
    """Decide, record the run's beginning, and wire the scheduler to the run's edges."""
    if claims is not None and options.shared and not options.dry_run:
        from planrun.run.shared_review import adopt_approved  # approved on another machine

        adopt_approved(claims, plan, state, options.shared.remote)
    fingerprints = fingerprints_of(plan)
    decision = decide_for(plan, state.known, options.choices, fingerprints)
    scheduler = scheduler_for(
        plan, state, settings, options, observers, (decision, fingerprints), claims
    )
    return scheduler, fingerprints


def scheduler_for(
    plan: CompiledPlan,
    state: State,
    settings: RunSettings,
    options: ApplyOptions,
    observers: Observers,
    decided: tuple[RunDecision, Mapping[str, tuple[str, Any]]],
    claims: Any = None,
) -> Scheduler:
    """Record the run's beginning with what was decided, and wire its scheduler (apply,
    and each pass of planrun serve, which decides in a thread: deciding reads git)."""
    decision, fingerprints = decided
    settings_for(settings, decision)
    journal = state.begin(settings.run_id, plan, decision, fingerprints, only=options.only)
    sessions = sessions_for(options.dry_run, plan)
    bases = Bases(
        landed=landed_commits(state.known, decision),
        fingerprints={k: fp for k, (fp, _) in fingerprints.items()},
        fresh=decision.fresh,
        reattach=state.reattach,
    )
    workspace = workspace_for(plan, settings, sessions, dry_run=options.dry_run, bases=bases)
    if claims is not None:
        workspace = shared_workspace(workspace, claims, options.shared)
    scheduler = Scheduler(
        plan,
        settings,
        sessions=sessions,
        observers=observers,
        journal=journal,
        workspace=workspace,
        claims=claims,
    )
    if claims is not None:
        claims.reports = scheduler.reports
        claims.find_landed = getattr(workspace, "find_landed", None)
        scheduler.attempts.spending = claims.spending  # run budgets count every machine
    return scheduler


def _end(state: State, run_id: str, status: str) -> StoreError | None:
    """Record the run's end; a store that refuses it (a full disk) is returned, not raised:
    the report is written all the same."""
    try:
        state.end(run_id, status)
    except StoreError as error:
        return error
    return None


def _applied(
    plan: CompiledPlan,
    scheduler: Scheduler,
    settings: RunSettings,
    options: ApplyOptions,
    end_error: StoreError | None,
    written: Written,
) -> Applied:
    failure = scheduler.journal_error or end_error
    problems = [str(failure)] if failure is not None else []
    problems += [str(problem) for problem in written.errors]
    if written.errors and end_error is None and not options.dry_run:
        again = f"planrun report {plan.path} --run {settings.run_id}"
        problems.append(f"the run is recorded; `{again}` writes its reports again")
    if failure is not None or written.errors:
        code = EXIT_INTERRUPTED if scheduler.interrupted else EXIT_FAILED
    else:
        code = run_exit_code(scheduler)
    return Applied(code, written.report, tuple(problems))


def run_exit_code(scheduler: Scheduler) -> int:
    """0 every selected task done; 4 nothing failed, was skipped or cancelled, but tasks
    wait for a person (in review, needs input; their dependents wait with them); 1 any
    other end; 130 interrupted (SPEC §6)."""
    if scheduler.interrupted:
        return EXIT_INTERRUPTED
    if scheduler.state.succeeded:
        return EXIT_OK
    return EXIT_WAITING if waits_only_for_people(scheduler.state) else EXIT_FAILED


def waits_only_for_people(state: RunState) -> bool:
    """Whether the run stopped only because tasks wait for a person: some task is in
    review or needs input, and none failed, was cancelled or was skipped (but for a
    run_when that did not match); what else is unfinished waits behind those tasks."""
    tasks = state.tasks.values()
    broken = (Status.FAILED, Status.CANCELLED)
    if any(t.status in broken or (t.status is Status.SKIPPED and not t.expected) for t in tasks):
        return False
    return any(t.status in WAITING_FOR_A_PERSON for t in tasks)


def build_report(
    plan: CompiledPlan,
    scheduler: Scheduler,
    fingerprints: Mapping[str, tuple[str, Any]] | None = None,
) -> RunReport:
    ended = time.time()
    tasks = scheduler.ledger.in_order(fingerprints)
    usage = total_usage(a.usage for t in tasks for a in t.attempts)
    exit_code = run_exit_code(scheduler)
    return RunReport(
        planrun_version=__version__,
        plan=PlanInfo(name=plan.name, path=str(plan.path), sha256=plan.sha256),
        run_id=scheduler.settings.run_id,
        host=socket.gethostname(),
        started_at=iso(scheduler.started_at),
        ended_at=iso(ended),
        duration_s=round(ended - scheduler.started_at, 3),
        status=scheduler.status,
        exit_code=exit_code,
        counts=scheduler.state.counts(),
        usage=usage,
        tasks=tasks,
        hook_failures=scheduler.ledger.hook_failures,
    )

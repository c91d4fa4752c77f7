"""``planrun apply PLAN``: run a plan and write its report.

Order matters: everything that can reject the plan or the arguments happens before the
first side effect (no state folder is created for an invalid plan). Then the state lock,
then the run under a signal watcher: the first SIGINT/SIGTERM stops gracefully (exit 130),
a second SIGKILLs every process group at once.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import trio

from planrun import __version__
from planrun.core.decision import Choices
from planrun.core.events import Observers
from planrun.core.names import state_folder
from planrun.errors import ReportWriteError, StoreError, UsageError
from planrun.plan.compile import CompiledPlan
from planrun.plan.diagnose import suggest
from planrun.plan.load import load_plan
from planrun.report.model import PlanInfo, RunReport, total_usage
from planrun.report.write import (
    append_text,
    junit_xml,
    report_json,
    summary_markdown,
    write_atomic,
)
from planrun.run.context import RunSettings
from planrun.run.prepare import decide_for, fingerprints_of, landed_commits, settings_for
from planrun.run.scheduler import Scheduler
from planrun.sessions.base import Session
from planrun.state.folder import open_state
from planrun.state.store import iso
from planrun.workspace.base import Bases, PlainWorkspace, Workspace

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def check_keys(plan: CompiledPlan, keys: list[str] | None, option: str) -> None:
    for key in keys or ():
        if key not in plan.tasks:
            raise UsageError(f"{option} {key}: no such task{suggest(key, plan.tasks)}")


def state_dir_for(plan: CompiledPlan, override: Path | None) -> Path:
    configured = state_folder(plan.name, plan.settings.state_dir)
    return (override or plan.directory / configured).resolve()


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass
class Outputs:
    report: Path | None
    junit: Path | None
    summary: Path | None


def run_apply(args: argparse.Namespace, out: TextIO) -> int:
    plan = load_plan(Path(args.plan))
    check_keys(plan, args.only, "--only")
    check_keys(plan, args.force, "--force")
    state_dir = state_dir_for(plan, args.state_dir)
    settings = RunSettings(
        run_id=new_run_id(),
        state_dir=state_dir,
        max_concurrent=args.max_concurrent,
        on_failure=args.on_failure,
        only=args.only,
    )
    sessions = _sessions(args.dry_run, plan)
    with ExitStack() as stack:
        observers = Observers()
        if not args.dry_run:
            lock = _lock(state_dir)
            stack.callback(lock.release)
        state = stack.enter_context(open_state(plan, state_dir, readonly=args.dry_run))
        fingerprints = fingerprints_of(plan)
        choices = Choices(args.force or (), args.force_all, args.rerun_failed)
        decision = decide_for(plan, state.known, choices, fingerprints)
        settings_for(settings, decision)
        journal = state.begin(settings.run_id, plan, decision, fingerprints, only=args.only)
        _add_progress(stack, observers, args.progress, out)
        if args.events:
            from planrun.ui.events import JsonLines

            stream = (
                out
                if args.events == "-"
                else stack.enter_context(open(args.events, "w", encoding="utf-8"))
            )
            observers.add(JsonLines(stream))
        scheduler = Scheduler(
            plan,
            settings,
            sessions=sessions,
            observers=observers,
            journal=journal,
            workspace=_workspace(
                plan,
                settings,
                sessions,
                dry_run=args.dry_run,
                bases=Bases(
                    landed=landed_commits(state.known, decision),
                    fingerprints={k: fp for k, (fp, _) in fingerprints.items()},
                    fresh=settings.fresh,
                    reattach=state.reattach,
                ),
            ),
        )
        end_error: StoreError | None = None
        try:
            trio.run(_run_with_signals, scheduler)
        finally:
            # written on every way out, a crash of planrun itself included
            report = build_report(plan, scheduler, fingerprints)
            try:
                state.end(settings.run_id, report.status)
            except StoreError as error:  # a full disk, say: the report is written all the same
                end_error = error
            outputs = Outputs(args.report, args.junit, args.summary)
            written = write_reports(
                plan, scheduler, report, state_dir, outputs, default=not args.dry_run
            )
            if written.report is not None:
                print(f"report: {written.report}", file=sys.stderr)
    failure = scheduler.journal_error or end_error
    if failure is not None:
        print(f"planrun: {failure}", file=sys.stderr)
    for problem in written.errors:
        print(f"planrun: {problem}", file=sys.stderr)
    if written.errors and end_error is None and not args.dry_run:
        again = f"planrun report {plan.path} --run {settings.run_id}"
        print(f"planrun: the run is recorded; `{again}` writes its reports again", file=sys.stderr)
    if scheduler.interrupted:
        return EXIT_INTERRUPTED
    if failure is not None or written.errors:
        return EXIT_FAILED
    return EXIT_OK if scheduler.state.succeeded else EXIT_FAILED


def _lock(state_dir: Path) -> Any:
    from planrun.state.lock import StateLock

    return StateLock.acquire(state_dir)


def _workspace(
    plan: CompiledPlan,
    settings: RunSettings,
    sessions: dict[str, Session],
    *,
    dry_run: bool,
    bases: Bases,
) -> Workspace:
    if dry_run:
        return PlainWorkspace(plan)
    from planrun.run.environment import base_env, secret_values
    from planrun.run.setup import SetupCommands
    from planrun.workspace.gitworkspace import GitWorkspace

    secrets = secret_values(plan, settings.environ)
    setup = SetupCommands(
        plan,
        settings.state_dir,
        session=sessions["subprocess"],
        # the run id marks setup processes too, so recovery finds what a dead run left
        env={**base_env(plan, settings.environ), "PLANRUN_RUN_ID": settings.run_id},
        secrets=secrets,
    )
    return GitWorkspace(
        plan,
        settings.state_dir,
        setup=setup,
        run_id=settings.run_id,
        secrets=secrets,
        bases=bases,
    )


def _sessions(dry_run: bool, plan: CompiledPlan) -> dict[str, Session]:
    """The session backends. pty and tmux are imported only when a task uses them (a
    plan of plain commands never pays for ptyprocess, ~10 ms of start-up)."""
    if dry_run:
        from planrun.sessions.dryrun import DryRunSession

        dry = DryRunSession()
        return {"subprocess": dry, "pty": dry, "tmux": dry}
    from planrun.sessions.subprocess import SubprocessSession

    sessions: dict[str, Session] = {"subprocess": SubprocessSession()}
    used = {task.backend for task in plan.tasks.values() if task.kind == "work"}
    if "pty" in used:
        from planrun.sessions.pty import PtySession

        sessions["pty"] = PtySession()
    if "tmux" in used:
        from planrun.sessions.tmux import TmuxSession

        sessions["tmux"] = TmuxSession(tmux_socket(plan))
    return sessions


def tmux_socket(plan: CompiledPlan) -> str:
    """planrun's own tmux server (-L): never the user's, whose config and options differ."""
    return plan.settings.tmux_socket or "planrun"


def _add_progress(stack: ExitStack, observers: Observers, mode: str, out: TextIO) -> None:
    if mode == "none":
        return
    interactive = sys.stderr.isatty() and not os.environ.get("CI")
    if mode == "live" or (mode == "auto" and interactive):
        from planrun.ui.live import LiveProgress

        observers.add(stack.enter_context(LiveProgress(sys.stderr)))
    else:
        from planrun.ui.plain import PlainProgress

        observers.add(PlainProgress(sys.stderr))


async def _run_with_signals(scheduler: Scheduler) -> None:
    from planrun.sessions.process import become_subreaper

    become_subreaper()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                count = 0
                async for signum in signals:
                    count += 1
                    name = signal.Signals(signum).name
                    if count == 1:
                        print(
                            f"planrun: {name}: stopping; cancelling running tasks "
                            "(again to kill at once)",
                            file=sys.stderr,
                        )
                        scheduler.interrupt()
                    else:
                        print(f"planrun: {name} again: killing every task now", file=sys.stderr)
                        scheduler.kill_now()

            nursery.start_soon(watch)
            await scheduler.run()
            nursery.cancel_scope.cancel()


def build_report(
    plan: CompiledPlan,
    scheduler: Scheduler,
    fingerprints: Mapping[str, tuple[str, Any]] | None = None,
) -> RunReport:
    ended = time.time()
    tasks = [scheduler.reports[k] for k in plan.graph.topological() if k in scheduler.reports]
    for task in tasks:
        if fingerprints and task.key in fingerprints:
            task.fingerprint = fingerprints[task.key][0]
    usage = total_usage(a.usage for t in tasks for a in t.attempts)
    exit_code = (
        EXIT_INTERRUPTED
        if scheduler.interrupted
        else EXIT_OK
        if scheduler.state.succeeded
        else EXIT_FAILED
    )
    return RunReport(
        planrun_version=__version__,
        plan=PlanInfo(name=plan.name, path=str(plan.path), sha256=plan.sha256),
        run_id=scheduler.settings.run_id,
        started_at=iso(scheduler.started_at),
        ended_at=iso(ended),
        duration_s=round(ended - scheduler.started_at, 3),
        status=scheduler.status,
        exit_code=exit_code,
        counts=scheduler.state.counts(),
        usage=usage,
        tasks=tasks,
        hook_failures=scheduler.run_context.hook_failures,
    )


@dataclass(frozen=True)
class Written:
    """What :func:`write_reports` did: where the JSON report is (None: nowhere), and the
    files it could not write."""

    report: Path | None
    errors: tuple[ReportWriteError, ...] = ()


def write_reports(
    plan: CompiledPlan,
    scheduler: Scheduler,
    report: RunReport,
    state_dir: Path,
    outputs: Outputs,
    *,
    default: bool = True,
) -> Written:
    """Write every report asked for. A file that cannot be written (a full disk, say) does
    not stop the others: its error is returned, and the JSON report is then nowhere."""
    text = report_json(report)
    path = state_dir / "runs" / report.run_id / "report.json"
    writes: list[tuple[Path, Callable[[Path], None]]] = []
    if default:
        writes.append((path, lambda target: write_atomic(target, text)))
    if outputs.report:
        writes.append((outputs.report, lambda target: write_atomic(target, text)))
    if outputs.junit:
        writes.append((outputs.junit, lambda target: write_atomic(target, junit_xml(report))))
    if outputs.summary:
        statuses = {t.key: t.status for t in report.tasks}
        markdown = summary_markdown(report, plan.graph.to_mermaid(statuses))
        writes.append((outputs.summary, lambda target: append_text(target, markdown)))
    errors: list[ReportWriteError] = []
    for target, write in writes:
        try:
            write(target)
        except ReportWriteError as error:
            errors.append(error)
    where = outputs.report or (path if default else None)
    written = where is not None and all(error.path != where for error in errors)
    return Written(where if written else None, tuple(errors))

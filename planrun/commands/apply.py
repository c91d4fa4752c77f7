"""``planrun apply PLAN``: parse the options, choose how progress is shown, and hand the
plan to :func:`planrun.run.apply.apply_plan`.

Everything that can reject the plan or the arguments happens before the first side effect
(no state folder is created for an invalid plan).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from planrun.commands.repos import with_repositories
from planrun.core.decision import Choices
from planrun.core.events import Observers
from planrun.errors import UsageError, suggest
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from planrun.report.outputs import Outputs
from planrun.run.apply import ApplyOptions, SharedOptions, apply_plan
from planrun.state.locate import state_dir_for


def check_keys(plan: CompiledPlan, keys: list[str] | None, option: str) -> None:
    for key in keys or ():
        if key not in plan.tasks:
            raise UsageError(f"{option} {key}: no such task{suggest(key, plan.tasks)}")


def run_apply(args: argparse.Namespace, out: TextIO) -> int:
    plan, prepared = with_repositories(load_plan(Path(args.plan)), sys.stderr)
    check_keys(plan, args.only, "--only")
    check_keys(plan, args.force, "--force")
    if args.follow_up and (args.only or args.dry_run):
        raise UsageError(
            "--follow-up answers every open changeset PR: not with --only or --dry-run"
        )
    options = ApplyOptions(
        state_dir=state_dir_for(plan, args.state_dir),
        max_concurrent=args.max_concurrent,
        on_failure=args.on_failure,
        only=args.only,
        choices=Choices(args.force or (), args.force_all, args.rerun_failed),
        dry_run=args.dry_run,
        outputs=Outputs(args.report, args.junit, args.summary),
        shared=shared_options(args),
        follow_up=args.follow_up,
    )
    with ExitStack() as stack:
        applied = apply_plan(plan, options, observers_for(stack, args, out))
    if applied.report is not None:
        print(f"report: {applied.report}", file=sys.stderr)
    for problem in applied.problems:
        print(f"planrun: {problem}", file=sys.stderr)
    if prepared is not None and prepared.failed and applied.exit_code in (0, 4):
        return 1  # a repository that could not be cloned or fetched did not run
    return applied.exit_code


def shared_options(args: argparse.Namespace) -> SharedOptions | None:
    """A shared run's options; the URL leaves the environment (tasks never see it)."""
    from planrun.commands.shared_views import STORE_ENV, store_url

    url = store_url(args)
    os.environ.pop(STORE_ENV, None)
    if url is None:
        if args.run_id is not None:
            raise UsageError("--run-id names a shared run: give --store URL (or PLANRUN_STORE)")
        return None
    if args.dry_run:
        return None
    return SharedOptions(url, args.run_id, args.remote)


def observers_for(stack: ExitStack, args: argparse.Namespace, out: TextIO) -> Observers:
    """What watches a run (apply's, or each of serve's): the progress view asked for, and
    ``--events`` as JSON lines (``-``: stdout); ``stack`` closes them."""
    observers = Observers()
    _add_progress(stack, observers, args)
    if args.events:
        from planrun.ui.events import JsonLines

        stream = (
            out
            if args.events == "-"
            else stack.enter_context(open(args.events, "w", encoding="utf-8"))  # noqa: SIM115
        )
        observers.add(JsonLines(stream))
    return observers


def _add_progress(stack: ExitStack, observers: Observers, args: argparse.Namespace) -> None:
    """The view a person or a CI system sees; it names the plan as the user did, in the
    commands it prints (answer, approve, logs), and says when the run is a dry run."""
    mode = args.progress
    if mode == "none":
        return
    from planrun.ui.hints import Hints

    hints = Hints(args.plan, str(args.state_dir) if args.state_dir else None)
    interactive = sys.stderr.isatty() and not os.environ.get("CI")
    if mode == "live" or (mode == "auto" and interactive):
        from planrun.ui.live import LiveProgress

        live = LiveProgress(sys.stderr, dry_run=args.dry_run, hints=hints)
        observers.add(stack.enter_context(live))
    else:
        from planrun.ui.plain import PlainProgress

        github = os.environ.get("GITHUB_ACTIONS") == "true"
        plain = PlainProgress(sys.stderr, dry_run=args.dry_run, hints=hints, github=github)
        observers.add(plain)

"""``planrun serve PLAN``: parse the options and hand the plan to
:func:`planrun.run.serve.serve_plan` (docs/serve.md); ``--pause`` and ``--resume`` only
set or clear the pause switch in the plan's state folder."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from planrun.commands.apply import observers_for
from planrun.errors import UsageError
from planrun.plan.load import load_plan
from planrun.state.locate import state_dir_for


def run_serve(args: argparse.Namespace, out: TextIO) -> int:
    if args.pause and args.resume:
        raise UsageError("--pause and --resume: give one of them")
    if args.pause or args.resume:  # the state folder only: no compile, no tracker read
        from planrun.run.serve_file import set_paused
        from planrun.state.locate import locate

        located = locate(args.plan, args.state_dir)
        set_paused(located.state_dir, args.pause)
        what = "paused: nothing new starts" if args.pause else "resumed"
        print(f"planrun: serve of {located.plan_name}: {what}", file=sys.stderr)
        return 0
    plan = load_plan(Path(args.plan))
    if plan.agents and not args.once:  # before anything starts: exit 2 if one is unset
        import os

        try:
            from planrun.run.agent_desk import check_environment
        except ImportError as exc:  # httpx, hypercorn: the extra
            raise UsageError(
                f"a Plane agent needs planrun's plane extra: pip install 'planrun[plane]' ({exc})"
            ) from None
        check_environment(plan, os.environ)
    state_dir = state_dir_for(plan, args.state_dir)
    from planrun.run.serve import ServeOptions, serve_plan

    options = ServeOptions(
        state_dir=state_dir,
        interval=args.interval or plan.settings.serve_interval,
        once=args.once,
        max_concurrent=args.max_concurrent,
        on_failure=args.on_failure,
    )
    args.dry_run = False  # what the progress views ask
    with ExitStack() as stack:
        return serve_plan(plan, options, observers_for(stack, args, out))

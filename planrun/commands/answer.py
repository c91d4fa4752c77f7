"""``planrun answer PLAN KEY TEXT``: answer a task waiting in needs_input.

The running apply parked the task when its agent asked something; it takes the answer from
the state folder's inbox (see :mod:`planrun.inbox`) and types it into the session (pty,
tmux) or sends it as a follow-up turn through the provider's ``prompt_command``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from planrun.commands.apply import check_keys, state_dir_for
from planrun.commands.state import STATE_FILE, catch_up
from planrun.errors import UsageError
from planrun.inbox import post_answer
from planrun.outcomes import Status
from planrun.plan.load import load_plan


def run_answer(args: argparse.Namespace, out: TextIO) -> int:
    import sys

    from planrun.store.sqlite import Store

    plan = load_plan(Path(args.plan))
    check_keys(plan, [args.key], "answer")
    state_dir = state_dir_for(plan, args.state_dir)
    if not (state_dir / STATE_FILE).exists():
        raise UsageError(f"{args.key} is not waiting for input: no run of {plan.name} here")
    catch_up(state_dir)
    with Store.open(state_dir / STATE_FILE, readonly=True) as store:
        seen = store.task_states(plan.name).get(args.key)
    if seen is None or seen.status is not Status.NEEDS_INPUT:
        what = "never ran" if seen is None else f"is {seen.status.value}"
        raise UsageError(f"{args.key} {what}, not waiting for input")
    text = sys.stdin.read() if args.text == "-" else args.text
    post_answer(state_dir, args.key, text)
    print(f"answer queued for {args.key}; the running apply delivers it", file=out)
    return 0

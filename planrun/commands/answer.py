"""``planrun answer PLAN KEY TEXT``: answer a task waiting in needs_input.

The running apply parked the task when its agent asked something; it takes the answer from
the state folder's inbox (see :mod:`planrun.run.inbox`) and types it into the session (pty,
tmux) or sends it as a follow-up turn through the provider's ``prompt_command``.

What it prints says who will deliver the answer, as the state lock tells: the running
apply (its pid) when the run that parked KEY holds the lock; otherwise no apply is running
KEY (its apply died or another run holds the lock), the answer waits in the inbox, and the
next apply that runs KEY gives it to KEY's first question.
"""

from __future__ import annotations

import argparse
from contextlib import closing
from pathlib import Path
from typing import TextIO

from planrun.commands.apply import check_keys
from planrun.core.outcomes import Status
from planrun.errors import UsageError
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from planrun.run.inbox import post_answer
from planrun.state.folder import STATE_FILE
from planrun.state.locate import state_dir_for
from planrun.state.open import open_store
from planrun.state.queries import catch_up, run_liveness
from planrun.state.store import StoreReader


def run_answer(args: argparse.Namespace, out: TextIO) -> int:
    import sys

    plan = load_plan(Path(args.plan))
    check_keys(plan, [args.key], "answer")
    state_dir = state_dir_for(plan, args.state_dir)
    if not (state_dir / STATE_FILE).exists():
        raise UsageError(f"{args.key} is not waiting for input: no run of {plan.name} here")
    catch_up(state_dir)
    with closing(open_store(state_dir, readonly=True)) as store:
        seen = store.task_states(plan.name).get(args.key)
        if seen is None or seen.status is not Status.NEEDS_INPUT:
            what = "never ran" if seen is None else f"is {seen.status.value}"
            raise UsageError(f"{args.key} {what}, not waiting for input")
        waiting = waiting_apply(store, plan, state_dir, args.key)
    text = sys.stdin.read() if args.text == "-" else args.text
    post_answer(state_dir, args.key, text)
    if waiting is not None:
        print(
            f"answer queued for {args.key}; the running apply (pid {waiting}) delivers it", file=out
        )
    else:
        again = f"planrun apply {plan.path.name}"
        print(
            f"answer queued for {args.key}; no apply is running it (its apply is gone): the "
            f"next `{again}` runs {args.key} again and gives it this answer when it asks",
            file=out,
        )
    return 0


def waiting_apply(store: StoreReader, plan: CompiledPlan, state_dir: Path, key: str) -> int | None:
    """The pid of the apply that parked ``key`` for input and holds the state lock now, or
    None when no running apply waits for this answer."""
    from planrun.state.lock import read_holder

    runs = store.runs(plan.name)
    if not runs or run_liveness(runs[-1], read_holder(state_dir)) != "live":
        return None
    parked = {t.key: t.status for t in store.tasks(runs[-1].id)}
    return runs[-1].pid if parked.get(key) is Status.NEEDS_INPUT else None

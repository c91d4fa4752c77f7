"""Status back to trackers during a run: the outbox beside the scheduler (docs/trackers.md).

Only a plan with a tracker that has a ``status`` mapping gets an outbox; it observes the
run's events (redacted, as every observer sees them), records what each item should show
in the store, and delivers it while the scheduler runs. When the scheduler is done, one
last try is given to what is pending, for at most :data:`FLUSH_TIME` seconds; the rest
waits in the store for the next apply. Nothing here can fail the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from planrun.core.events import Observers
from planrun.plan.resolved import CompiledPlan
from planrun.run.scheduler import Scheduler
from planrun.run.wiring import run_with_signals
from planrun.state.folder import State

if TYPE_CHECKING:
    from planrun.trackers.outbox import Outbox

#: The most seconds the end of a run spends on status updates still pending.
FLUSH_TIME = 30.0


def outbox_for(
    plan: CompiledPlan, state: State, scheduler: Scheduler, observers: Observers
) -> Outbox | None:
    """An outbox observing the run, if a tracker of the plan takes status updates."""
    journal = state.journal
    if state.store is None or state.readonly or journal is None:
        return None
    if not any(t.status is not None for t in plan.trackers.values()):
        return None
    from planrun.trackers.deliver import Clients
    from planrun.trackers.outbox import Outbox

    settings = scheduler.settings
    clients = Clients(plan.trackers, settings.environ)
    outbox = Outbox(
        plan, state.store, settings.run_id, clients, redact=scheduler.run_context.redact
    )
    observers.add(outbox)
    return outbox


async def run_tracked(scheduler: Scheduler, outbox: Outbox | None) -> None:
    """The scheduler under its signal watcher, with the outbox delivering beside it."""
    if outbox is None:
        await run_with_signals(scheduler)
        return
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.deliver)
            await run_with_signals(scheduler)
            outbox.stop()  # the delivery under way ends first: one item at a time
            nursery.cancel_scope.deadline = trio.current_time() + FLUSH_TIME
        with trio.move_on_after(FLUSH_TIME):
            await outbox.flush()
    finally:
        outbox.clients.close()

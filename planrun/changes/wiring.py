"""Changesets in an apply: the publisher beside the scheduler, and the exit code.

Only a plan with a project that has a ``changeset:`` gets a publisher (this module
imports neither httpx nor the publisher before then). It observes the run's events
(redacted, as every observer sees them), records each project's proposal in the store
and publishes it while the scheduler runs; when the scheduler is done, it gets one last
try of at most :data:`FLUSH_TIME` seconds, and the rest waits in the store.

The exit code (docs/batch-changes.md): ``changesets.fail_on`` names the outcomes that
fail the run. A run that would exit 0 or 4 exits 1 when a changeset ends in one of
them; a run whose only failures are tasks of changeset projects (a failed repository)
exits as if they had not failed when ``failed`` is not among them. 2, 3 and 130 are
never changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from planrun.core.events import Observers
from planrun.plan.resolved import CompiledPlan
from planrun.state.store import StoreProtocol

if TYPE_CHECKING:
    from planrun.changes.publisher import Publisher

#: The most seconds the end of a run spends on changesets still pending.
FLUSH_TIME = 60.0


def publisher_for(
    plan: CompiledPlan,
    store: StoreProtocol | None,
    run_id: str,
    environ: Mapping[str, str],
    redact: Callable[[str], str],
    observers: Observers,
    state_dir: Path | None = None,
) -> Publisher | None:
    """A publisher observing the run, if a project of the plan has a changeset."""
    if store is None or not has_changesets(plan):
        return None
    from planrun.changes.publisher import Publisher

    publisher = Publisher(plan, store, run_id, environ, redact=redact, state_dir=state_dir)
    observers.add(publisher)
    return publisher


def has_changesets(plan: CompiledPlan) -> bool:
    """A project has a changeset, or unmatched repositories' changesets may be closed
    (planrun.run.apply asks the same without importing this package)."""
    closes = bool(plan.repositories) and plan.publishing.close_unmatched
    return closes or plan.has_changesets


async def run_published(run: Callable[[], Awaitable[None]], publisher: Publisher | None) -> None:
    """``run()`` (the scheduler and its trackers' outbox), with the publisher beside it."""
    if publisher is None:
        await run()
        return
    from planrun.changes.reconcile import close_unmatched

    await close_unmatched(publisher)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.deliver)
        await run()
        publisher.stop()
        nursery.cancel_scope.deadline = trio.current_time() + FLUSH_TIME
    with trio.move_on_after(FLUSH_TIME):
        await publisher.flush()


def outcomes(publisher: Publisher) -> set[str]:
    """The outcomes of this run's changesets that ``changesets.fail_on`` may name."""
    counted = {"failed", "no_diff", "exists", "conflicted", "budget_exceeded"}
    found = {r.state for r in publisher.results.values()} & counted
    if publisher.held:
        found.add("rate_limited")
    if any(not (p.held or p.throttled) for p in publisher.pending.values()):
        found.add("failed")  # still not delivered: GitHub or the remote kept refusing
    return found


def exit_code(code: int, publisher: Publisher | None, broken: Collection[str]) -> int:
    """The run's exit code under the plan's ``changesets.fail_on`` (see the module doc);
    ``broken`` are the keys of tasks that failed, were cancelled or skipped."""
    if publisher is None:
        return code
    fail_on = publisher.plan.publishing.fail_on
    covered = set(publisher.watch.project_of)
    if code == 1 and "failed" not in fail_on and broken and set(broken) <= covered:
        code = 0  # every failure is a repository's, and the plan does not count those
    if code in (0, 4) and outcomes(publisher) & fail_on:
        return 1
    return code

"""The port the scheduler asks before it works on a ready task: may this machine run it?

On one machine (:class:`LocalClaims`) the answer is always yes, as it always was. In a run
shared through PostgreSQL (:class:`planrun.run.shared.SharedClaims`) the task is claimed
in the shared store: the machine that gets it runs it under a lease; the others give their
slot back and wait until it ends there, and then take its final status as their own.

The scheduler hands :meth:`Claims.run` the task's work as a coroutine function; what comes
back is a :class:`Held`, whose ``here`` says whether this machine did the work (only then
are hooks run and the work landed here).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from planrun.core.budget import Spent
from planrun.core.outcomes import Status
from planrun.plan.resolved import Task


class Held(NamedTuple):
    """How a task ended for this machine: its status and reason, the last attempt (the
    scheduler's own record, None when no attempt ran here), and whether it ran here."""

    status: Status
    reason: str
    last: Any = None
    here: bool = True


Work = Callable[[], Awaitable[Held]]


class Slots(Protocol):
    """What the scheduler lends a claim: its slot, given back while another machine holds
    the task, and taken again before claiming once more."""

    def park(self, key: str, status: Status) -> None: ...

    async def resume(self, key: str) -> None: ...

    def uncharge(self, key: str) -> None:
        """The task's last attempt does not count against its retry budget."""
        ...


class Claims(Protocol):
    async def run(self, task: Task, slots: Slots, work: Work) -> Held:
        """Do ``work`` if this machine gets ``task``; else wait for its end elsewhere."""
        ...

    async def serve(self) -> None:
        """The background work of the claims (heartbeat, wake-ups) for the run's length;
        cancelled when the run ends."""
        ...


class LocalClaims:
    """One machine: every task is this machine's."""

    async def run(self, task: Task, slots: Slots, work: Work) -> Held:
        return await work()

    async def serve(self) -> None:
        return None


class RunSpending(Protocol):
    """What the run-wide budget checks see (:class:`planrun.run.attempt.AttemptRunner`):
    on one machine its own spending; in a shared run every machine's."""

    def add(self, key: str, tokens: int, cost_usd: float | None) -> None:
        """A turn of ``key`` here spent this."""
        ...

    def spent(self, mine: Spent) -> Spent:
        """The run's spending, given this machine's (``mine``: every turn it ran)."""
        ...

    def started_at(self, mine: float) -> float:
        """When the run started (epoch seconds), given when this machine's started."""
        ...


class LocalSpending:
    """One machine: the run is this machine's."""

    def add(self, key: str, tokens: int, cost_usd: float | None) -> None:
        return None

    def spent(self, mine: Spent) -> Spent:
        return mine

    def started_at(self, mine: float) -> float:
        return mine

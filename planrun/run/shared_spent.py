"""Run-wide budgets in a run shared by several machines (docs/scale-out.md).

Each machine adds what its turns spent on a task to the shared store when it records the
end of its hold of that task (in :func:`planrun.state.postgres.scale.finish`, the same
transaction, fenced by the lease's token); it reads the run's total back at every claim,
every heartbeat and every finish. The budget checks (:class:`planrun.run.attempt.
AttemptRunner`, through :class:`planrun.run.claims.RunSpending`) see that total plus what
this machine spent and has not recorded yet (its running attempts, and a hold whose lease
was lost: that money was spent all the same). The run's wall time counts from the shared
run's opening, in the server's clock, carried over to this machine's.
"""

from __future__ import annotations

import time

from planrun.core.budget import Spent
from planrun.state.postgres.scale import RunSpent


class SharedSpending:
    """:class:`planrun.run.claims.RunSpending` of a shared run."""

    def __init__(self) -> None:
        self._shared = Spent()  # the run's total, last read (this machine's part included)
        self._recorded = Spent()  # what this machine added to it
        self._unrecorded: dict[str, Spent] = {}  # by task: spent here, not recorded yet
        self._opened_at: float | None = None  # the shared run's start, in this clock

    def add(self, key: str, tokens: int, cost_usd: float | None) -> None:
        self._unrecorded.setdefault(key, Spent()).add(tokens, cost_usd)

    def spent(self, mine: Spent) -> Spent:
        return Spent(
            self._shared.tokens + mine.tokens - self._recorded.tokens,
            self._shared.cost_usd + mine.cost_usd - self._recorded.cost_usd,
        )

    def started_at(self, mine: float) -> float:
        return mine if self._opened_at is None else min(mine, self._opened_at)

    def seen(self, run: RunSpent) -> None:
        """The run's totals as just read; totals only grow, so a read that was overtaken
        by this machine's own finish never lowers them."""
        self._shared = Spent(
            max(self._shared.tokens, run.tokens), max(self._shared.cost_usd, run.cost_usd)
        )
        self._opened_at = time.time() - run.elapsed_s

    def unrecorded(self, key: str) -> Spent:
        """What the turns of ``key`` here spent that the shared store does not have yet."""
        left = self._unrecorded.get(key, Spent())
        return Spent(left.tokens, left.cost_usd)

    def recorded(self, key: str, sent: Spent, run: RunSpent) -> None:
        """``sent`` (what :meth:`unrecorded` said) is in the shared store now."""
        left = self._unrecorded.get(key)
        if left is not None:
            left.tokens -= sent.tokens
            left.cost_usd -= sent.cost_usd
        self._recorded.add(sent.tokens, sent.cost_usd)
        self.seen(run)

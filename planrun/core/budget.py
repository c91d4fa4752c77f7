"""Budgets (SPEC §2 ``budget``): limits on tokens, cost and wall time, per task and per run.

Pure: callers pass what was spent; :func:`exceeded` says which limit is passed, if any.
Once a budget is exceeded no new attempt or turn starts; the task fails with reason
budget_exceeded, which is never retried. A wall time budget also ends a running attempt
where it runs out (the attempt's timeout is capped at what is left of it), with outcome
budget_exceeded; tokens and cost are known only once a turn has reported its usage.
"""

from __future__ import annotations

from dataclasses import dataclass

from planrun.plan.durations import format_duration
from planrun.plan.resolved import BudgetSpec


@dataclass
class Spent:
    tokens: int = 0
    cost_usd: float = 0.0

    def add(self, tokens: int, cost_usd: float | None) -> None:
        self.tokens += tokens
        self.cost_usd += cost_usd or 0.0


def exceeded(budget: BudgetSpec | None, spent: Spent, elapsed: float, scope: str) -> str | None:
    """The first limit of ``budget`` that ``spent``/``elapsed`` reached, as a reason."""
    if budget is None:
        return None
    if budget.tokens is not None and spent.tokens >= budget.tokens:
        return f"{scope} budget of {budget.tokens} tokens reached ({spent.tokens} used)"
    if budget.cost_usd is not None and spent.cost_usd >= budget.cost_usd:
        return f"{scope} budget of ${budget.cost_usd:g} reached (${spent.cost_usd:.4f} spent)"
    if budget.wall_time is not None and elapsed >= budget.wall_time:
        return f"{scope} wall time budget of {format_duration(budget.wall_time)} reached"
    return None

"""Retry policy (SPEC §2 ``retry``) as tenacity strategies, driven by trio.

``attempts`` is the total number of attempts. The wait before attempt n+1 is
``min(max, initial * factor**(n-1))``, scaled by a random factor in ``[1-jitter, 1+jitter]``
(and never above ``max``). Only outcomes listed in ``retry.on`` are retried; needs_input,
conflict and budget_exceeded never are.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.wait import wait_base

from planrun.core.outcomes import NEVER_RETRIED, Outcome
from planrun.plan.resolved import RetryPolicy

_SHARED_RNG = random.Random()  # seeding one per task from urandom showed up in profiles


class wait_backoff(wait_base):
    """Capped exponential backoff with proportional jitter."""

    def __init__(
        self,
        initial: float,
        factor: float,
        maximum: float,
        jitter: float,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.factor = factor
        self.maximum = maximum
        self.jitter = jitter
        self.rng = rng or _SHARED_RNG

    def base(self, attempt_number: int) -> float:
        return min(self.maximum, self.initial * self.factor ** (attempt_number - 1))

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self.base(retry_state.attempt_number)
        if self.jitter:
            delay *= self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        return max(0.0, min(self.maximum, delay))


def should_retry(policy: RetryPolicy, outcome: Outcome) -> bool:
    return outcome not in NEVER_RETRIED and policy.retries(outcome)


def retrying(
    policy: RetryPolicy,
    *,
    attempts_left: int,
    outcome_of: Callable[[Any], Outcome],
    sleep: Callable[[float], Awaitable[None]],
    before_sleep: Callable[[RetryCallState], Awaitable[None]] | None = None,
    keep_going: Callable[[], bool] = lambda: True,
    rng: random.Random | None = None,
) -> AsyncRetrying:
    """An AsyncRetrying that retries results whose outcome the policy retries.

    ``attempts_left`` counts attempts still allowed (fewer than ``policy.attempts`` when
    earlier runs already started some); ``keep_going`` is consulted before each retry so
    a stopping run does not start another attempt.
    """
    return AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts_left)),
        wait=wait_backoff(policy.initial, policy.factor, policy.max, policy.jitter, rng),
        retry=retry_if_result(lambda r: keep_going() and should_retry(policy, outcome_of(r))),
        sleep=sleep,
        before_sleep=before_sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        reraise=True,
    )

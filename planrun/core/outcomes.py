"""Task statuses and attempt outcomes (SPEC §3): plain enums shared by every layer."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a task stands in a run."""

    PENDING = "pending"  # waiting for its needs
    READY = "ready"  # needs met, waiting for a slot
    RUNNING = "running"  # a session is working on attempt n
    RETRYING = "retrying"  # the last attempt failed; backing off (holds no slot)
    NEEDS_INPUT = "needs_input"  # the agent asked a question (holds no slot)
    IN_REVIEW = "in_review"  # finished; waits for `planrun approve`
    DONE = "done"  # succeeded (and landed)
    FAILED = "failed"  # final, with a reason
    SKIPPED = "skipped"  # a need failed or was skipped, or run_when did not match
    CANCELLED = "cancelled"  # the run was stopped before the task finished

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({Status.DONE, Status.FAILED, Status.SKIPPED, Status.CANCELLED})


class Outcome(StrEnum):
    """How one attempt ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # exit code or failure pattern
    TIMED_OUT = "timed_out"  # the per-attempt timeout
    STALLED = "stalled"  # no output for idle_timeout
    NEEDS_INPUT = "needs_input"  # the agent waits for an answer
    STARTUP_FAILED = "startup_failed"  # the command, worktree or setup could not start
    CONFLICT = "conflict"  # landing the branch failed
    BUDGET_EXCEEDED = "budget_exceeded"
    CANCELLED = "cancelled"  # the run was stopped
    INTERRUPTED = "interrupted"  # planrun itself died during the attempt


#: Outcomes that are never retried blindly, whatever ``retry.on`` says.
NEVER_RETRIED = frozenset({Outcome.NEEDS_INPUT, Outcome.CONFLICT, Outcome.BUDGET_EXCEEDED})
#: Outcomes a plan may list in ``retry.on``.
RETRYABLE = frozenset(
    {
        Outcome.FAILED,
        Outcome.TIMED_OUT,
        Outcome.STALLED,
        Outcome.STARTUP_FAILED,
        Outcome.INTERRUPTED,
    }
)
DEFAULT_RETRY_ON = (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.STALLED, Outcome.STARTUP_FAILED)

"""The words every session backend uses for an attempt's end.

:class:`Ending` (what decided it, when not the exit status), :data:`Status` (how the leader
ended), :func:`pattern_ending` (a failure or success pattern's match), :func:`signal_name`
and :data:`REAP_TIMEOUT`. How a result is described from them is
:meth:`planrun.sessions.skeleton.Attempt.result`.
"""

from __future__ import annotations

import signal

from planrun.core.frozen import frozen
from planrun.core.outcomes import Outcome
from planrun.sessions.output import Event, FailureMatched, SuccessMatched

#: Seconds to wait for the leader to be reaped once its group was SIGKILLed.
REAP_TIMEOUT = 5.0

#: How a process ended: (exit code, signal), one of them None.
Status = tuple[int | None, int | None]


@frozen
class Ending:
    """Why an attempt ended, when something other than the exit status decided it."""

    outcome: Outcome
    reason: str
    question: str | None = None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def pattern_ending(event: Event) -> Ending | None:
    """The ending ``event`` decides if it is a failure or success pattern's match."""
    if isinstance(event, FailureMatched):
        return Ending(Outcome.FAILED, f"failure pattern matched: {event.line}")
    if isinstance(event, SuccessMatched):
        return Ending(Outcome.SUCCEEDED, f"success pattern matched: {event.line}")
    return None

"""What the session backends share: how an attempt's ending is described and reported."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from planrun.core.outcomes import Outcome

#: Seconds to wait for the leader to be reaped once its group was SIGKILLed.
REAP_TIMEOUT = 5.0


@dataclass(frozen=True)
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

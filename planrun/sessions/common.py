"""What the session backends share: how an attempt's ending is described and reported."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import trio

from planrun.core.outcomes import Outcome
from planrun.core.redact import Redactor
from planrun.sessions.base import SessionResult, SessionSpec
from planrun.sessions.output import OutputWatcher

#: Seconds to wait for the leader to be reaped once its group was SIGKILLed.
REAP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Ending:
    """Why an attempt ended, when something other than the exit status decided it."""

    outcome: Outcome
    reason: str
    question: str | None = None


def startup_failed(spec: SessionSpec, reason: str) -> SessionResult:
    return SessionResult(
        outcome=Outcome.STARTUP_FAILED, reason=Redactor(spec.secrets).redact(reason)
    )


def unwrapped(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The exception a caller should see instead of the internal nursery's ``group``.

    Cancelling ``run`` from outside cancels its internal tasks too: a group made only of
    ``Cancelled`` becomes its first ``Cancelled``. A group of one exception (``on_line``
    raised) becomes that exception. Anything else stays a group (None).
    """
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        else:
            leaves.append(exc)
    if len(leaves) == 1 or (leaves and all(isinstance(e, trio.Cancelled) for e in leaves)):
        return leaves[0]
    return None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def open_watcher(
    spec: SessionSpec, on_line: Callable[[str], None] | None
) -> OutputWatcher | SessionResult:
    """The attempt's output watcher, or the startup failure to return if its log won't open."""
    try:
        return OutputWatcher(spec, clock=trio.current_time, on_line=on_line)
    except OSError as error:
        return startup_failed(
            spec, f"cannot open the log {spec.log_path}: {error.strerror or error}"
        )


def reraise_plain(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Raise what a caller should see instead of an internal nursery's ``group``."""
    plain = unwrapped(group)
    if plain is None:
        raise group
    raise plain from None

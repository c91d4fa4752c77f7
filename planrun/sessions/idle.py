"""The idle timeout (``stalled``), without counting time planrun itself was not running.

A session is stalled once no output came for ``idle_timeout`` seconds. Two things make
"no output came" wrong when planrun was stopped (Ctrl-Z then ``fg``: SIGTSTP, SIGCONT) or
frozen, while the task went on printing into its pipe:

- the output is waiting, unread: when the watcher wakes, the reader may not have run yet
  (trio runs woken tasks in random order). So before judging, output that is ready to be
  read is given to the reader first (:data:`PENDING_WAIT` at most);
- the monotonic clock ran on while planrun was stopped. A watcher that wakes much later
  than it asked (:data:`STOP_GAP`) was not running: planrun was stopped (or starved), so
  the idle count starts again from that moment rather than charging the gap to the task.

The wall-clock ``timeout`` is not affected: the task ran all that time.
"""

from __future__ import annotations

import math
import select
from collections.abc import Awaitable, Callable

import trio

#: A watcher that wakes this many seconds later than it asked was not running meanwhile.
STOP_GAP = 1.0
#: The longest the idle watcher lets the reader drain output that is ready before judging.
PENDING_WAIT = 0.25
_PENDING_POLL = 0.005


def readable(fd: int | None) -> bool:
    """True if ``fd`` has something to read now (data or end-of-file); never blocks."""
    if fd is None:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:  # closed meanwhile
        return False


class IdleClock:
    """Waits until a session has been idle for ``idle_timeout`` seconds (see module doc).

    ``last_output`` gives the trio time of the last output; ``pending`` tells whether
    output is ready to be read; ``gate``, awaited before every look, holds the count while
    it must stand still (a question waiting for its answer). :meth:`restart` starts the
    count again (after such a wait).
    """

    def __init__(
        self,
        idle_timeout: float,
        last_output: Callable[[], float],
        pending: Callable[[], bool],
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._idle = idle_timeout
        self._last_output = last_output
        self._pending = pending
        self._gate = gate
        self._since = -math.inf
        #: How many times planrun was found to have been stopped.
        self.stops = 0

    def restart(self) -> None:
        """Count idle time from now on."""
        self._since = trio.current_time()

    async def wait_stalled(self) -> None:
        """Return once no output came for ``idle_timeout`` seconds of planrun's own time."""
        while True:
            if self._gate is not None:
                await self._gate()
            deadline = max(self._last_output(), self._since) + self._idle
            if trio.current_time() >= deadline:
                if not self._pending():
                    return
                await self._let_reader_drain()
                if max(self._last_output(), self._since) + self._idle <= trio.current_time():
                    return  # still nothing new although output was waiting: judge
                continue
            await trio.sleep_until(deadline)
            if trio.current_time() - deadline > STOP_GAP:
                self.stops += 1
                self.restart()

    async def _let_reader_drain(self) -> None:
        with trio.move_on_after(PENDING_WAIT):
            while self._pending():  # noqa: ASYNC110 - the reader is another task on the fd
                await trio.sleep(_PENDING_POLL)

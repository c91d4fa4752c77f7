"""Where the board's data comes from: the plan's store, opened read-only when it exists.

The store is opened once it is there (a board started before the first ``apply`` waits
for it) and read in a worker thread, never in trio's own thread. Without ``--run`` the
board shows the plan's latest run, so it moves on to the next ``apply`` by itself.
Reads are shared: several viewers asking within :data:`FRESH_S` get the same snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import trio

from planrun.board.snapshot import Board, RowCache, TaskPage, read_board, read_task
from planrun.errors import PlanrunError
from planrun.state.locate import Located
from planrun.state.store import StoreReader

#: How often an open page looks for changes (the store has no change notification).
POLL_S = 0.25
#: A snapshot younger than this is shared rather than read again.
FRESH_S = 0.2

T = TypeVar("T")


class BoardSource(Protocol):
    """Where a board reads its run: :class:`Source` (a state folder's store) or
    :class:`planrun.board.shared.SharedSource` (a run shared through PostgreSQL)."""

    plan_words: tuple[str, ...]
    problem: str

    async def board(self) -> Board | None: ...

    async def task(self, key: str) -> TaskPage | None: ...

    def close(self) -> None: ...


@dataclass
class Source:
    """The run the board shows, read from the store at ``located``."""

    located: Located
    run_id: str | None  # --run: this run; None: the plan's latest
    plan_words: tuple[str, ...]  # how to name the plan in a command for the user
    store: StoreReader | None = None
    problem: str = ""  # why there is nothing to show yet
    _board: Board | None = None
    _read_at: float = -1.0

    def __post_init__(self) -> None:
        self._lock = trio.Lock()
        self._limiter = trio.CapacityLimiter(1)
        self._rows: RowCache = {}
        self._fresh = FRESH_S

    async def board(self) -> Board | None:
        """The run as it stands (None: no store or no run yet; :attr:`problem` says why)."""
        async with self._lock:
            began = time.monotonic()
            if began - self._read_at > self._fresh:
                try:
                    self._board = await self._in_thread(self._read_board)
                except PlanrunError as error:  # e.g. the store changed under a lock-free read
                    self.problem = f"could not read the store this time: {error}"
                self._read_at = time.monotonic()
                # a big run's read (0.1 s for 10,000 tasks) is shared for longer, so that
                # the board never spends more than a third of its time reading
                self._fresh = max(FRESH_S, 3 * (self._read_at - began))
            return self._board

    async def task(self, key: str) -> TaskPage | None:
        board = await self.board()
        if board is None or self.store is None:
            return None
        store = self.store
        words, rows = self.plan_words, self._rows
        return await self._in_thread(lambda: read_task(board, store, key, words, rows))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    async def _in_thread(self, read: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(read, limiter=self._limiter)

    def _read_board(self) -> Board | None:
        from planrun.state.lock import read_holder

        store = self._open()
        if store is None:
            return None
        if self.run_id is not None:
            run = store.run(self.run_id)
            if run is None or (self.located.plan_name and run.plan_name != self.located.plan_name):
                self.problem = f"no run {self.run_id} of this plan in {self.located.db_path}"
                return None
        else:
            run = store.last_run(self.located.plan_name)
            if run is None:
                self.problem = f"no run of this plan in {self.located.db_path} yet"
                return None
        holder = read_holder(self.located.state_dir)  # before the rows, as planrun status
        self.problem = ""
        return read_board(store, run, holder, self.plan_words)

    def _open(self) -> StoreReader | None:
        if self.store is not None:
            return self.store
        from planrun.state.queries import open_readonly

        if not self.located.db_path.exists():
            self.problem = f"no state store at {self.located.db_path} yet (run planrun apply)"
            return None
        try:
            self.store = open_readonly(self.located)
        except PlanrunError as error:
            self.problem = str(error)
            return None
        return self.store

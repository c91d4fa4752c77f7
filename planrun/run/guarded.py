"""The run's journal as the scheduler holds it: a failed write stops the run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from planrun.errors import StoreError
from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo
from planrun.state.recording import Journal


class Guarded:
    """The run's journal, with a failed write turned into a stop of the run.

    A journal call that raises StoreError (the disk is full, the store went away) calls
    ``on_failure`` with it and returns: the scheduler then starts nothing new and cancels
    what runs, and later calls fail the same way without stopping anything twice. The
    scheduler checks ``journal_error`` after ``attempt_started``: an attempt that was not
    recorded never starts.
    """

    def __init__(self, journal: Journal, on_failure: Callable[[StoreError], None]) -> None:
        self._journal = journal
        self._on_failure = on_failure

    def attempt_started(self, key: str, number: int, log_path: Path) -> None:
        self._call(self._journal.attempt_started, key, number, log_path)

    def attempt_process(self, key: str, number: int, info: ProcessInfo) -> None:
        self._call(self._journal.attempt_process, key, number, info)

    def attempt_finished(self, key: str, attempt: AttemptReport) -> None:
        self._call(self._journal.attempt_finished, key, attempt)

    def task_finished(self, key: str, report: TaskReport) -> None:
        self._call(self._journal.task_finished, key, report)

    def tasks_finished(self, reports: Sequence[tuple[str, TaskReport]]) -> None:
        self._call(self._journal.tasks_finished, reports)

    def flush(self) -> None:
        """Blocking (a worker thread calls it): a failure is reported from the trio thread."""
        try:
            self._journal.flush()
        except StoreError as error:
            trio.from_thread.run_sync(self._on_failure, error)

    def _call(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except StoreError as error:
            self._on_failure(error)

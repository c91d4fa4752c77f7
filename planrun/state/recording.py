"""What a run records, as the scheduler sees it: the :class:`Journal` port.

:class:`planrun.state.journal.StoreJournal` is the real one (a journal file, then the
store); :class:`NullJournal` keeps nothing (a dry run, a read-only state). Each call
returns once its record is kept: ``attempt_started`` before the attempt's process may
start.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo


class Journal(Protocol):
    """Durable record of a run (the store); the no-op one keeps nothing.

    Calls are cheap and return once the record is kept (see :mod:`planrun.state.journal`):
    ``attempt_started`` returns before the attempt's process may start.
    """

    def attempt_started(self, key: str, number: int, log_path: Path) -> None: ...

    def attempt_process(self, key: str, number: int, info: ProcessInfo) -> None: ...

    def attempt_finished(self, key: str, attempt: AttemptReport) -> None: ...

    def task_finished(self, key: str, report: TaskReport) -> None: ...

    def tasks_finished(self, reports: Sequence[tuple[str, TaskReport]]) -> None:
        """``task_finished`` for each (key, report), in order, recorded at once."""

    def flush(self) -> None:
        """Return once every record so far is in the store (blocking: call it from a
        worker thread), and raise a write that failed."""


class NullJournal:
    def attempt_started(self, key: str, number: int, log_path: Path) -> None:
        return None

    def attempt_process(self, key: str, number: int, info: ProcessInfo) -> None:
        return None

    def attempt_finished(self, key: str, attempt: AttemptReport) -> None:
        return None

    def task_finished(self, key: str, report: TaskReport) -> None:
        return None

    def tasks_finished(self, reports: Sequence[tuple[str, TaskReport]]) -> None:
        return None

    def flush(self) -> None:
        return None

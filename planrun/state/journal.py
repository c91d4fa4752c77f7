"""The scheduler's journal: what makes a run resumable (SPEC §5).

Two layers, so that recording costs the event loop one ``write`` and no wait:

1. The run's journal file, ``<state>/journal/<run id>.jsonl``. Each call appends one line
   (:mod:`planrun.state.journalfile`) with a single ``write`` before it returns
   (:meth:`StoreJournal.tasks_finished`, a batch: its lines, 512 to a ``write``). That is
   what *recorded* means: a write that returned is in the kernel and survives planrun
   dying (kill -9, the OOM killer, a crash), which is when recovery matters. So
   ``attempt_started`` is recorded before the attempt's process starts, and a crash at any
   instant leaves either no trace of the attempt or an open attempt that the next apply
   closes as interrupted (the attempt counts against the task's budget either way).
2. The state store. A writer thread applies the records to it in order, gathering what
   arrives within ``window`` seconds into one transaction (group commit: one fsync with
   ``synchronous=FULL``, durable against power loss too), and stores the last applied
   ``seq`` in the run's row in that same transaction. ``planrun status`` reads the store,
   so it lags a run by at most about ``window``.

Recovery (:func:`replay`): before anything else, the next apply applies each leftover
file's records after the run's ``journal_seq``, then deletes the file. A clean
:meth:`StoreJournal.close` applies everything and deletes the file. A last line that is
not a whole record (a crash in the middle of a write, or a machine crash that lost the
page cache) is dropped, and the recovery notes say at which byte; anything unreadable
before the end stops the apply with exit 2 and the line's number, the file left as it is
(never a silent skip). What a machine crash can lose is the tail of records not yet
committed to the store: the next apply then runs those tasks again (at least once, as
convergence promises), and the processes of those attempts died with the machine.

Why not commit each record to SQLite before going on: a commit costs an fsync (0.5 ms
here, much more on a busy disk) and a journal has four records per attempt, and waiting
for it cost every task a thread round trip; one-record transactions also cost the store
far more CPU than group commits (``bench/state_bench.py``: "FULL, no write-behind").
PostgreSQL's ``synchronous_commit = off`` makes the same trade.

A failed write (disk full, ...) stops the journal: the writer drops later records, and the
next ``attempt_started`` (or :meth:`StoreJournal.flush`) raises the error, so nothing new
starts on a journal that cannot record it. The file is then kept for the next apply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import queue
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from planrun.core.outcomes import Outcome, Status
from planrun.errors import InternalError, StoreError
from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo
from planrun.state.journalfile import (
    MOVE_JOURNAL_ASIDE,
    JournalFile,
    Record,
    Write,
    line_of,
    read_records,
    write_of,
)
from planrun.state.records import AttemptEnd, AttemptProcess, AttemptStart, TaskDone, TaskUpdate
from planrun.state.store import StoreProtocol, StoreWriter, utc_now

#: Seconds the writer gathers records before committing them as one transaction.
WINDOW = 0.05
#: Lines of a batch of records (a re-apply's up-to-date tasks) joined into one ``write``:
#: few writes, and a batch of 100,000 never held as one string.
_LINES_PER_WRITE = 512


class StoreJournal:
    """:class:`planrun.run.context.Journal` over a :class:`~planrun.state.store.StoreProtocol`.

    ``fingerprints`` maps each work task to its fingerprint and per-field hashes;
    ``up_to_date`` names the tasks ``apply`` decided not to run (their DONE is not a new
    success). ``journal_dir`` holds the run's journal file (None: no file, for a store that
    is not on disk anyway). ``write_behind=False`` applies every record to the store before
    returning, without a file or thread (tests, tools). Call :meth:`close` (it flushes)
    before closing the store.
    """

    def __init__(
        self,
        store: StoreProtocol,
        run_id: str,
        plan_name: str,
        fingerprints: Mapping[str, tuple[str, Mapping[str, str]]],
        up_to_date: Collection[str] = (),
        *,
        journal_dir: Path | None = None,
        write_behind: bool = True,
        window: float = WINDOW,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.plan_name = plan_name
        self.fingerprints = fingerprints
        self.up_to_date = frozenset(up_to_date)
        self._seq = store.journal_seq(run_id)
        self._broken: StoreError | None = None  # the journal file could not be written
        self._failure: BaseException | None = None  # the store write that failed, once closed
        self._file: JournalFile | None = None
        self._writer: _Writer | None = None
        self._closed = False
        if write_behind:
            if journal_dir is not None:
                self._file = JournalFile(journal_dir / f"{run_id}.jsonl")
            self._writer = _Writer(store, run_id, window)

    # ------------------------------------------------------------ the Journal protocol

    def attempt_started(self, key: str, number: int, log_path: Path) -> None:
        """Record attempt ``number`` of ``key`` (before its process starts)."""
        start = AttemptStart(key, number, utc_now(), self._fp(key) or "", str(log_path))
        self._record(start, must_record=True)

    def attempt_process(self, key: str, number: int, info: ProcessInfo) -> None:
        """Record the attempt's process group, for recovery after a crash."""
        self._record(AttemptProcess(key, number, info.pid, info.pgid, info.start_time, utc_now()))

    def attempt_finished(self, key: str, attempt: AttemptReport) -> None:
        """Close the attempt with its outcome, exit status, last lines and usage."""
        end = AttemptEnd(
            key,
            attempt.number,
            Outcome(attempt.outcome),
            attempt.ended_at or utc_now(),
            exit_code=attempt.exit_code,
            signal=attempt.signal,
            reason=attempt.reason,
            tail=list(attempt.tail),
            usage=dataclasses.asdict(attempt.usage) if attempt.usage else None,
        )
        self._record(end)

    def task_finished(self, key: str, report: TaskReport) -> None:
        """Record a task's status (final, or paused in review or for input); a new
        success becomes durably done."""
        self._record(self._task_write(key, report))

    def tasks_finished(self, reports: Sequence[tuple[str, TaskReport]]) -> None:
        """:meth:`task_finished` for each (key, report), in order, their lines written 512
        to a ``write``: a re-apply finishes thousands of up-to-date tasks at once."""
        self._record_many([self._task_write(key, report) for key, report in reports])

    def _task_write(self, key: str, report: TaskReport) -> Write:
        status = Status(report.status)
        common: dict[str, Any] = {
            "key": key,
            "at": utc_now(),
            "reason": report.reason,
            "branch": report.branch,
            "base_commit": report.base_commit,
            "landed_commit": report.landed_commit,
            "diffstat": report.diffstat,
        }
        hashes = self.fingerprints[key][1] if key in self.fingerprints else None
        if status is Status.DONE and hashes is not None and key not in self.up_to_date:
            data = {"fields": dict(hashes), "title": report.title, "kind": report.kind}
            fingerprint = self.fingerprints[key][0]
            return TaskDone(plan_name=self.plan_name, fingerprint=fingerprint, data=data, **common)
        info: dict[str, object] = {"cause": report.cause, "title": report.title}
        info["kind"] = report.kind
        if hashes is not None:
            info["fields"] = dict(hashes)
        return TaskUpdate(status=status, fingerprint=self._fp(key), data=info, **common)

    @property
    def failure(self) -> BaseException | None:
        """The write that failed and stopped the journal (its file's or the store's)."""
        if self._broken is not None:
            return self._broken
        return self._writer.failure if self._writer is not None else self._failure

    # ------------------------------------------------------------ lifetime

    def flush(self) -> None:
        """Return once every record so far is in the store; raise a failed write's error."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Apply everything, stop the writer, delete the journal file once all of it is in
        the store (it is kept when a write failed). Calling it again does nothing."""
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.stop()
        finally:
            self._failure = writer.failure
            if self._file is not None:
                self._file.close(remove=writer.failure is None)

    # ------------------------------------------------------------ internals

    def _fp(self, key: str) -> str | None:
        return self.fingerprints[key][0] if key in self.fingerprints else None

    def _record(self, write: Write, *, must_record: bool = False) -> None:
        self._record_many([write], must_record=must_record)

    def _record_many(self, writes: Sequence[Write], *, must_record: bool = False) -> None:
        """Record ``writes`` in order: their lines with one ``write`` to the file, then
        handed to the writer thread (or, not write-behind, applied at once)."""
        if self._closed:
            raise InternalError(f"journal of run {self.run_id} used after close()")
        if not writes:
            return
        numbered = list(enumerate(writes, start=self._seq + 1))
        if self._writer is None:  # not write-behind: straight into the store
            apply_writes(self.store, self.run_id, numbered)
            self._seq = numbered[-1][0]
            return
        if self._broken is not None:  # nothing more is recorded, nor applied out of order
            raise self._broken
        self._writer.raise_failure(again=must_record)
        if self._file is not None:
            try:
                for i in range(0, len(numbered), _LINES_PER_WRITE):
                    chunk = numbered[i : i + _LINES_PER_WRITE]
                    self._file.append(b"".join([line_of(seq, write) for seq, write in chunk]))
            except StoreError as error:
                self._broken = error
                raise
        self._seq = numbered[-1][0]
        for item in numbered:
            self._writer.submit(item)


# ---------------------------------------------------------------- applying records


def apply_records(store: StoreProtocol, run_id: str, records: list[Record]) -> None:
    """Apply ``records`` (in order) to the store as one transaction, with their last seq."""
    apply_writes(store, run_id, [(record.seq, write_of(record)) for record in records])


def apply_writes(store: StoreProtocol, run_id: str, writes: list[tuple[int, Write]]) -> None:
    """Apply ``writes`` (seq, write; in order) to the store as one transaction, with their
    last seq."""
    if not writes:
        return
    with store.batch(counted=False):
        for group in _runs_of_updates([write for _, write in writes]):
            if isinstance(group, list):  # consecutive task updates: one batch write
                store.tasks_updated(run_id, group)
            else:
                apply_write(store, run_id, group)
        store.journal_applied(run_id, writes[-1][0])


def _runs_of_updates(writes: list[Write]) -> Iterator[Write | list[TaskUpdate]]:
    """``writes`` in order, each run of two or more consecutive TaskUpdates as lists of at
    most :data:`_LINES_PER_WRITE` (so that their statements' parameters stay small)."""
    for updates, group in itertools.groupby(writes, key=lambda w: isinstance(w, TaskUpdate)):
        run = list(group)
        typed = [w for w in run if isinstance(w, TaskUpdate)] if updates else []
        if len(typed) < 2:
            yield from run
            continue
        for start in range(0, len(typed), _LINES_PER_WRITE):
            yield typed[start : start + _LINES_PER_WRITE]


def apply_write(store: StoreWriter, run_id: str, write: Write) -> None:
    """Hand one record to the store's write for its moment."""
    if isinstance(write, AttemptStart):
        store.attempt_started(run_id, write)
    elif isinstance(write, AttemptProcess):
        store.attempt_process(run_id, write)
    elif isinstance(write, AttemptEnd):
        store.attempt_finished(run_id, write)
    elif isinstance(write, TaskDone):
        store.task_done(run_id, write)
    else:
        store.task_updated(run_id, write)


def replay(store: StoreProtocol, journal_dir: Path) -> list[str]:
    """Apply what dead runs journaled but did not get into the store; delete their files.

    Must run under the state lock (then no live run owns a file here), before recovery.
    Returns what was done, for humans. A file that cannot be read whole raises StoreError
    and is left as it is (:func:`read_records`).
    """
    notes: list[str] = []
    if not journal_dir.is_dir():
        return notes
    for path in sorted(journal_dir.glob("*.jsonl")):
        run_id = path.stem
        if store.run(run_id) is None:
            notes.append(f"ignored {path}: no run {run_id!r} in the store")
            continue
        applied = store.journal_seq(run_id)
        read = read_records(path)
        records = [r for r in read.records if r.seq > applied]
        if records and records[0].seq != applied + 1:
            problem = f"its records resume at {records[0].seq}, the store has {applied}"
            raise StoreError(str(path), problem, MOVE_JOURNAL_ASIDE)
        apply_records(store, run_id, records)
        if records:
            notes.append(f"replayed {len(records)} journal record(s) of run {run_id}")
        if read.torn_at is not None:
            notes.append(f"dropped the torn end of {path} at byte {read.torn_at}")
        path.unlink()
    return notes


# ---------------------------------------------------------------- the writer thread


class _Flush:
    """A marker in the writer's queue: set ``done`` once everything before it applied."""

    def __init__(self, *, stop: bool = False) -> None:
        self.done = threading.Event()
        self.stop = stop


class _Writer:
    """One thread applying records in order, ``window`` seconds' worth per transaction."""

    def __init__(self, store: StoreProtocol, run_id: str, window: float) -> None:
        self._store = store
        self._run_id = run_id
        self._window = window
        self._queue: queue.SimpleQueue[tuple[int, Write] | _Flush] = queue.SimpleQueue()
        self._hurry = threading.Event()  # a flush is waiting: commit without gathering
        self.failure: BaseException | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._run, name="planrun-journal", daemon=True)
        self._thread.start()

    def submit(self, item: tuple[int, Write]) -> None:
        self._queue.put(item)

    def flush(self) -> None:
        """Return once everything submitted so far was applied (or failed); raise a failure."""
        marker = _Flush()
        self._queue.put(marker)
        self._hurry.set()
        marker.done.wait()
        self.raise_failure()

    def stop(self) -> None:
        """Apply what is queued, end the thread; raise a failure not raised before."""
        marker = _Flush(stop=True)
        self._queue.put(marker)
        self._hurry.set()
        self._thread.join()
        self.raise_failure()

    def raise_failure(self, *, again: bool = False) -> None:
        """Raise the failed write's error: always with ``again``, else only the first time."""
        if self.failure is not None and (again or not self._raised):
            self._raised = True
            raise self.failure

    def _run(self) -> None:
        # Lowest CPU priority for this thread alone (Linux threads have their own nice
        # value): it only copies what the journal file already holds, so it should never
        # take a core from the tasks or the event loop. Measured on 1,000 `true` tasks at
        # J=2 on two cores: 0.1 s less wall time. A flush waits longer on a saturated
        # machine; only pauses for input or review and the end of a run flush.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while True:
            items = [self._queue.get()]
            if not isinstance(items[0], _Flush) and self._window > 0:
                self._hurry.wait(self._window)  # gather: one transaction for all of it
            self._hurry.clear()
            with contextlib.suppress(queue.Empty):
                while True:
                    items.append(self._queue.get_nowait())
            self._apply([item for item in items if not isinstance(item, _Flush)])
            for item in items:
                if isinstance(item, _Flush):
                    item.done.set()
                    if item.stop:
                        return

    def _apply(self, writes: list[tuple[int, Write]]) -> None:
        if not writes or self.failure is not None:
            return
        try:
            apply_writes(self._store, self._run_id, writes)
        except BaseException as exc:  # handed to the scheduler's thread
            self.failure = exc

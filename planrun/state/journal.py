"""The scheduler's journal: what makes a run resumable (SPEC §5).

Two layers, so that recording costs the event loop one ``write`` and no wait:

1. The run's journal file, ``<state>/journal/<run id>.jsonl``. Each call appends one line,
   ``{"seq": n, "op": ..., "args": {...}}``, with a single ``write`` before it returns.
   That is what *recorded* means: a write that returned is in the kernel and survives
   planrun dying (kill -9, the OOM killer, a crash), which is when recovery matters. So
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
import json
import os
import queue
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planrun.atomic import ensure_private_dir
from planrun.core.outcomes import Outcome, Status
from planrun.errors import InternalError, StoreError
from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo
from planrun.state.faults import count_write, fault_at_from_env
from planrun.state.store import StoreProtocol, utc_now

#: Where, in the state folder, the runs' journal files are.
JOURNAL_DIR = "journal"
#: The store writes a record may hold (anything else in a file ends its readable part).
OPERATIONS = frozenset(
    {"attempt_started", "attempt_process", "attempt_finished", "task_done", "task_updated"}
)
#: Seconds the writer gathers records before committing them as one transaction.
WINDOW = 0.05
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # one encoder for every record
_ADVICE = "free disk space or fix the state folder's permissions, then run apply again to resume"


@dataclass(frozen=True)
class Record:
    """One journal line: the ``seq``-th write of a run, a store write ``op`` with ``args``."""

    seq: int
    op: str
    args: dict[str, Any]


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
        self._file: _JournalFile | None = None
        self._writer: _Writer | None = None
        self._closed = False
        if write_behind:
            if journal_dir is not None:
                self._file = _JournalFile(journal_dir / f"{run_id}.jsonl")
            self._writer = _Writer(store, run_id, window)

    # ------------------------------------------------------------ the Journal protocol

    def attempt_started(self, key: str, number: int, log_path: Path) -> None:
        """Record attempt ``number`` of ``key`` (before its process starts)."""
        args = {"key": key, "n": number, "at": utc_now(), "fingerprint": self._fp(key) or ""}
        args["log_path"] = str(log_path)
        self._record("attempt_started", args, must_record=True)

    def attempt_process(self, key: str, number: int, info: ProcessInfo) -> None:
        """Record the attempt's process group, for recovery after a crash."""
        args = {"key": key, "n": number, "pid": info.pid, "pgid": info.pgid}
        args.update(start_time=info.start_time, at=utc_now())
        self._record("attempt_process", args)

    def attempt_finished(self, key: str, attempt: AttemptReport) -> None:
        """Close the attempt with its outcome, exit status, last lines and usage."""
        args = {
            "key": key,
            "n": attempt.number,
            "outcome": Outcome(attempt.outcome).value,
            "at": attempt.ended_at or utc_now(),
            "exit_code": attempt.exit_code,
            "signal": attempt.signal,
            "reason": attempt.reason,
            "tail": list(attempt.tail),
            "usage": attempt.usage.model_dump() if attempt.usage else None,
        }
        self._record("attempt_finished", args)

    def task_finished(self, key: str, report: TaskReport) -> None:
        """Record a task's status (final, or paused in review or for input); a new
        success becomes durably done."""
        status = Status(report.status)
        args: dict[str, Any] = {
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
            args["plan"] = self.plan_name
            args["fingerprint"] = self.fingerprints[key][0]
            args["data"] = {"fields": dict(hashes), "title": report.title, "kind": report.kind}
            self._record("task_done", args)
            return
        info: dict[str, object] = {"cause": report.cause, "title": report.title}
        info["kind"] = report.kind
        if hashes is not None:
            info["fields"] = dict(hashes)
        args.update(status=status.value, fingerprint=self._fp(key), data=info)
        self._record("task_updated", args)

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

    def _record(self, op: str, args: dict[str, Any], *, must_record: bool = False) -> None:
        if self._closed:
            raise InternalError(f"journal of run {self.run_id} used after close()")
        if self._writer is None:  # not write-behind: straight into the store
            apply_records(self.store, self.run_id, [Record(self._seq + 1, op, args)])
            self._seq += 1
            return
        if self._broken is not None:  # nothing more is recorded, nor applied out of order
            raise self._broken
        self._writer.raise_failure(again=must_record)
        record = Record(self._seq + 1, op, args)
        if self._file is not None:
            try:
                self._file.append(record)
            except StoreError as error:
                self._broken = error
                raise
        self._seq = record.seq
        self._writer.submit(record)


# ---------------------------------------------------------------- applying records


def apply_records(store: StoreProtocol, run_id: str, records: list[Record]) -> None:
    """Apply ``records`` (in order) to the store as one transaction, with their last seq."""
    if not records:
        return
    with store.batch(counted=False):
        for record in records:
            _apply(store, run_id, record)
        store.set_journal_seq(run_id, records[-1].seq)


def _apply(store: StoreProtocol, run_id: str, record: Record) -> None:
    a = record.args
    if record.op == "attempt_started":
        store.attempt_started(run_id, a["key"], a["n"], a["at"], a["fingerprint"], a["log_path"])
    elif record.op == "attempt_process":
        store.attempt_process(
            run_id, a["key"], a["n"], a["pid"], a["pgid"], a["start_time"], at=a["at"]
        )
    elif record.op == "attempt_finished":
        store.attempt_finished(
            run_id,
            a["key"],
            a["n"],
            Outcome(a["outcome"]),
            a["at"],
            exit_code=a["exit_code"],
            signal=a["signal"],
            reason=a["reason"],
            tail=a["tail"],
            usage=a["usage"],
        )
    elif record.op == "task_done":
        store.task_done(
            a["plan"], run_id, a["key"], a["fingerprint"], at=a["at"], data=a["data"], **_task(a)
        )
    elif record.op == "task_updated":
        store.task_updated(
            run_id,
            a["key"],
            Status(a["status"]),
            at=a["at"],
            fingerprint=a["fingerprint"],
            data=a["data"],
            **_task(a),
        )
    else:
        raise ValueError(f"unknown journal operation {record.op!r}")


def _task(args: Mapping[str, Any]) -> dict[str, Any]:
    names = ("reason", "branch", "base_commit", "landed_commit", "diffstat")
    return {name: args[name] for name in names}


# ---------------------------------------------------------------- the file


class _JournalFile:
    """A run's journal file, appended to with one ``write`` per record (no fsync)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fault_at = fault_at_from_env()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            ensure_private_dir(path.parent)
            self._fd: int | None = os.open(path, flags, 0o600)
        except OSError as e:
            problem = f"cannot open the run's journal ({e.strerror})"
            raise StoreError(str(path), problem, _ADVICE) from e

    def append(self, record: Record) -> None:
        entry = {"seq": record.seq, "op": record.op, "args": record.args}
        data = (_ENCODE(entry) + "\n").encode()
        if self._fd is None:
            raise StoreError(str(self.path), "journal write after close", _ADVICE)
        try:
            while data:  # a regular file takes it in one write unless the disk is full
                data = data[os.write(self._fd, data) :]
        except OSError as e:
            problem = f"journal write failed ({e.strerror})"
            raise StoreError(str(self.path), problem, _ADVICE) from e
        count_write(self._fault_at)

    def close(self, *, remove: bool) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class JournalRead:
    """What a journal file holds: its whole records, and where a torn end was dropped."""

    records: list[Record]
    torn_at: int | None = None  # byte offset of an unreadable last line, if there was one


_MOVE_JOURNAL_ASIDE = (
    "planrun will not drop records it cannot read; move the file aside (apply then runs "
    "again what it recorded) or restore it"
)


def read_records(path: Path) -> JournalRead:
    """Read a journal file (matrix C3).

    A last line that is not a whole record (a crash in the middle of a write; zeroes where
    a machine crash lost the page cache) is a torn end: it is dropped and its offset
    returned. Anything else that is not a record, or that breaks the sequence, before the
    end (a corrupt file, an operation this planrun does not know) raises StoreError
    naming the line; nothing is skipped silently.
    """
    data = path.read_bytes()
    records: list[Record] = []
    offset = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        last = number == len(lines) or (number == len(lines) - 1 and lines[-1] == b"")
        if not line and number == len(lines):
            break  # the file ends with a newline
        problem = _problem(line, records)
        if problem is None:
            records.append(_parse(line))
        elif last:
            return JournalRead(records, torn_at=offset)
        else:
            raise StoreError(str(path), f"line {number} {problem}", _MOVE_JOURNAL_ASIDE)
        offset += len(line) + 1
    return JournalRead(records)


def _parse(line: bytes) -> Record:
    entry = json.loads(line)
    return Record(int(entry["seq"]), str(entry["op"]), dict(entry["args"]))


def _problem(line: bytes, before: list[Record]) -> str | None:
    """Why ``line`` is not the record that follows ``before``; None if it is."""
    try:
        record = _parse(line)
    except (ValueError, KeyError, TypeError):
        return "is not a journal record"
    if record.op not in OPERATIONS:
        return f"holds an operation this planrun does not know ({record.op[:40]!r})"
    if before and record.seq != before[-1].seq + 1:
        return f"breaks the sequence (record {record.seq} after {before[-1].seq})"
    return None


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
            raise StoreError(str(path), problem, _MOVE_JOURNAL_ASIDE)
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
        self._queue: queue.SimpleQueue[Record | _Flush] = queue.SimpleQueue()
        self._hurry = threading.Event()  # a flush is waiting: commit without gathering
        self.failure: BaseException | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._run, name="planrun-journal", daemon=True)
        self._thread.start()

    def submit(self, record: Record) -> None:
        self._queue.put(record)

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
            if isinstance(items[0], Record) and self._window > 0:
                self._hurry.wait(self._window)  # gather: one transaction for all of it
            self._hurry.clear()
            with contextlib.suppress(queue.Empty):
                while True:
                    items.append(self._queue.get_nowait())
            self._apply([item for item in items if isinstance(item, Record)])
            for item in items:
                if isinstance(item, _Flush):
                    item.done.set()
                    if item.stop:
                        return

    def _apply(self, records: list[Record]) -> None:
        if not records or self.failure is not None:
            return
        try:
            apply_records(self._store, self._run_id, records)
        except BaseException as exc:  # handed to the scheduler's thread
            self.failure = exc

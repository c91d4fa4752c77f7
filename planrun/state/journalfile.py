"""A run's journal file, ``<state>/journal/<run id>.jsonl``: its lines and how they are
read back.

Each line is one record, ``{"seq": n, "op": ..., "args": {...}}``: the run's ``seq``-th
store write, ``op`` naming the write (:data:`OPERATIONS`) and ``args`` holding its record
(:mod:`planrun.state.records`) by field name. :class:`JournalFile` appends a line with a
single ``write`` and no fsync; :func:`read_records` reads a file back, dropping a torn
last line and refusing anything else it cannot read. Files written by earlier planruns
read the same: a field added since (``attempts`` of ``task_updated``) is optional.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from planrun.atomic import ensure_private_dir
from planrun.core.frozen import frozen
from planrun.core.outcomes import Outcome, Status
from planrun.errors import StoreError
from planrun.state.faults import count_write, fault_at_from_env
from planrun.state.records import AttemptEnd, AttemptProcess, AttemptStart, TaskDone, TaskUpdate

#: The journal files of runs, in the state folder.
JOURNAL_DIR = "journal"

#: What a run writes through its journal, and each write's operation in the file.
Write = AttemptStart | AttemptProcess | AttemptEnd | TaskUpdate | TaskDone
_OPS: dict[type[Write], str] = {
    AttemptStart: "attempt_started",
    AttemptProcess: "attempt_process",
    AttemptEnd: "attempt_finished",
    TaskDone: "task_done",
    TaskUpdate: "task_updated",
}
#: The store writes a record may hold (anything else in a file ends its readable part).
OPERATIONS = frozenset(_OPS.values())
_TASK_FIELDS = ("key", "at", "reason", "branch", "base_commit", "landed_commit", "diffstat", "data")
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # one encoder for every record
ADVICE = "free disk space or fix the state folder's permissions, then run apply again to resume"


@frozen
class Record:
    """One journal line: the ``seq``-th write of a run, a store write ``op`` with ``args``."""

    seq: int
    op: str
    args: dict[str, Any]


def line_of(seq: int, write: Write) -> bytes:
    """The journal file's line for a run's ``seq``-th write: its fields by name (a
    TaskDone's ``plan_name`` as ``plan``), values as JSON has them (enums are strings).
    Made straight from the write: four lines per attempt, on the event loop."""
    return f'{{"seq":{seq},"op":"{_OPS[type(write)]}","args":{_ENCODE(_args(write))}}}\n'.encode()


def _args(write: Write) -> dict[str, Any]:
    args = vars(write)
    if type(write) is TaskDone:
        args = dict(args)
        args["plan"] = args.pop("plan_name")
    return args


def write_of(record: Record) -> Write:
    """The store write a record of the file holds (KeyError, ValueError: not one)."""
    a = record.args
    if record.op == "attempt_started":
        return AttemptStart(a["key"], a["n"], a["at"], a["fingerprint"], a["log_path"])
    if record.op == "attempt_process":
        return AttemptProcess(a["key"], a["n"], a["pid"], a["pgid"], a["start_time"], a["at"])
    if record.op == "attempt_finished":
        return AttemptEnd(
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
    common = {name: a[name] for name in _TASK_FIELDS}
    if record.op == "task_done":
        return TaskDone(plan_name=a["plan"], fingerprint=a["fingerprint"], **common)
    if record.op == "task_updated":
        status = Status(a["status"])
        return TaskUpdate(
            status=status, fingerprint=a["fingerprint"], attempts=a.get("attempts"), **common
        )
    raise ValueError(f"unknown journal operation {record.op!r}")


class JournalFile:
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
            raise StoreError(str(path), problem, ADVICE) from e

    def append(self, line: bytes) -> None:
        """Write one record's line (:func:`line_of`)."""
        data = line
        if self._fd is None:
            raise StoreError(str(self.path), "journal write after close", ADVICE)
        try:
            while data:  # a regular file takes it in one write unless the disk is full
                data = data[os.write(self._fd, data) :]
        except OSError as e:
            problem = f"journal write failed ({e.strerror})"
            raise StoreError(str(self.path), problem, ADVICE) from e
        count_write(self._fault_at)

    def close(self, *, remove: bool) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            self.path.unlink(missing_ok=True)


@frozen
class JournalRead:
    """What a journal file holds: its whole records, and where a torn end was dropped."""

    records: list[Record]
    torn_at: int | None = None  # byte offset of an unreadable last line, if there was one


MOVE_JOURNAL_ASIDE = (
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
            raise StoreError(str(path), f"line {number} {problem}", MOVE_JOURNAL_ASIDE)
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

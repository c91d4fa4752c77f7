"""StoreJournal: order kept, a record kept once the call returns, replay after a crash,
failures never lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from planrun.core.outcomes import Status
from planrun.errors import InternalError, StoreError
from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo
from planrun.state.journal import StoreJournal, replay
from planrun.state.journalfile import Record, read_records
from planrun.state.memory import MemoryStore
from planrun.state.open import open_store
from planrun.state.records import AttemptStart
from planrun.state.store import RunRow, StoreProtocol, utc_now

FPS = {"A": ("fa" * 32, {"run": "1" * 16}), "B": ("fb" * 32, {"run": "2" * 16})}
RUN = RunRow("r1", "p", "/p.yaml", "00", "0", utc_now(), "running")
KINDS_OF_ONE_TASK = ["attempt_started", "attempt_process", "attempt_finished", "task_done"]


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[StoreProtocol]:
    """The store the journal writes to: SQLite in memory, or PostgreSQL (the same
    records must land in both)."""
    s = (
        MemoryStore()
        if request.param == "memory"
        else open_store(request.getfixturevalue("pg_url"))
    )
    yield s
    s.close()


def journal(store: StoreProtocol, **kwargs: object) -> StoreJournal:
    store.run_started(RUN)
    return StoreJournal(store, "r1", "p", FPS, up_to_date={"B"}, **kwargs)  # type: ignore[arg-type]


def one_task(j: StoreJournal, key: str) -> None:
    j.attempt_started(key, 1, Path(f"/logs/{key}"))
    j.attempt_process(key, 1, ProcessInfo(pid=10, pgid=10, start_time=5))
    attempt = AttemptReport(number=1, started_at=utc_now(), outcome="succeeded")
    j.attempt_finished(key, attempt)
    j.task_finished(key, TaskReport(key=key, title=key, status="done"))


@pytest.mark.parametrize("write_behind", [True, False])
def test_writes_land_in_call_order(
    write_behind: bool, tmp_path: Path, store: StoreProtocol
) -> None:
    j = journal(store, write_behind=write_behind, journal_dir=tmp_path)
    one_task(j, "A")
    j.task_finished("B", TaskReport(key="B", title="B", status="done", reason="up to date"))
    j.close()
    kinds = [(e.kind, e.key) for e in store.events("r1")]
    assert kinds == [
        ("run_started", None),
        *[(kind, "A") for kind in KINDS_OF_ONE_TASK],
        ("task_status", "B"),  # up to date: recorded in the run, not done again
    ]
    states = store.task_states("p")
    assert states["A"].status is Status.DONE
    assert "B" not in states
    assert store.tasks("r1")[0].data["fields"] == {"run": "1" * 16}
    assert store.journal_seq("r1") == 5
    assert list(tmp_path.iterdir()) == []  # all of it is in the store: the file is gone


def test_a_record_is_in_the_file_when_the_call_returns(
    tmp_path: Path, store: StoreProtocol
) -> None:
    """The store may lag (the writer gathers for `window`), the file never does."""
    j = journal(store, journal_dir=tmp_path, window=3600.0)
    one_task(j, "A")
    j.attempt_started("C", 1, Path("/logs/C"))
    records = read_records(tmp_path / "r1.jsonl").records
    assert [r.op for r in records] == [*KINDS_OF_ONE_TASK[:3], "task_done", "attempt_started"]
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[-1].args["key"] == "C"
    assert [e.kind for e in store.events("r1")] == ["run_started"]  # still gathering
    j.flush()  # commits at once, without waiting out the window
    assert [e.kind for e in store.events("r1")][-2:] == ["task_done", "attempt_started"]
    j.close()


CRASHING_WRITER = """
import os, signal, sys
from pathlib import Path
from planrun.state.journal import StoreJournal
from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo
from planrun.state.store import RunRow, utc_now
from planrun.state.open import open_store

store = open_store(sys.argv[2])
store.run_started(RunRow("r1", "p", "/p.yaml", "00", "0", utc_now(), "running"))
fps = {"A": ("fa" * 32, {"run": "1" * 16})}
j = StoreJournal(store, "r1", "p", fps, journal_dir=Path(sys.argv[1]) / "journal", window=3600)
j.attempt_started("A", 1, Path("/logs/A"))
j.attempt_process("A", 1, ProcessInfo(pid=10, pgid=10, start_time=5))
j.attempt_finished("A", AttemptReport(number=1, started_at=utc_now(), outcome="succeeded"))
j.task_finished("A", TaskReport(key="A", title="A", status="done"))
j.attempt_started("B", 1, Path("/logs/B"))
os.kill(os.getpid(), signal.SIGKILL)  # before the writer committed anything
"""


def test_replay_after_kill9_applies_what_the_store_missed(
    tmp_path: Path, store_location: Path | str
) -> None:
    writer = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(tmp_path), str(store_location)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    store = open_store(store_location)
    assert [e.kind for e in store.events("r1")] == ["run_started"]
    notes = replay(store, tmp_path / "journal")
    assert notes == ["replayed 5 journal record(s) of run r1"]
    kinds = [(e.kind, e.key) for e in store.events("r1")]
    assert kinds[1:] == [*[(k, "A") for k in KINDS_OF_ONE_TASK], ("attempt_started", "B")]
    assert store.task_states("p")["A"].status is Status.DONE
    assert [(a.key, a.n) for a in store.open_attempts("p")] == [("B", 1)]
    assert store.journal_seq("r1") == 5
    assert not (tmp_path / "journal" / "r1.jsonl").exists()
    assert replay(store, tmp_path / "journal") == []  # nothing twice
    store.close()


def write_journal(path: Path, records: list[Record], tail: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"seq": r.seq, "op": r.op, "args": r.args}) for r in records]
    path.write_bytes("".join(line + "\n" for line in lines).encode() + tail)


def started(seq: int, key: str) -> Record:
    args = {"key": key, "n": 1, "at": utc_now(), "fingerprint": "f", "log_path": "/l"}
    return Record(seq, "attempt_started", args)


#: Each record as planrun wrote it before the store took typed records: the args each
#: operation's line held then (a file a killed older planrun left must still replay).
EARLIER_ARGS: dict[str, dict[str, Any]] = {
    "attempt_started": {"key": "A", "n": 1, "at": "2026-11-21T06:00:01.000000Z"}
    | {"fingerprint": "fa", "log_path": "/logs/A"},
    "attempt_process": {"key": "A", "n": 1, "pid": 10, "pgid": 10, "start_time": 5}
    | {"at": "2026-11-21T06:00:02.000000Z"},
    "attempt_finished": {"key": "A", "n": 1, "outcome": "succeeded"}
    | {"at": "2026-11-21T06:00:03.000000Z", "exit_code": 0, "signal": None, "reason": ""}
    | {"tail": ["ok"], "usage": None},
    "task_done": {"key": "A", "at": "2026-11-21T06:00:04.000000Z", "reason": ""}
    | {"branch": None, "base_commit": None, "landed_commit": "c0ffee", "diffstat": None}
    | {"plan": "p", "fingerprint": "fa", "data": {"fields": {"run": "1" * 16}}},
    "task_updated": {"key": "B", "at": "2026-11-21T06:00:05.000000Z", "reason": "up to date"}
    | {"branch": None, "base_commit": None, "landed_commit": None, "diffstat": None}
    | {"status": "done", "fingerprint": None, "data": {}},
}


def test_journal_files_of_earlier_planruns_replay_and_new_lines_keep_their_args(
    tmp_path: Path, store: StoreProtocol
) -> None:
    store.run_started(RUN)
    lines = [Record(n, op, args) for n, (op, args) in enumerate(EARLIER_ARGS.items(), start=1)]
    write_journal(tmp_path / "r1.jsonl", lines)
    assert replay(store, tmp_path) == ["replayed 5 journal record(s) of run r1"]
    kinds = [(e.kind, e.key) for e in store.events("r1")][1:]
    assert kinds == [*[(k, "A") for k in KINDS_OF_ONE_TASK], ("task_status", "B")]
    (attempt,) = store.attempts("r1", "A")
    assert (attempt.outcome, attempt.tail, attempt.pgid) == ("succeeded", ("ok",), 10)
    assert {t.key: t.landed_commit for t in store.tasks("r1")} == {"A": "c0ffee", "B": None}
    j = journal(MemoryStore(), journal_dir=tmp_path, window=3600.0)
    one_task(j, "A")
    j.task_finished("B", TaskReport(key="B", title="B", status="done", reason="up to date"))
    written = read_records(tmp_path / "r1.jsonl").records
    for record in written:  # an earlier planrun reads what this one writes
        assert set(record.args) >= set(EARLIER_ARGS[record.op]), record.op
    j.close()


@pytest.mark.parametrize(
    "tail",
    [b'{"seq": 3, "op": "attempt_sta', b"\x00\x00\x00\x00", b"not json\n", b'{"seq": 3}\n'],
)
def test_a_torn_end_is_dropped_with_its_offset(
    tmp_path: Path, tail: bytes, store: StoreProtocol
) -> None:
    """Matrix C3 (a): what a crash in the middle of a write (or a lost page cache) leaves
    at the end is dropped, and said, and the records before it are applied."""
    store.run_started(RUN)
    path = tmp_path / "r1.jsonl"
    write_journal(path, [started(1, "A"), started(2, "B")], tail)
    offset = len(path.read_bytes()) - len(tail)
    assert replay(store, tmp_path) == [
        "replayed 2 journal record(s) of run r1",
        f"dropped the torn end of {path} at byte {offset}",
    ]
    assert sorted(a.key for a in store.open_attempts("p")) == ["A", "B"]


@pytest.mark.parametrize(
    ("middle", "problem"),
    [
        (b"garbage\n", "line 2 is not a journal record"),
        (b'{"seq": 2, "op": "close", "args": {}}\n', "line 2 holds an operation this planrun"),
        (b"\n", "line 2 is not a journal record"),
    ],
)
def test_a_corrupt_record_before_the_end_is_refused_and_kept(
    tmp_path: Path, middle: bytes, problem: str, store: StoreProtocol
) -> None:
    """Matrix C3 (b): never a silent skip. The file is left byte for byte as it was, and
    nothing of it is applied; records are data, never looked up by name."""
    store.run_started(RUN)
    path = tmp_path / "r1.jsonl"
    write_journal(path, [started(1, "A")])
    path.write_bytes(path.read_bytes() + middle)
    with path.open("ab") as handle:
        handle.write(json.dumps({"seq": 3, "op": "attempt_started", "args": {}}).encode() + b"\n")
    before = path.read_bytes()
    with pytest.raises(StoreError, match=problem):
        replay(store, tmp_path)
    assert path.read_bytes() == before
    assert store.journal_seq("r1") == 0
    assert store.open_attempts("p") == []


def test_replay_skips_what_the_store_has_and_refuses_a_gap(
    tmp_path: Path, store: StoreProtocol
) -> None:
    store.run_started(RUN)
    store.attempt_started("r1", AttemptStart("A", 1, utc_now(), "f", "/l"))
    store.journal_applied("r1", 1)
    write_journal(tmp_path / "r1.jsonl", [started(1, "A"), started(2, "B")])
    assert replay(store, tmp_path) == ["replayed 1 journal record(s) of run r1"]
    assert sorted(a.key for a in store.open_attempts("p")) == ["A", "B"]
    assert store.journal_seq("r1") == 2
    write_journal(tmp_path / "r1.jsonl", [started(4, "D")])  # 3 is missing
    with pytest.raises(StoreError, match="its records resume at 4, the store has 2"):
        replay(store, tmp_path)
    assert (tmp_path / "r1.jsonl").exists()


def test_a_journal_of_an_unknown_run_is_left_alone(tmp_path: Path, store: StoreProtocol) -> None:
    write_journal(tmp_path / "elsewhere.jsonl", [started(1, "A")])
    assert replay(store, tmp_path) == [
        f"ignored {tmp_path / 'elsewhere.jsonl'}: no run 'elsewhere' in the store"
    ]
    assert (tmp_path / "elsewhere.jsonl").exists()


def test_a_failed_write_stops_the_journal_and_is_raised(
    tmp_path: Path, store: StoreProtocol
) -> None:
    j = journal(store, journal_dir=tmp_path)
    j.attempt_started("A", 1, Path("/logs/A"))
    j.flush()
    store.close()  # every write fails from now on
    j.attempt_process("A", 1, ProcessInfo(pid=10, pgid=10, start_time=5))
    with pytest.raises(InternalError):
        j.flush()
    with pytest.raises(InternalError):  # an attempt never starts on a failed journal
        j.attempt_started("B", 1, Path("/logs/B"))
    j.close()  # already reported: closing does not raise it again
    kept = read_records(tmp_path / "r1.jsonl").records  # kept for the next apply to replay
    assert [r.op for r in kept] == ["attempt_started", "attempt_process"]


def test_a_journal_file_that_cannot_be_written_is_an_error(tmp_path: Path) -> None:
    store = MemoryStore()
    blocked = tmp_path / "journal"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="cannot open the run's journal"):
        journal(store, journal_dir=blocked / "sub")


def test_the_file_is_private(tmp_path: Path) -> None:
    store = MemoryStore()
    j = journal(store, journal_dir=tmp_path / "journal", window=3600.0)
    j.attempt_started("A", 1, Path("/logs/A"))
    assert os.stat(tmp_path / "journal" / "r1.jsonl").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "journal").st_mode & 0o777 == 0o700
    j.close()


@pytest.mark.parametrize("write_behind", [True, False])
def test_a_closed_journal_refuses_records(write_behind: bool) -> None:
    store = MemoryStore()
    j = journal(store, write_behind=write_behind)
    j.close()
    with pytest.raises(InternalError, match="used after close"):
        j.attempt_started("A", 1, Path("/logs/A"))
    assert [e.kind for e in store.events("r1")] == ["run_started"]


def test_each_kind_of_write_reads_back_from_its_line(tmp_path: Path) -> None:
    """A line made on the event loop (line_of) is the record replay reads (write_of)."""
    from planrun.core.outcomes import Outcome
    from planrun.state.journalfile import JournalFile, line_of, write_of
    from planrun.state.records import AttemptEnd, AttemptProcess, TaskDone, TaskUpdate

    writes = [
        AttemptStart("A", 1, utc_now(), "fp", "/logs/A.log"),
        AttemptProcess("A", 1, 4242, 4242, 987654, utc_now()),
        AttemptEnd("A", 1, Outcome.FAILED, utc_now(), exit_code=3, reason='é "q"\n', tail=["x"]),
        TaskUpdate(key="A", status=Status.RETRYING, reason="r", data={"cause": None}),
        TaskDone(key="A", plan_name="p", fingerprint="fp", data={"fields": {"run": "h"}}),
    ]
    journal = JournalFile(tmp_path / "r.jsonl")
    for seq, write in enumerate(writes, start=1):
        journal.append(line_of(seq, write))
    journal.close(remove=False)
    read = read_records(tmp_path / "r.jsonl")
    assert [r.seq for r in read.records] == [1, 2, 3, 4, 5]
    assert [write_of(r) for r in read.records] == writes
    assert read.records[4].args["plan"] == "p"  # a TaskDone's plan_name, as files have it


@pytest.mark.parametrize("write_behind", [True, False])
def test_many_tasks_finished_at_once_land_as_one_by_one(
    store: StoreProtocol, tmp_path: Path, write_behind: bool
) -> None:
    """A re-apply's up-to-date tasks are recorded together (a few writes of many lines,
    consecutive updates applied in bulk): the file, the rows and the events are those of
    task_finished called for each, in order."""
    j = journal(store, journal_dir=tmp_path, write_behind=write_behind)
    keys = [f"T{i:04d}" for i in range(1200)]  # more than one write's worth of lines
    j.attempt_started("A", 1, Path("/logs/A"))
    reports = [(k, TaskReport(key=k, title=k, status="done", reason="up to date")) for k in keys]
    j.tasks_finished([("A", TaskReport(key="A", title="A", status="failed")), *reports])
    j.tasks_finished([])
    if write_behind:
        read = read_records(tmp_path / "r1.jsonl")
        assert [r.seq for r in read.records] == list(range(1, 1203))
        assert [r.args["key"] for r in read.records[2:]] == keys
    j.close()
    rows = {t.key: t for t in store.tasks("r1")}
    assert rows["A"].status is Status.FAILED
    assert [rows[k].reason for k in keys] == ["up to date"] * len(keys)
    statuses = [e.key for e in store.events("r1") if e.kind == "task_status"]
    assert statuses == ["A", *keys]
    assert store.journal_seq("r1") == 1202

"""The state store. The protocol's contract holds for every store (``any_store``: the
SQLite file, in memory, PostgreSQL; ``store_location``: SQLite and PostgreSQL, reopened or
read from another connection or process): round trips, convergence bookkeeping, misuse,
readers while a writer writes, batches, the fault seam. Then the SQLite file's own:
creation, refusing what is not ours, migration."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from planrun.core.outcomes import Outcome, Status
from planrun.errors import InternalError, StoreError, UsageError
from planrun.state.faults import FAULT_ENV
from planrun.state.memory import MemoryStore
from planrun.state.open import open_store
from planrun.state.records import AttemptEnd, AttemptProcess, AttemptStart, TaskDone, TaskUpdate
from planrun.state.sqlite import APPLICATION_ID, SCHEMA_VERSION, Store
from planrun.state.store import RUN_PLAN_EVENT, RunRow, StoreProtocol, utc_now

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_fault_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULT_ENV, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture(params=["file", "memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[StoreProtocol]:
    """Every store: the protocol's tests hold for each (the contract)."""
    s: StoreProtocol
    if request.param == "postgres":
        s = open_store(request.getfixturevalue("pg_url"))
    else:
        s = Store.open(db_path) if request.param == "file" else MemoryStore()
    yield s
    s.close()


def make_run(run_id: str = "r1", plan: str = "demo", started_at: str = "") -> RunRow:
    return RunRow(
        id=run_id,
        plan_name=plan,
        plan_path=f"/plans/{plan}.yaml",
        plan_sha256="ab" * 32,
        planrun_version="0.1.0",
        started_at=started_at or utc_now(),
        status="running",
        pid=4242,
        host="ci-7",
        args=("planrun", "apply", f"{plan}.yaml"),
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


# ---------------------------------------------------------------- creation


def test_a_new_path_gets_a_complete_store_in_a_private_folder(db_path: Path) -> None:
    Store.open(db_path).close()
    assert db_path.parent.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in db_path.parent.iterdir()) == ["state.db"]  # no temp left
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    finally:
        con.close()
    assert {"runs", "tasks", "attempts", "events", "task_state"} <= tables


def test_reopening_keeps_what_was_written(store_location: Path | str) -> None:
    with closing(open_store(store_location)) as s:
        s.run_started(make_run())
    with closing(open_store(store_location)) as s:
        run = s.run("r1")
    assert run is not None
    assert run.plan_name == "demo"


# ---------------------------------------------------------------- round trips


def test_runs_round_trip(any_store: StoreProtocol) -> None:
    s = any_store
    first = make_run("r1", "demo", "2026-11-21T06:00:00.000000Z")
    s.run_started(first)
    s.run_started(make_run("x1", "other"))
    s.run_started(make_run("r2", "demo"))
    assert s.run("r1") == first
    assert s.run("nope") is None
    assert [r.id for r in s.runs("demo")] == ["r1", "r2"]
    assert s.last_run("demo") == s.run("r2")
    assert s.last_run() == s.run("r2")
    assert s.last_run("missing") is None
    s.run_ended("r1", "succeeded", "2026-11-21T06:05:00.000000Z")
    ended = s.run("r1")
    assert ended is not None
    assert (ended.status, ended.ended_at) == ("succeeded", "2026-11-21T06:05:00.000000Z")
    assert [e.kind for e in s.events("r1")] == ["run_started", "run_ended"]


def test_the_decisions_lean_reads_agree_with_the_full_rows(any_store: StoreProtocol) -> None:
    """past_attempts and past_tasks read what attempts and tasks hold, without the rest."""
    s = any_store
    s.run_started(make_run("r1"))
    s.run_started(make_run("r2"))
    s.run_started(make_run("x1", "other"))
    s.attempt_started("r1", AttemptStart("A", 1, utc_now(), "fp-a", "/l"))
    s.attempt_finished("r1", AttemptEnd("A", 1, Outcome.INTERRUPTED, utc_now()))
    s.attempt_started("r2", AttemptStart("A", 2, utc_now(), "fp-a", "/l"))
    s.attempt_started("x1", AttemptStart("A", 1, utc_now(), "fp-x", "/l"))
    fields = {"run": "h1", "env": "h2"}
    s.task_done(
        "r2",
        TaskDone(
            key="A",
            plan_name="demo",
            fingerprint="fp-a",
            landed_commit="c0ffee",
            data={"fields": fields, "title": "A"},
        ),
    )
    s.task_updated("r2", TaskUpdate(key="B", status=Status.FAILED, data={"title": "B"}))
    past = sorted(s.past_attempts(["r1", "r2"]), key=lambda a: (a.run_id, a.n))
    assert [(a.run_id, a.key, a.n, a.fingerprint, a.outcome) for a in past] == [
        ("r1", "A", 1, "fp-a", Outcome.INTERRUPTED),
        ("r2", "A", 2, "fp-a", None),  # still open
    ]
    assert s.past_attempts([]) == []
    rows = s.past_tasks("r2")
    assert (rows["A"].fingerprint, rows["A"].landed_commit, rows["A"].fields) == (
        "fp-a",
        "c0ffee",
        fields,
    )
    assert rows["B"].fields is None  # no per-field hashes recorded
    assert s.past_tasks("nope") == {}


def test_task_updates_in_bulk_leave_what_one_by_one_leaves(any_store: StoreProtocol) -> None:
    """tasks_updated (a re-apply's thousands of up-to-date tasks) writes the same rows and
    events as task_updated called for each, in order: a key twice, the last wins."""
    s = any_store
    s.run_started(make_run("one"))
    s.run_started(make_run("bulk"))
    for run_id in ("one", "bulk"):
        s.attempt_started(run_id, AttemptStart("C", 1, "2026-11-21T06:00:00.000000Z", "fp", "/l"))
    at = "2026-11-21T06:00:01.000000Z"
    updates = [
        TaskUpdate(key="A", at=at, status=Status.DONE, reason="up to date", fingerprint="f"),
        TaskUpdate(key="B", at=at, status=Status.RETRYING, reason="r1", data={"kind": "work"}),
        TaskUpdate(key="C", at=at, status=Status.FAILED, reason="boom", attempts=1),
        TaskUpdate(key="B", at=at, status=Status.FAILED, reason="r2"),
    ]
    for update in updates:
        s.task_updated("one", update)
    s.tasks_updated("bulk", updates)
    s.tasks_updated("bulk", [])

    def rows(run_id: str) -> list[tuple[object, ...]]:
        return [
            (t.key, t.status, t.reason, t.fingerprint, t.attempts, t.data, t.updated_at)
            for t in s.tasks(run_id)
        ]

    def events(run_id: str) -> list[tuple[object, ...]]:
        return [(e.kind, e.key, e.data, e.at) for e in s.events(run_id) if e.kind == "task_status"]

    assert rows("bulk") == rows("one")
    assert [r[:3] for r in rows("bulk")] == [
        ("A", Status.DONE, "up to date"),
        ("B", Status.FAILED, "r2"),
        ("C", Status.FAILED, "boom"),
    ]
    assert events("bulk") == events("one")
    assert len(events("bulk")) == 4
    assert s.task_states("demo")["C"].status is Status.FAILED  # mirrored, as one by one


def test_attempt_round_trip(any_store: StoreProtocol) -> None:
    s = any_store
    s.run_started(make_run())
    s.attempt_started(
        "r1", AttemptStart("A", 1, "2026-11-21T06:00:01.000000Z", "fp-a", "/logs/A.1.log")
    )
    opened = s.attempts("r1", "A")[0]
    assert opened.is_open
    assert (opened.fingerprint, opened.log_path, opened.outcome) == ("fp-a", "/logs/A.1.log", None)
    s.attempt_process("r1", AttemptProcess("A", 1, pid=321, pgid=321, start_time=99999))
    end = AttemptEnd(
        "A",
        1,
        Outcome.FAILED,
        "2026-11-21T06:00:09.000000Z",
        exit_code=None,
        signal=9,
        reason="killed",
        tail=["line 1", "ünïcode"],
        usage={"tokens": 12, "cost_usd": 0.5},
    )
    s.attempt_finished("r1", end)
    s.attempt_started(
        "r1", AttemptStart("A", 2, "2026-11-21T06:00:10.000000Z", "fp-a", "/logs/A.2.log")
    )
    s.attempt_started(
        "r1", AttemptStart("B", 1, "2026-11-21T06:00:11.000000Z", "fp-b", "/logs/B.1.log")
    )
    done = s.attempts("r1", "A")[0]
    assert not done.is_open
    assert (done.pid, done.pgid, done.proc_start_time) == (321, 321, 99999)
    assert (done.outcome, done.exit_code, done.signal, done.reason) == (
        Outcome.FAILED,
        None,
        9,
        "killed",
    )
    assert done.tail == ("line 1", "ünïcode")
    assert done.usage == {"tokens": 12, "cost_usd": 0.5}
    assert [(a.key, a.n) for a in s.attempts("r1")] == [("A", 1), ("A", 2), ("B", 1)]
    task = {t.key: t for t in s.tasks("r1")}
    assert (task["A"].status, task["A"].attempts, task["A"].fingerprint) == (
        Status.RUNNING,
        2,
        "fp-a",
    )
    kinds = [(e.kind, e.key, e.data.get("n")) for e in s.events("r1")]
    assert kinds == [
        ("run_started", None, None),
        ("attempt_started", "A", 1),
        ("attempt_process", "A", 1),
        ("attempt_finished", "A", 1),
        ("attempt_started", "A", 2),
        ("attempt_started", "B", 1),
    ]


def test_task_updated_keeps_fields_it_is_not_given(any_store: StoreProtocol) -> None:
    s = any_store
    s.run_started(make_run())
    s.task_updated(
        "r1", TaskUpdate(key="A", status=Status.PENDING, at="2026-11-21T06:00:00.000000Z")
    )
    ready = TaskUpdate(
        key="A",
        status=Status.READY,
        reason="needs met",
        fingerprint="fp",
        branch="planrun/demo/A",
        base_commit="c0ffee",
        data={"priority": 3},
    )
    s.task_updated("r1", ready)
    failed = TaskUpdate(
        key="A", status=Status.FAILED, reason="conflict", attempts=2, diffstat="1 file"
    )
    s.task_updated("r1", failed)
    (task,) = s.tasks("r1")
    assert (task.status, task.reason, task.attempts) == (Status.FAILED, "conflict", 2)
    assert (task.fingerprint, task.branch, task.base_commit, task.diffstat) == (
        "fp",
        "planrun/demo/A",
        "c0ffee",
        "1 file",
    )
    assert task.landed_commit is None
    assert task.data == {"priority": 3}
    statuses = [e.data["status"] for e in s.events("r1") if e.kind == "task_status"]
    assert statuses == ["pending", "ready", "failed"]


def test_task_done_writes_task_state_and_event_together(any_store: StoreProtocol) -> None:
    s = any_store
    s.run_started(make_run())
    s.attempt_started("r1", AttemptStart("A", 1, utc_now(), "fp-a", "/logs/A.1.log"))
    s.attempt_finished("r1", AttemptEnd("A", 1, Outcome.SUCCEEDED, utc_now(), exit_code=0))
    done = TaskDone(
        plan_name="demo",
        key="A",
        fingerprint="fp-a",
        branch="planrun/demo/A",
        landed_commit="abc123",
        diffstat="+3",
    )
    seq = s.task_done("r1", done)
    (task,) = s.tasks("r1")
    assert (task.status, task.landed_commit, task.branch, task.diffstat) == (
        Status.DONE,
        "abc123",
        "planrun/demo/A",
        "+3",
    )
    state = s.task_states("demo")["A"]
    assert (state.status, state.fingerprint, state.done_run_id, state.attempts_total) == (
        Status.DONE,
        "fp-a",
        "r1",
        0,
    )
    last = s.events("r1")[-1]
    assert (last.seq, last.kind, last.key, last.data["landed_commit"]) == (
        seq,
        "task_done",
        "A",
        "abc123",
    )


def test_attempts_are_counted_when_they_start_across_runs(any_store: StoreProtocol) -> None:
    s = any_store
    for run in ("r1", "r2", "r3"):  # each run dies during attempt 1 (poison pill)
        s.run_started(make_run(run))
        s.attempt_started(run, AttemptStart("P", 1, utc_now(), "fp-1", f"/logs/{run}.log"))
    assert s.task_states("demo")["P"].attempts_total == 3
    assert s.task_states("demo")["P"].status == Status.RUNNING
    s.run_started(make_run("r4"))
    s.attempt_started(
        "r4", AttemptStart("P", 1, utc_now(), "fp-2", "/logs/r4.log")
    )  # definition changed
    assert s.task_states("demo")["P"].attempts_total == 1
    s.attempts_reset("r4", ["P", "unknown-key"])
    assert s.task_states("demo")["P"].attempts_total == 0
    assert s.events("r4")[-1].data == {"keys": ["P", "unknown-key"]}
    s.run_started(make_run("o1", "other"))
    s.attempt_started("o1", AttemptStart("P", 1, utc_now(), "fp-2", "/logs/o1.log"))
    assert s.task_states("demo")["P"].attempts_total == 0  # plans do not share state
    assert s.task_states("other")["P"].attempts_total == 1


def test_only_statuses_about_the_work_reach_task_state(any_store: StoreProtocol) -> None:
    s = any_store
    s.run_started(make_run())
    no_row = TaskUpdate(key="A", status=Status.FAILED, reason="no row yet")
    s.task_updated("r1", no_row)  # nothing started: nothing mirrored
    assert s.task_states("demo") == {}
    s.attempt_started("r1", AttemptStart("A", 1, utc_now(), "fp", "/l"))
    for status, expected in [
        (Status.RETRYING, Status.RETRYING),
        (Status.SKIPPED, Status.RETRYING),  # this run's scheduling, not the task's work
        (Status.FAILED, Status.FAILED),
        (Status.DONE, Status.FAILED),  # only task_done makes a task durably done
    ]:
        s.task_updated("r1", TaskUpdate(key="A", status=status))
        assert s.task_states("demo")["A"].status == expected


def test_open_attempts_and_attempt_interrupted(any_store: StoreProtocol) -> None:
    s = any_store
    s.run_started(make_run("r1"))
    s.attempt_started("r1", AttemptStart("C", 1, utc_now(), "fp", "/l"))
    s.attempt_process("r1", AttemptProcess("C", 1, 100, 100, 5000))
    s.attempt_started("r1", AttemptStart("D", 1, utc_now(), "fp", "/l"))
    s.attempt_finished("r1", AttemptEnd("D", 1, Outcome.SUCCEEDED, utc_now(), exit_code=0))
    s.run_started(make_run("o1", "other"))
    s.attempt_started("o1", AttemptStart("C", 1, utc_now(), "fp", "/l"))
    (leftover,) = s.open_attempts("demo")
    assert (leftover.run_id, leftover.key, leftover.n, leftover.pgid) == ("r1", "C", 1, 100)
    assert leftover.proc_start_time == 5000
    s.attempt_interrupted(leftover, utc_now())
    assert s.open_attempts("demo") == []
    closed = s.attempts("r1", "C")[0]
    assert (closed.outcome, closed.reason) == (
        Outcome.INTERRUPTED,
        "planrun exited during the attempt",
    )
    assert s.events("r1")[-1].kind == "attempt_interrupted"
    with pytest.raises(InternalError, match="no open attempt"):
        s.attempt_interrupted(leftover, utc_now())
    assert len(s.open_attempts("other")) == 1


def test_events_are_sequenced_and_can_be_tailed(any_store: StoreProtocol) -> None:
    s = any_store
    s.run_started(make_run("r1"))
    s.run_started(make_run("r2"))
    a = s.happened("r1", "output", "A", {"line": "hello", "n": 1})
    b = s.happened("r2", "hook_ran", None, None, at="2026-11-21T06:00:00.000000Z")
    c = s.happened("r1", "retry_scheduled", "A", {"delay": 5.0})
    assert a < b < c
    tail = s.events("r1", after_seq=a)
    assert [(e.seq, e.kind, e.data) for e in tail] == [(c, "retry_scheduled", {"delay": 5.0})]
    (hook,) = [e for e in s.events("r2") if e.kind == "hook_ran"]
    assert (hook.key, hook.at, hook.data) == (None, "2026-11-21T06:00:00.000000Z", {})


def test_a_plan_s_events_of_some_kinds_over_all_its_runs(any_store: StoreProtocol) -> None:
    s = any_store
    s.run_started(make_run("r1"))
    s.run_started(make_run("r2"))
    s.run_started(make_run("x1", plan="other"))
    s.happened("r1", "tracker_intent", "A", {"n": 1})
    s.happened("x1", "tracker_intent", "A", {"n": 9})  # another plan's
    s.happened("r2", "output", "A", {"line": "not wanted"})
    s.happened("r2", "tracker_delivered", None, {"n": 2})
    s.happened("r1", "tracker_intent", "B", {"n": 3})  # r1 began first: listed first
    found = s.plan_events("demo", ("tracker_intent", "tracker_delivered"))
    assert [(e.run_id, e.kind, e.data["n"]) for e in found] == [
        ("r1", "tracker_intent", 1),
        ("r1", "tracker_intent", 3),
        ("r2", "tracker_delivered", 2),
    ]
    assert s.plan_events("demo", ()) == []


def test_misuse_is_an_internal_error_and_writes_nothing(any_store: StoreProtocol) -> None:
    s = any_store
    s.run_started(make_run())
    s.attempt_started("r1", AttemptStart("A", 1, utc_now(), "fp", "/l"))
    before = s.events("r1")
    bad_calls: list[Callable[[], object]] = [
        lambda: s.attempt_started("r1", AttemptStart("A", 1, utc_now(), "fp", "/l")),  # duplicate
        lambda: s.attempt_process("r1", AttemptProcess("A", 7, 1, 1, 1)),
        lambda: s.attempt_finished("r1", AttemptEnd("Z", 1, Outcome.FAILED, utc_now())),
        lambda: s.happened("no-such-run", "output"),
        lambda: s.task_done("r1", TaskDone(plan_name="other-plan", key="A", fingerprint="fp")),
        lambda: s.run_ended("no-such-run", "failed", utc_now()),
        lambda: s.run_started(make_run()),  # duplicate run id
    ]
    for call in bad_calls:
        with pytest.raises(InternalError):
            call()
    assert s.events("r1") == before
    assert s.attempts("r1")[0].is_open


def test_a_closed_store_refuses_use(store_location: Path | str) -> None:
    s = open_store(store_location)
    s.close()
    s.close()  # idempotent
    with pytest.raises(InternalError, match="after close"):
        s.last_run()


def test_threads_can_share_a_store(any_store: StoreProtocol) -> None:
    store = any_store
    store.run_started(make_run())

    def write(worker: int) -> None:
        for i in range(20):
            store.happened("r1", "output", f"T{worker}", {"i": i})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [e.seq for e in store.events("r1")]
    assert len(seqs) == 81
    assert seqs == sorted(set(seqs))


# ---------------------------------------------------------------- readers while a writer runs


def test_read_only_never_creates_a_store(store_location: Path | str) -> None:
    for _ in range(2):  # the first refusal created nothing that the second would open
        with pytest.raises(StoreError, match="no state store here yet"):
            open_store(store_location, readonly=True)
    if isinstance(store_location, Path):
        assert not store_location.exists()


def test_a_reader_sees_committed_data_while_the_writer_is_mid_transaction(
    store_location: Path | str,
) -> None:
    with closing(open_store(store_location)) as store:
        store.run_started(make_run())
        with closing(open_store(store_location, readonly=True)) as reader:
            assert reader.run("r1") is not None
            with store.batch():  # hold a write transaction open
                store.happened("r1", "uncommitted")
                kinds = [e.kind for e in reader.events("r1")]  # not blocked, sees only commits
                assert kinds == ["run_started"]
            assert [e.kind for e in reader.events("r1")] == ["run_started", "uncommitted"]
            with pytest.raises(InternalError, match="read-only"):
                reader.happened("r1", "output")


_READ_IN_CHILD = """
import json, sys
from planrun.state.open import open_store
s = open_store(sys.argv[1], readonly=True)
run = s.last_run("demo")
print(json.dumps({"run": run.id, "status": run.status, "events": len(s.events(run.id))}))
"""


def test_another_process_reads_while_the_writer_is_open(store_location: Path | str) -> None:
    store = open_store(store_location)
    store.run_started(make_run())
    store.attempt_started("r1", AttemptStart("A", 1, utc_now(), "fp", "/l"))
    out = subprocess.run(
        [sys.executable, "-c", _READ_IN_CHILD, str(store_location)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(out.stdout) == {"run": "r1", "status": "running", "events": 2}
    store.happened("r1", "output", "A", {"line": "still writing"})  # writer unaffected
    store.close()


# ---------------------------------------------------------------- refusing what is not ours


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE songs (title TEXT)")
    con.commit()
    con.close()


def _other_application_id(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA application_id = 305419896")
    con.execute("CREATE TABLE runs (id TEXT)")
    con.commit()
    con.close()


def _newer_schema(path: Path) -> None:
    Store.open(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()


def _corrupt_pages(path: Path) -> None:
    with Store.open(path) as s:
        s.run_started(make_run())
        for i in range(200):
            s.happened("r1", "output", "A", {"line": "x" * 100, "i": i})
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[page:] = os.urandom(len(data) - page)  # keep the header page, trash the rest
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_random_bytes, "not an SQLite database"),
        (_empty_file, "is empty"),
        (_foreign_sqlite, "another application"),
        (_other_application_id, "application_id 0x12345678"),
        (_newer_schema, "newer planrun"),
        (_corrupt_pages, "corrupt"),
    ],
)
@pytest.mark.parametrize("readonly", [False, True])
def test_a_store_that_is_not_ours_is_refused_and_left_untouched(
    tmp_path: Path, make: Callable[[Path], None], problem: str, readonly: bool
) -> None:
    path = tmp_path / "state.db"
    make(path)
    before = sha256(path)
    with pytest.raises(StoreError) as caught, Store.open(path, readonly=readonly) as s:
        s.tasks("r1")  # a read-only open skips quick_check; reading must still refuse
    assert problem in caught.value.problem
    assert caught.value.path == str(path)
    assert "planrun never deletes it" in caught.value.advice
    assert sha256(path) == before
    assert path.exists()


def test_a_folder_in_place_of_the_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(StoreError, match="is a folder"):
        Store.open(tmp_path / "state.db")


# ---------------------------------------------------------------- the fault seam


_WRITES_IN_CHILD = """
import sys
from planrun.core.outcomes import Outcome
from planrun.state.records import AttemptEnd, AttemptProcess, AttemptStart, TaskDone
from planrun.state.store import RunRow
from planrun.state.open import open_store
s = open_store(sys.argv[1])
s.run_started(RunRow("r1", "demo", "/p.yaml", "00", "0.1", "2026-11-21T06:00:00Z", "running"))
s.attempt_started("r1", AttemptStart("A", 1, "2026-11-21T06:00:01Z", "fp", "/logs/A.1.log"))
s.attempt_process("r1", AttemptProcess("A", 1, 111, 111, 222))
s.attempt_finished("r1", AttemptEnd("A", 1, Outcome.SUCCEEDED, "2026-11-21T06:00:02Z", exit_code=0))
s.task_done("r1", TaskDone(plan_name="demo", key="A", fingerprint="fp"))
print("survived", flush=True)
"""


def test_the_fault_seam_kills_right_after_the_kth_commit(store_location: Path | str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WRITES_IN_CHILD, str(store_location)],
        env=child_env(**{FAULT_ENV: "3"}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "survived" not in proc.stdout
    with closing(open_store(store_location)) as s:  # opens fine (SQLite: quick_check passes)
        kinds = [(e.seq, e.kind) for e in s.events("r1")]
        assert kinds == [(1, "run_started"), (2, "attempt_started"), (3, "attempt_process")]
        (attempt,) = s.open_attempts("demo")
        assert (attempt.pid, attempt.pgid, attempt.proc_start_time) == (111, 111, 222)
        state = s.task_states("demo")["A"]
        assert (state.status, state.attempts_total) == (Status.RUNNING, 1)


def test_without_the_seam_the_same_writes_complete(store_location: Path | str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WRITES_IN_CHILD, str(store_location)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert proc.stdout.strip() == "survived"
    with closing(open_store(store_location, readonly=True)) as s:
        assert len(s.events("r1")) == 5
        assert s.task_states("demo")["A"].status == Status.DONE


@pytest.mark.parametrize("value", ["zero", "0", "-2"])
def test_a_bad_fault_seam_value_is_a_usage_error(
    store_location: Path | str, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(FAULT_ENV, value)
    with pytest.raises(UsageError, match=FAULT_ENV):
        open_store(store_location)


def test_the_memory_store_ignores_the_fault_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "1")
    with MemoryStore() as s:
        s.run_started(make_run())
        s.happened("r1", "output")
        assert len(s.events("r1")) == 2


def test_a_batch_commits_all_of_its_writes_or_none(store_location: Path | str) -> None:
    with closing(open_store(store_location)) as store:
        store.run_started(make_run())
        with store.batch():
            store.happened("r1", "one")
            store.happened("r1", "two")
        assert [e.kind for e in store.events("r1")][-2:] == ["one", "two"]

        def fail_half_way() -> None:
            with store.batch():
                store.happened("r1", "three")
                raise RuntimeError("the writer failed half way")

        with pytest.raises(RuntimeError):
            fail_half_way()
        assert "three" not in [e.kind for e in store.events("r1")]
    with closing(open_store(store_location, readonly=True)) as reader:
        assert [e.kind for e in reader.events("r1")][-2:] == ["one", "two"]


def test_a_version_1_store_is_migrated_by_a_writer_and_read_as_it_is(db_path: Path) -> None:
    """Schema 2 added runs.journal_seq: a reader of a version 1 store needs nothing new;
    the first writer adds the column, keeping every row."""
    with Store.open(db_path) as s:
        s.run_started(make_run())
    con = sqlite3.connect(db_path)
    con.execute("ALTER TABLE runs DROP COLUMN journal_seq")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    before = sha256(db_path)
    with Store.open(db_path, readonly=True) as reader:
        assert [r.id for r in reader.runs("demo")] == ["r1"]
    assert sha256(db_path) == before
    with Store.open(db_path) as writer:
        assert writer.journal_seq("r1") == 0
        writer.journal_applied("r1", 7)
        assert writer.journal_seq("r1") == 7
        assert [r.id for r in writer.runs("demo")] == ["r1"]
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    con.close()


def test_overview_is_the_run_as_it_stands(any_store: StoreProtocol) -> None:
    s = any_store
    run = make_run()
    s.run_started(run)
    planned = [{"key": "A", "step": "run"}, {"key": "G", "step": "run"}]
    s.happened("r1", RUN_PLAN_EVENT, None, {"tasks": planned})
    s.task_updated("r1", TaskUpdate(key="G", status=Status.PENDING, data={"kind": "group"}))
    s.attempt_started("r1", AttemptStart("A", 1, "2026-11-21T06:00:01.000000Z", "fp", "/l"))
    s.attempt_process("r1", AttemptProcess("A", 1, pid=77, pgid=77, start_time=2**40))
    end = AttemptEnd("A", 1, Outcome.FAILED, utc_now(), usage={"tokens": 3})
    s.attempt_finished("r1", end)
    s.attempt_started("r1", AttemptStart("A", 2, "2026-11-21T06:00:02.000000Z", "fp", "/l"))
    s.run_ended("r1", "failed", "2026-11-21T06:09:00.000000Z")
    seen = s.overview(run)  # the run as it began: the overview reads its end
    assert (seen.run.status, seen.run.ended_at) == ("failed", "2026-11-21T06:09:00.000000Z")
    assert [(t.key, t.status, t.attempts, t.kind) for t in seen.tasks] == [
        ("A", "running", 2, "work"),
        ("G", "pending", 0, "group"),
    ]
    briefs = [(a.key, a.n, a.outcome, a.pid, a.proc_start_time, a.usage) for a in seen.attempts]
    assert briefs == [
        ("A", 1, "failed", 77, 2**40, {"tokens": 3}),
        ("A", 2, None, None, None, None),
    ]
    assert seen.planned == planned


def test_what_an_agent_printed_comes_back_as_it_was(any_store: StoreProtocol) -> None:
    """NUL, escapes and non-ASCII in output, usage and event data (JSON is kept as text:
    PostgreSQL's jsonb would refuse the NUL)."""
    s = any_store
    s.run_started(make_run())
    odd = ["nul \x00 here", "tab\tbell\x07", "ünï 😀", '{"not": json', "\\u0000"]
    s.attempt_started("r1", AttemptStart("A", 1, utc_now(), "fp", "/l"))
    s.attempt_finished("r1", AttemptEnd("A", 1, Outcome.SUCCEEDED, utc_now(), tail=odd))
    s.happened("r1", "output", "A", {"lines": odd, "big": 2**62, "x": 0.1})
    assert s.attempts("r1", "A")[0].tail == tuple(odd)
    assert s.events("r1")[-1].data == {"lines": odd, "big": 2**62, "x": 0.1}


def test_journal_seq_of_an_unknown_run(any_store: StoreProtocol) -> None:
    assert any_store.journal_seq("nope") == 0
    with pytest.raises(InternalError, match="unknown run"):
        any_store.journal_applied("nope", 1)

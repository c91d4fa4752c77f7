"""The PostgreSQL store's own behaviour (the protocol's is in test_store.py): opening a
database by URL, refusing one that is not planrun's, concurrent writers and openers, a
lost connection, and what happens without psycopg. Against the session's real server
(tests/pg.py); the tests that need none say so."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from planrun.errors import InternalError, StoreError
from planrun.state.open import open_store, redacted
from planrun.state.records import AttemptStart
from planrun.state.sqlite import Store
from planrun.state.store import RunRow, StoreProtocol, utc_now
from tests import pg

psycopg = pytest.importorskip("psycopg")

postgres = pytest.mark.postgres


def make_run(run_id: str = "r1") -> RunRow:
    return RunRow(run_id, "demo", "/plans/demo.yaml", "ab" * 32, "0.1.0", utc_now(), "running")


def sql(url: str, statement: str) -> list[tuple[object, ...]]:
    """One statement on its own connection (autocommit), as another program would."""
    with psycopg.connect(url, autocommit=True) as con:
        cur = con.execute(statement)
        return cur.fetchall() if cur.description else []


def tables(url: str) -> list[str]:
    rows = sql(
        url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    return [str(r[0]) for r in rows]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.01)  # polling a condition with a deadline, not a bare sleep


# ---------------------------------------------------------------- opening


@postgres
def test_an_empty_database_gets_planruns_tables_and_mark(pg_url: str) -> None:
    open_store(pg_url).close()
    assert tables(pg_url) == [
        "attempts",
        "events",
        "planrun_store",
        "runs",
        "task_state",
        "tasks",
    ]
    assert sql(pg_url, "SELECT application, schema_version FROM planrun_store") == [("planrun", 1)]
    open_store(pg_url).close()  # a second open finds them and changes nothing
    assert len(sql(pg_url, "SELECT * FROM planrun_store")) == 1


def _songs(url: str) -> None:
    sql(url, "CREATE TABLE songs (title TEXT)")


def _runs_of_another_application(url: str) -> None:
    sql(url, "CREATE TABLE runs (id TEXT)")


def _another_mark(url: str) -> None:
    sql(url, "CREATE TABLE planrun_store (application TEXT, schema_version INT)")
    sql(url, "INSERT INTO planrun_store VALUES ('someone-else', 1)")


def _newer_schema(url: str) -> None:
    open_store(url).close()
    sql(url, "UPDATE planrun_store SET schema_version = 99")


@postgres
@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_songs, "another application (it has tables songs"),
        (_runs_of_another_application, "another application (it has tables runs"),
        (_another_mark, "planrun_store table that is not planrun's"),
        (_newer_schema, "newer planrun (schema 99"),
    ],
)
@pytest.mark.parametrize("readonly", [False, True])
def test_a_database_that_is_not_ours_is_refused_and_left_untouched(
    pg_url: str, make: Callable[[str], None], problem: str, readonly: bool
) -> None:
    make(pg_url)
    before = {t: sql(pg_url, f"SELECT * FROM {t}") for t in tables(pg_url)}
    with pytest.raises(StoreError) as caught:
        open_store(pg_url, readonly=readonly)
    assert problem in caught.value.problem
    assert "database of its own" in caught.value.advice
    assert {t: sql(pg_url, f"SELECT * FROM {t}") for t in tables(pg_url)} == before


@postgres
def test_a_user_who_may_not_create_tables_is_told_how(pg_url: str, pg_server: pg.Server) -> None:
    """PostgreSQL 15 lets only a database's owner create tables in its public schema."""
    sql(pg_url, "DROP ROLE IF EXISTS visitor")
    sql(pg_url, "CREATE ROLE visitor LOGIN")
    try:
        visitor = pg_url.replace(f"//{pg.USER}@", "//visitor@")
        with pytest.raises(StoreError) as caught:
            open_store(visitor)
        assert "permission denied" in caught.value.problem
        assert "GRANT CREATE ON SCHEMA public" in caught.value.advice
        assert tables(pg_url) == []
    finally:
        pg_server.drop_database(pg_url)  # the role owns nothing, but may be connected
        sql(pg_server.url(), "DROP ROLE visitor")


def test_an_unreachable_server_is_named_without_its_password() -> None:
    url = f"postgresql://planrun:s3cret@127.0.0.1:{pg.free_port()}/planrun?connect_timeout=5"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    shown = str(caught.value)
    assert "cannot connect" in caught.value.problem
    assert "s3cret" not in shown
    assert caught.value.path == url.replace("s3cret", "***")


def test_a_url_that_is_not_one_is_refused() -> None:
    with pytest.raises(StoreError, match=r"not a PostgreSQL URL.*frobnicate"):
        open_store("postgresql://planrun@127.0.0.1/db?frobnicate=1")


def test_redacted_hides_only_the_password() -> None:
    assert redacted("postgresql://u:p%40ss@db.example:5432/x?sslmode=require") == (
        "postgresql://u:***@db.example:5432/x?sslmode=require"
    )
    assert redacted("postgresql://u@db/x") == "postgresql://u@db/x"


def test_a_state_folder_is_the_sqlite_store_in_it(tmp_path: Path) -> None:
    with closing(open_store(tmp_path / "state")) as store:
        assert isinstance(store, Store)
    assert (tmp_path / "state" / "state.db").is_file()


_WITHOUT_PSYCOPG = """
import sys
sys.modules["psycopg"] = None  # importing it now fails, as where it is not installed
from planrun.errors import StoreError
from planrun.state.open import open_store
try:
    open_store("postgresql://planrun:s3cret@db.example/planrun")
except StoreError as e:
    print(e.path, "|", e.problem, "|", e.advice)
"""


def test_without_psycopg_the_error_says_how_to_install_it() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PSYCOPG],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    where, problem, advice = out.strip().split(" | ")
    assert where == "postgresql://planrun:***@db.example/planrun"
    assert "needs the PostgreSQL driver psycopg" in problem
    assert advice == "install it with planrun: pip install 'planrun[postgres]'"


@postgres
def test_planruns_opening_an_empty_database_at_once_create_its_tables_once(
    pg_url: str,
) -> None:
    start = threading.Barrier(4)
    opened: list[StoreProtocol] = []
    failures: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            opened.append(open_store(pg_url))
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in opened:
        store.close()
    assert failures == []
    assert len(opened) == 4
    assert len(sql(pg_url, "SELECT * FROM planrun_store")) == 1


# ---------------------------------------------------------------- writing


@pytest.fixture
def two_writers(pg_url: str) -> Iterator[tuple[StoreProtocol, StoreProtocol]]:
    first, second = open_store(pg_url), open_store(pg_url)
    yield first, second
    first.close()
    second.close()


def _waiting_for_a_lock(url: str) -> bool:
    rows = sql(
        url,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    return rows[0][0] == 1


@postgres
def test_within_a_run_seq_order_is_commit_order(
    pg_url: str, two_writers: tuple[StoreProtocol, StoreProtocol]
) -> None:
    """A second writer's event waits for the first's commit, so that a reader tailing
    the run (events after the last seq seen) never skips one that commits late."""
    first, second = two_writers
    first.run_started(make_run())
    late: list[int] = []
    with first.batch(), closing(open_store(pg_url, readonly=True)) as reader:
        held = first.happened("r1", "held")  # its seq is taken, not committed
        writer = threading.Thread(target=lambda: late.append(second.happened("r1", "later")))
        writer.start()
        wait_for(lambda: _waiting_for_a_lock(pg_url), "the second writer waits")
        assert [e.kind for e in reader.events("r1")] == ["run_started"]
    writer.join()
    assert late[0] > held
    assert [e.kind for e in second.events("r1")] == ["run_started", "held", "later"]


@postgres
def test_writers_of_one_run_on_two_connections_never_deadlock(
    two_writers: tuple[StoreProtocol, StoreProtocol],
) -> None:
    """Each write's rows hold key-share locks on the run's row (foreign keys) before its
    event locks that row: the event's lock must not conflict with them."""
    first, second = two_writers
    first.run_started(make_run())
    failures: list[BaseException] = []

    def attempts(store: StoreProtocol, prefix: str) -> None:
        try:
            for i in range(40):
                store.attempt_started("r1", AttemptStart(f"{prefix}{i}", 1, utc_now(), "f", "/l"))
        except BaseException as e:
            failures.append(e)

    threads = [
        threading.Thread(target=attempts, args=(s, p)) for s, p in [(first, "a"), (second, "b")]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    seqs = [e.seq for e in first.events("r1")]
    assert len(seqs) == 81
    assert seqs == sorted(set(seqs))


@postgres
def test_a_lost_connection_fails_the_write_as_a_store_error(pg_url: str) -> None:
    with closing(open_store(pg_url)) as store:
        store.run_started(make_run())
        sql(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'planrun'",
        )
        with pytest.raises(StoreError) as caught:
            store.happened("r1", "after the server dropped us")
        assert "journal write failed" in caught.value.problem
        assert "reachable" in caught.value.advice
        with pytest.raises(StoreError, match="cannot read it"):
            store.events("r1")
    with closing(open_store(pg_url)) as again:
        assert [e.kind for e in again.events("r1")] == ["run_started"]


@postgres
def test_a_read_only_store_cannot_write_even_by_mistake(pg_url: str) -> None:
    with closing(open_store(pg_url)) as store:
        store.run_started(make_run())
    with closing(open_store(pg_url, readonly=True)) as reader:
        with pytest.raises(InternalError, match="read-only"):
            reader.run_ended("r1", "failed", utc_now())
        assert sql(pg_url, "SELECT count(*) FROM runs") == [(1,)]

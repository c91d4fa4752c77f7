"""StoreJournal's write-behind: order kept, attempt starts durable, failures never lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun.errors import InternalError
from planrun.journal import StoreJournal
from planrun.outcomes import Status
from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo
from planrun.store.base import RunRow, utc_now
from planrun.store.memory import MemoryStore

FPS = {"A": ("fa" * 32, {"run": "1" * 16}), "B": ("fb" * 32, {"run": "2" * 16})}


def journal(store: MemoryStore, **kwargs: bool) -> StoreJournal:
    store.begin_run(RunRow("r1", "p", "/p.yaml", "00", "0", utc_now(), "running"))
    return StoreJournal(store, "r1", "p", FPS, up_to_date={"B"}, **kwargs)


def one_task(j: StoreJournal, key: str) -> None:
    j.attempt_started(key, 1, Path(f"/logs/{key}"))
    j.attempt_process(key, 1, ProcessInfo(pid=10, pgid=10, start_time=5))
    attempt = AttemptReport(number=1, started_at=utc_now(), outcome="succeeded")
    j.attempt_finished(key, attempt)
    j.task_finished(key, TaskReport(key=key, title=key, status="done"))


@pytest.mark.parametrize("write_behind", [True, False])
def test_writes_land_in_call_order(write_behind: bool) -> None:
    store = MemoryStore()
    j = journal(store, write_behind=write_behind)
    one_task(j, "A")
    j.task_finished("B", TaskReport(key="B", title="B", status="done", reason="up to date"))
    j.close()
    kinds = [(e.kind, e.key) for e in store.events("r1")]
    assert kinds == [
        ("run_started", None),
        ("attempt_started", "A"),
        ("attempt_process", "A"),
        ("attempt_finished", "A"),
        ("task_done", "A"),
        ("task_status", "B"),  # up to date: recorded in the run, not done again
    ]
    states = store.task_states("p")
    assert states["A"].status is Status.DONE
    assert "B" not in states
    assert store.tasks("r1")[0].data["fields"] == {"run": "1" * 16}


def test_an_attempt_start_waits_for_everything_before_it() -> None:
    store = MemoryStore()
    j = journal(store)
    one_task(j, "A")
    j.attempt_started("C", 1, Path("/logs/C"))  # returns once durable, with all before it
    assert [e.kind for e in store.events("r1")][-2:] == ["task_done", "attempt_started"]
    j.close()


def test_a_failed_write_stops_the_journal_and_is_raised() -> None:
    store = MemoryStore()
    j = journal(store)
    j.attempt_started("A", 1, Path("/logs/A"))
    store.close()  # every write fails from now on
    j.attempt_process("A", 1, ProcessInfo(pid=10, pgid=10, start_time=5))  # queued
    with pytest.raises(InternalError):
        j.attempt_started("B", 1, Path("/logs/B"))
    with pytest.raises(InternalError):  # an attempt never starts unrecorded
        j.attempt_started("C", 1, Path("/logs/C"))
    j.close()  # already reported: closing does not raise it again

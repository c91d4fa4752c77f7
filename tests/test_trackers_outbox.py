"""The outbox on its own, under trio, against the GitHub stand-in and a real SQLite store:
retries with backoff while a run lasts, coalescing, and what a later run finds pending."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from planrun.core.events import AttemptStarted, TaskFinished
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from planrun.state.sqlite import Store
from planrun.state.store import RunRow, utc_now
from planrun.trackers.deliver import Clients
from planrun.trackers.outbox import DELIVERED_EVENT, INTENT_EVENT, Outbox, pending_intents
from tests.github_standin import Standin, serve

TOKEN_VAR = "PLANRUN_TEST_GH_TOKEN"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    standin = Standin()
    standin.add_issue(7, "Seven", "body", labels=["agent"])
    monkeypatch.setenv(TOKEN_VAR, standin.token)
    with serve(standin):
        yield standin
    assert standin.problems == []


def compiled(tmp_path: Path, url: str) -> CompiledPlan:
    path = tmp_path / "plan.yaml"
    path.write_text(
        f"""\
version: 1
settings: {{secrets: [{TOKEN_VAR}]}}
trackers:
  gh: {{kind: github, repo: acme/api, url: "{url}", token: {TOKEN_VAR}, status: {{}}}}
tasks:
  T:
    for_each: {{tracker: gh}}
    run: ["true"]
""",
        encoding="utf-8",
    )
    return load_plan(path)


def outbox(plan: CompiledPlan, store: Store, run_id: str) -> Outbox:
    store.run_started(RunRow(run_id, plan.name, str(plan.path), "00", "0", utc_now(), "running"))
    clients = Clients(plan.trackers, {TOKEN_VAR: "ghp_standin_token_0123456789"})
    return Outbox(plan, store, run_id, clients, backoff=(0.05, 0.2))


async def delivered(box: Outbox) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(box.deliver)
            await box.drained()
            box.stop()


async def test_failures_are_retried_with_backoff_and_updates_coalesce(
    tmp_path: Path, github: Standin
) -> None:
    plan = compiled(tmp_path, github.url)
    with Store.open(tmp_path / "state.db") as store:
        box = outbox(plan, store, "r1")
        github.fail_writes = 3
        box.event(AttemptStarted(key="T[7]", attempt=1, log_path="x"))
        box.event(TaskFinished(key="T[7]", status="failed", reason="exit code 1", task_kind="work"))
        await delivered(box)
        box.clients.close()
        kinds = [e.kind for e in store.events("r1") if e.kind.startswith("tracker")]
        assert kinds == [INTENT_EVENT, INTENT_EVENT, DELIVERED_EVENT]
        assert pending_intents(store, plan.name) == {}
    assert github.labels_of(7) == ["agent", "planrun:failed"]
    [comment] = github.comments.values()
    assert "is **failed**" in comment["body"]


async def test_a_later_run_finds_what_an_earlier_one_left(tmp_path: Path, github: Standin) -> None:
    plan = compiled(tmp_path, github.url)
    with Store.open(tmp_path / "state.db") as store:
        first = outbox(plan, store, "r1")
        first.event(AttemptStarted(key="T[7]", attempt=1, log_path="x"))
        first.event(TaskFinished(key="T[7]", status="done", reason="", task_kind="work"))
        first.event(TaskFinished(key="T", status="done", reason="", task_kind="group"))
        first.clients.close()  # never delivered: planrun died
        second = outbox(plan, store, "r2")
        [waiting] = second.pending.values()
        assert waiting.intent.moment == "done"
        assert len(waiting.ids) == 2
        await delivered(second)
        second.clients.close()
        assert pending_intents(store, plan.name) == {}
    assert github.labels_of(7) == ["agent", "planrun:done"]
    assert len(github.comments) == 1


async def test_a_rate_limit_is_waited_out_within_the_run(tmp_path: Path, github: Standin) -> None:
    plan = compiled(tmp_path, github.url)
    with Store.open(tmp_path / "state.db") as store:
        box = outbox(plan, store, "r1")
        github.rate_limited, github.rate_limit_status = 1, 429  # Retry-After: 1
        box.event(AttemptStarted(key="T[7]", attempt=1, log_path="x"))
        started = trio.current_time()
        await delivered(box)
        box.clients.close()
        assert trio.current_time() - started >= 0.9  # waited for the reset, not 0.05 s
    assert github.labels_of(7) == ["agent", "planrun:running"]


async def test_an_answer_of_odd_shape_is_retried_not_fatal(tmp_path: Path, github: Standin) -> None:
    plan = compiled(tmp_path, github.url)
    with Store.open(tmp_path / "state.db") as store:
        box = outbox(plan, store, "r1")
        github.odd_answers = 2
        box.event(AttemptStarted(key="T[7]", attempt=1, log_path="x"))
        await delivered(box)
        box.clients.close()
    assert github.labels_of(7) == ["agent", "planrun:running"]

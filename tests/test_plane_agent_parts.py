"""The Plane agent's parts in-process: the heartbeat under trio's autojump clock (a task of
eleven minutes, Plane's five-minute stale rule never met), bot tokens taken again before
they expire, an activity cut short by a crash not sent twice, the plan's checks, and
plane-sdk's activity types and signals still the ones planrun knows."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
import trio
from plane.models import agent_runs as am

from planrun.agents.activities import bounded
from planrun.agents.api import AgentApi
from planrun.agents.ledger import Conversation, Outgoing
from planrun.agents.outbox import ActivityOutbox, Book
from planrun.cli import main
from planrun.errors import PlanError
from planrun.plan.agentmodel import PlaneAgent
from planrun.plan.load import load_plan
from planrun.run.agent_desk import Desk
from tests.plane_agent_standin import STALE_AFTER, AgentStandin, serve_agent


def _agent(url: str = "http://127.0.0.1:9", **extra: object) -> PlaneAgent:
    fields = {"client_id": "CID", "client_secret": "CSECRET", "installation": "inst"}
    return PlaneAgent.model_validate(
        {"kind": "plane", "url": url, "allow": ["a"], **fields, **extra}
    )


class Recording(Desk):
    """A desk that notes when it queued each activity (nothing is sent here)."""

    said: list[tuple[float, str]]

    def owe(self, conversation: Conversation, moment: str, body: dict[str, object]) -> None:
        super().owe(conversation, moment, body)
        self.said.append((trio.current_time(), moment))


async def test_a_long_task_never_lets_its_run_go_stale(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    desk = Recording("bot", _agent(), tmp_path, {})
    desk.said = []
    conversation = Conversation("run-1", "plane-run1", "a", state="running")
    desk.book.ledger.conversations["run-1"] = conversation
    desk.last_post["run-1"] = trio.current_time()  # the attempt's action
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(desk.heartbeats)
        await trio.sleep(100)
        desk.unsaid["run-1"] = "compiling 3/7"  # output within `progress`: said next tick
        await trio.sleep(11 * 60)
        nursery.cancel_scope.cancel()
    times = [started] + [t for t, _ in desk.said]
    gaps = [b - a for a, b in pairwise(times)]
    assert max(gaps) <= desk.agent.heartbeat, gaps
    assert max(gaps) < STALE_AFTER
    assert times[-1] > started + 11 * 60 - desk.agent.heartbeat
    bodies = [o.body["content"]["body"] for o in desk.book.ledger.outbox]
    assert any("compiling 3/7" in b for b in bodies)
    assert len({o.id for o in desk.book.ledger.outbox}) == len(desk.book.ledger.outbox)


@pytest.fixture(scope="module")
def standin() -> Iterator[AgentStandin]:
    with serve_agent(AgentStandin(expires_in=7200)) as plane:
        yield plane
    assert plane.problems == []


def test_bot_tokens_are_taken_again_before_they_expire(standin: AgentStandin) -> None:
    plane = standin
    now, taken = [1000.0], len(plane.tokens)
    secret = (plane.client_id, plane.client_secret)
    api = AgentApi("bot", plane.url, secret, plane.installation, clock=lambda: now[0])
    try:
        assert api.installation().slug == plane.slug
        api.email_of("nobody")
        assert len(plane.tokens) == 1 + taken
        now[0] += 3599  # an hour before it expires: still good
        api.activities(plane.mention(plane.add_item(1, "x"), "u", "hi")[0])
        assert len(plane.tokens) == 1 + taken
        now[0] += 2
        api.email_of("nobody else")
        assert len(plane.tokens) == 2 + taken
        both = f"{plane.tokens[-2]} and {plane.tokens[-1]}"
        assert api.mask(both) == "*** and ***"  # never in what planrun says
    finally:
        api.close()


async def test_an_activity_cut_short_by_a_crash_is_not_sent_twice(
    tmp_path: Path, standin: AgentStandin
) -> None:
    plane = standin
    run, _ = plane.mention(plane.add_item(1, "x"), "u", "hi")
    secret = (plane.client_id, plane.client_secret)
    api = AgentApi("bot", plane.url, secret, plane.installation)
    body = {
        "type": "thought",
        "content": {"type": "thought", "body": "queued"},
        "content_metadata": {"planrun": {"id": f"{run}:queued"}},
    }
    api.post_activity(run, body)  # sent; then planrun died before it noted so
    book = Book(tmp_path / "bot.json")
    book.ledger.owe(Outgoing(f"{run}:queued", run, body, tried=True))
    book.ledger.owe(Outgoing(f"{run}:next", run, {**body, "content_metadata": None}))
    outbox = ActivityOutbox(book, api)
    await outbox._round(final=True)
    api.close()
    assert [kind for kind, _ in plane.said(run)] == ["thought", "thought"]
    assert book.ledger.outbox == []
    assert Book(tmp_path / "bot.json").ledger.sent == [f"{run}:queued", f"{run}:next"]


PLAN = """\
version: 1
settings: {{secrets: [{secrets}], env: {{inherit: [{inherit}]}}}}
agents:
  bot:
    kind: plane
    client_id: CID
    client_secret: CSECRET
    installation: inst
    allow: [a@b.c]
    webhook: {{secret: HOOK, path: HOOKPATH, listen: "{listen}"}}
tasks:
  {task}:
    for_each: {{agent: {agent}}}
    run: [echo]
"""


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"secrets": "CID, CSECRET, HOOK"}, ":10:35: agent bot: 'HOOKPATH' is not declared"),
        ({"listen": "0.0.0.0:8787"}, ":10:53: agent bot: the webhook would listen on 0.0.0.0"),
        ({"agent": "bto"}, ":13:23: unknown agent 'bto' (did you mean 'bot'?)"),
        ({"inherit": "PATH, CSECRET"}, "CSECRET is a credential of agent bot; agent credentials"),
    ],
)
def test_a_plan_with_a_wrong_agent_says_where(
    tmp_path: Path, change: dict[str, str], problem: str
) -> None:
    values = {"secrets": "CID, CSECRET, HOOK, HOOKPATH", "listen": "127.0.0.1:8787"}
    values["inherit"] = "PATH"
    values |= {"task": "MENTION", "agent": "bot", **change}
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(**values))
    with pytest.raises(PlanError) as raised:
        load_plan(path)
    assert problem in str(raised.value), str(raised.value)


def test_planrun_knows_every_activity_type_and_signal_of_the_sdk() -> None:
    """A newer plane-sdk with a new type or signal fails here, not in production."""
    assert {t.value for t in am.AgentRunActivityType} == {
        "action",
        "elicitation",
        "error",
        "prompt",
        "response",
        "thought",
    }
    assert {s.value for s in am.AgentRunActivitySignal} == {
        "auth_request",
        "continue",
        "select",
        "stop",
    }
    cut = bounded("x" * 5000, 300)
    assert len(cut) <= 300
    assert cut.endswith(f"(cut: {5000 - cut.count('x')} more characters)")


def test_serve_refuses_an_agent_whose_credentials_are_unset_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {"secrets": "CID, CSECRET, HOOK, HOOKPATH", "listen": "127.0.0.1:8787"}
    values |= {"inherit": "PATH", "task": "MENTION", "agent": "bot"}
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(**values))
    for name in ("CID", "CSECRET", "HOOK"):
        monkeypatch.setenv(name, f"value-of-{name}")
    monkeypatch.delenv("HOOKPATH", raising=False)
    assert main(["serve", str(path)]) == 2
    assert "agent bot: HOOKPATH (webhook.path) is not set" in capsys.readouterr().err
    monkeypatch.setenv("HOOKPATH", "short")
    assert main(["serve", str(path)]) == 2
    assert "shorter than 16 characters" in capsys.readouterr().err
    assert not (tmp_path / ".planrun").exists()

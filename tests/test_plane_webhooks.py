"""The Plane agent's webhook receiver, served by hypercorn on trio over real HTTP on
127.0.0.1: only the secret path, only Plane's signature of the exact bytes, a body of
bounded size, each prompt kept once (Plane's delivery id changes on every retry), kept
in the ledger on disk before 200 is answered. Plane's requests come from the stand-in's
sender (tests/plane_agent_standin.py: ``deliver``), signed as Plane signs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import trio

from planrun.agents.ledger import load_ledger
from planrun.agents.webhook import MAX_BODY, WebhookApp, serve_webhooks, sign, signature_ok
from planrun.plan.agentmodel import PlaneAgent
from planrun.run.agent_desk import Desk
from tests.plane_agent_standin import AgentStandin, deliver

SECRET = "0123456789abcdef0123456789abcdef"
PATH = "/plane/unguessable-0123456789"


def test_the_signature_is_over_the_exact_bytes_in_constant_time() -> None:
    body = json.dumps({"a": 1}).encode()
    assert signature_ok(SECRET, body, sign(SECRET, body))
    assert signature_ok(SECRET, body, sign(SECRET, body).upper())  # hex, any case
    assert not signature_ok(SECRET, body + b" ", sign(SECRET, body))  # re-serialised: no
    assert not signature_ok(SECRET, body, "")
    assert not signature_ok(SECRET, body, "é" * 64)  # not even ASCII: refused, no error


async def test_only_signed_events_on_the_secret_path_are_kept_once(tmp_path: Path) -> None:
    plane = AgentStandin()
    agent = PlaneAgent(
        kind="plane",
        url="http://127.0.0.1:9",  # never asked: nothing here reads Plane
        client_id="CID",
        client_secret="CSECRET",
        installation="inst",
        allow=["someone"],
    )
    desk = Desk("bot", agent, tmp_path, {})
    run, event = plane.mention(plane.add_item(1, "Item"), "someone", "@bot hi")
    app = WebhookApp(PATH, SECRET, desk.take_event)
    async with trio.open_nursery() as nursery:
        [address] = await nursery.start(
            lambda task_status: serve_webhooks(app, "127.0.0.1:0", task_status=task_status)
        )
        assert address.startswith("http://127.0.0.1:")

        def send(path: str, data: Any = event, **kw: Any) -> int:
            return deliver(address + path, SECRET, data, **kw)

        async def sent(path: str, data: Any = event, **kw: Any) -> int:
            return await trio.to_thread.run_sync(lambda: send(path, data, **kw))

        assert await sent(PATH, forged=True) == 403
        assert await sent("/plane/guess") == 404
        assert load_ledger(desk.book.path).inbox == []  # nothing kept
        assert await sent(PATH) == 200
        kept = load_ledger(desk.book.path)  # on disk before the answer
        assert [p["id"] for p in kept.inbox] == [event["agent_run_activity"]["id"]]
        assert kept.inbox[0]["agent_run"] == run
        assert await sent(PATH) == 200  # a retry (new delivery id): dropped by activity id
        assert len(load_ledger(desk.book.path).inbox) == 1
        assert await sent(PATH, {"type": "issue", "action": "updated"}) == 200  # not ours

        def raw(body: bytes) -> int:
            headers = {"X-Plane-Signature": sign(SECRET, body)}
            return httpx.post(address + PATH, content=body, headers=headers).status_code

        assert await trio.to_thread.run_sync(raw, b"not json") == 400
        assert await trio.to_thread.run_sync(raw, b" " * (MAX_BODY + 1)) == 413
        get = await trio.to_thread.run_sync(lambda: httpx.get(address + PATH).status_code)
        assert get == 405
        nursery.cancel_scope.cancel()
    assert len(load_ledger(desk.book.path).inbox) == 1

"""Plane's agent webhooks: a small ASGI app, served on trio by hypercorn (opt-in).

Handler order (research/trackers.md §6.5): the path must be the secret one (else 404);
the body is read raw (at most :data:`MAX_BODY`, else 413); its HMAC-SHA256 under the
webhook secret must equal ``X-Plane-Signature`` (lower-case hex; compared in constant
time; else 403): Plane signs the bytes it sends, so the raw body is checked, never the
JSON parsed again; then the JSON (else 400) goes to ``take``, which records the event in
the agent's ledger (fsync'd) and says whether it was new. Only then is 200 answered;
the work starts after, in serve. A duplicate (the same activity id: Plane's delivery id
changes on each retry) is answered 200 and dropped.

Polling stays the reconciler: Plane retries a webhook only on a transport error and
drops it on any other failure, so an event lost here is found by the next poll.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

MAX_BODY = 1024 * 1024
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def signature_ok(secret: str, body: bytes, given: str) -> bool:
    """``given`` is Plane's signature of ``body`` under ``secret`` (constant time)."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, given.strip().lower().encode("utf-8", "replace"))


def sign(secret: str, body: bytes) -> str:
    """What Plane sends as ``X-Plane-Signature`` for ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookApp:
    """The ASGI app: POST ``path`` with a signed JSON body → ``take(event)`` → 200."""

    def __init__(self, path: str, secret: str, take: Callable[[Any], str]) -> None:
        self.path = path
        self.secret = secret
        self.take = take

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, answer = await self._answer(scope, receive)
        raw = json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        if not hmac.compare_digest(scope["path"].encode(), self.path.encode()):
            return 404, {"error": "not found"}
        if scope["method"] != "POST":
            return 405, {"error": "POST only"}
        body = await _body(receive)
        if body is None:
            return 413, {"error": f"the body is over {MAX_BODY} bytes"}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not signature_ok(self.secret, body, headers.get("x-plane-signature", "")):
            return 403, {"error": "bad signature"}
        try:
            event = json.loads(body)
        except ValueError:
            return 400, {"error": "not JSON"}
        return 200, {"ok": self.take(event)}


async def _body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def serve_webhooks(
    app: WebhookApp, listen: str, *, task_status: trio.TaskStatus[list[str]]
) -> None:
    """Serve ``app`` on ``listen`` (``HOST:PORT``) with hypercorn's trio worker until
    cancelled; ``nursery.start`` returns the addresses bound."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [listen]
    config.accesslog = None  # the path is a secret: never logged
    config.errorlog = None
    config.keep_alive_timeout = 5
    config.read_timeout = 30
    config.h11_max_incomplete_size = 64 * 1024
    await serve(app, config, task_status=task_status)  # type: ignore[arg-type]

"""The board's routes: pages, their event streams and the static files.

========================  ===================================================
``GET /``                 the board: columns by status, what waits, the graph
``GET /events``           server-sent events: ``page`` (the board's live part)
``GET /task/KEY``         a task: its facts, attempts, diff stat, log tail
``GET /task/KEY/events``  ``page`` (the task's live part) and ``log`` (lines)
``GET /static/NAME``      board.js, board.css (from the package)
========================  ===================================================

Every response carries the Content Security Policy of :data:`planrun.board.render.CSP`
and ``nosniff``; pages are never cached. A board bound to loopback answers only requests
whose ``Host`` names loopback, so a web page elsewhere cannot read it through DNS
rebinding.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import markupsafe
import trio

from planrun.board.http import Request, Response, Streamed
from planrun.board.logtail import Tail
from planrun.board.render import CSP, STATIC, Renderer
from planrun.board.snapshot import TaskPage
from planrun.board.source import POLL_S, BoardSource
from planrun.core.loopback import is_loopback
from planrun.state.store import AttemptRow

#: Headers on every response.
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)
#: A comment line this often keeps an idle stream open through proxies (and finds a
#: client that left).
KEEPALIVE_S = 15.0
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_HTML = "text/html; charset=utf-8"
_SSE = "text/event-stream; charset=utf-8"


@dataclass
class BoardApp:
    """Answers the board's requests from ``source``; ``loopback_only``: answer only a
    ``Host`` that names loopback (a board bound to loopback)."""

    source: BoardSource
    renderer: Renderer
    redact: Callable[[str], str]
    loopback_only: bool = True

    async def __call__(self, request: Request) -> Response | Streamed:
        if self.loopback_only and not names_loopback(request.headers.get("host", "")):
            return Response(421, b"this board answers only at its loopback address\n")
        path = request.path
        if path == "/":
            return await self._board_page()
        if path == "/events":
            return Streamed(self._board_events(), _SSE)
        if path.startswith("/static/"):
            return _static(path.removeprefix("/static/"))
        if path.startswith("/task/"):  # a key may hold "/" (an item id): it comes quoted
            quoted, _, rest = path.removeprefix("/task/").partition("/")
            key = urllib.parse.unquote(quoted)
            if rest == "events":
                return Streamed(self._task_events(key), _SSE)
            if not rest:
                return await self._task_page(key)
        return Response(404, b"not found\n")

    # ---------------------------------------------------------------- pages

    async def _board_page(self) -> Response:
        board = await self.source.board()
        live = self.renderer.board(board, self.source.problem)
        title = f"{board.run.plan_name}: {board.status}" if board else "planrun board"
        return self._page(title, live, "/events", log=False)

    async def _task_page(self, key: str) -> Response:
        page = await self.source.task(key)
        live = self.renderer.task(page, key)
        title = f"{key}: {page.card.status}" if page else key
        return self._page(title, live, _task_events_url(key), log=True)

    def _page(self, title: str, live: str, events: str, *, log: bool) -> Response:
        html = self.renderer.page(
            "page.html",
            title=title,
            live=markupsafe.Markup(live),
            events=events,
            log=log,
            plan=" ".join(self.source.plan_words),
        )
        return Response(200, html.encode(), _HTML)

    # ---------------------------------------------------------------- event streams

    async def _board_events(self) -> AsyncGenerator[bytes, None]:
        sent: object = None
        idle = 0.0
        while True:
            board = await self.source.board()
            shown = (board.signature() if board else None, self.source.problem)
            if shown != sent:
                sent, idle = shown, 0.0
                yield sse("page", self.renderer.board(board, self.source.problem))
            elif idle >= KEEPALIVE_S:
                idle = 0.0
                yield b": keep-alive\n\n"
            await trio.sleep(POLL_S)  # polling: the store has no change notification
            idle += POLL_S

    async def _task_events(self, key: str) -> AsyncGenerator[bytes, None]:
        sent: object = None
        follower = _LogFollower(self.redact)
        idle = 0.0
        while True:
            page = await self.source.task(key)
            shown = (page.signature() if page else None, page.run.id if page else None)
            if shown != sent:
                sent, idle = shown, 0.0
                yield sse("page", self.renderer.task(page, key))
            message = await trio.to_thread.run_sync(follower.read, page)
            if message is not None:
                idle = 0.0
                yield sse("log", json.dumps(message))
            elif idle >= KEEPALIVE_S:
                idle = 0.0
                yield b": keep-alive\n\n"
            await trio.sleep(POLL_S)  # polling: the store and the file have no notification
            idle += POLL_S


class _LogFollower:
    """The latest attempt's log as ``log`` events: a new attempt starts a new tail."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact
        self._attempt: tuple[str, int] | None = None
        self._tail: Tail | None = None
        self._ended = False

    def read(self, page: TaskPage | None) -> dict[str, object] | None:
        attempt = page.latest if page else None
        if attempt is None or not attempt.log_path:  # no log here (a shared run's remote log)
            return None
        reset = (attempt.run_id, attempt.n) != self._attempt
        if reset:
            self._attempt, self._ended = (attempt.run_id, attempt.n), False
            from pathlib import Path

            self._tail = Tail(Path(attempt.log_path), self._redact)
        assert self._tail is not None
        if self._ended:
            return None
        self._ended = attempt.ended_at is not None
        lines = self._tail.read(final=self._ended)
        if not (lines or reset or self._ended):
            return None
        return {"reset": reset, "title": _title(attempt), "lines": lines}


def _title(attempt: AttemptRow) -> str:
    state = attempt.outcome.value if attempt.outcome else "running"
    return f"attempt {attempt.n} ({state})"


def sse(event: str, data: str) -> bytes:
    """One server-sent event; each line of ``data`` becomes a ``data:`` field."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return (f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


def _task_events_url(key: str) -> str:
    from planrun.board.snapshot import task_href

    return task_href(key) + "/events"


def _static(name: str) -> Response:
    path = STATIC / name
    kind = _STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or not path.is_file():
        return Response(404, b"not found\n")
    return Response(200, path.read_bytes(), kind)


def names_loopback(host_header: str) -> bool:
    """Whether a ``Host`` header names loopback (``localhost``, ``127.0.0.1``, ``[::1]``,
    any port: a tunnel such as ``ssh -L 9000:127.0.0.1:8642`` brings its own). A page
    elsewhere that points its own name at 127.0.0.1 (DNS rebinding) still sends its own
    name, and gets 421."""
    name = host_header.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    else:
        name = name.rsplit(":", 1)[0]
    return is_loopback(name)

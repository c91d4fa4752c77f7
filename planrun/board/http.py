"""A small HTTP/1.1 server on trio streams, with h11 doing the protocol.

Why this and not an ASGI server: the board serves a few GET routes and server-sent event
streams to a handful of browsers, and planrun is trio. h11 is a small, well-kept, pure
Python state machine of HTTP/1.1 (no I/O of its own, no dependencies) that fits trio's
streams directly; hypercorn would bring its own configuration, logging and a dozen
packages for the same pages.

What it does: GET and HEAD (anything else is 405), keep-alive, a bounded request head
(:data:`MAX_HEAD`), a deadline to send it (:data:`HEAD_TIMEOUT`, so an idle or slow
client cannot hold a connection for ever), at most :data:`MAX_CONNECTIONS` at once, and
responses that are either a whole body (:class:`Response`) or a stream of chunks
(:class:`Streamed`, for server-sent events) that ends when the client goes away.
"""

from __future__ import annotations

import contextlib
import http
import sys
import traceback
import urllib.parse
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field

import h11
import trio

from planrun.core.frozen import frozen

MAX_HEAD = 16 * 1024
HEAD_TIMEOUT = 10.0
MAX_CONNECTIONS = 64
_SERVER = b"planrun-board"


@frozen
class Request:
    """A request's method, path (as sent: percent-encoded) and query."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@frozen
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@frozen
class Streamed:
    """A response whose body is sent as it is made (no Content-Length)."""

    chunks: AsyncGenerator[bytes, None]
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    status: int = 200


Handler = Callable[[Request], Awaitable[Response | Streamed]]


@dataclass
class Server:
    """Serves ``handler`` on TCP listeners; ``headers`` go on every response."""

    handler: Handler
    headers: tuple[tuple[str, str], ...] = ()
    _slots: trio.Semaphore = field(default_factory=lambda: trio.Semaphore(MAX_CONNECTIONS))

    async def serve(self, listeners: list[trio.SocketListener]) -> None:
        await trio.serve_listeners(self.connection, listeners)

    async def connection(self, stream: trio.abc.Stream) -> None:
        """One client connection: requests one after another until either side closes."""
        async with stream:
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                return  # too many: close at once
            try:
                await self._requests(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away
            except Exception:  # a bug answering one request must not stop the server
                traceback.print_exc(file=sys.stderr)
            finally:
                self._slots.release()

    async def _requests(self, stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        while True:
            with trio.move_on_after(HEAD_TIMEOUT):
                try:
                    request = await _read_request(conn, stream)
                except h11.RemoteProtocolError as error:
                    await self._send(conn, stream, "GET", _error(error.error_status_hint))
                    return
            if request is None or conn.their_state is not h11.DONE:
                return  # closed, timed out, or a body we did not read
            response = await self._respond(request)
            await self._send(conn, stream, request.method, response)
            if isinstance(response, Streamed):
                return  # it ended because the client left (or the server stops)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _respond(self, request: Request) -> Response | Streamed:
        if request.method not in ("GET", "HEAD"):
            return Response(
                405, b"read-only: GET and HEAD only\n", headers=(("Allow", "GET, HEAD"),)
            )
        try:
            return await self.handler(request)
        except Exception:  # a bug: say so, to the client and on stderr, and serve on
            traceback.print_exc(file=sys.stderr)
            return Response(500, b"planrun board: internal error (see its stderr)\n")

    async def _send(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        method: str,
        response: Response | Streamed,
    ) -> None:
        headers = [*self.headers, ("Content-Type", response.content_type), *response.headers]
        if isinstance(response, Response):
            headers.append(("Content-Length", str(len(response.body))))
        head = [(k.encode(), v.encode()) for k, v in headers] + [(b"Server", _SERVER)]
        reason = http.HTTPStatus(response.status).phrase.encode()
        event = h11.Response(status_code=response.status, headers=head, reason=reason)
        await stream.send_all(conn.send(event))
        if method != "HEAD":
            if isinstance(response, Response):
                await stream.send_all(conn.send(h11.Data(data=response.body)))
            else:
                await _stream(conn, stream, response)
        await stream.send_all(conn.send(h11.EndOfMessage()))


async def _stream(conn: h11.Connection, stream: trio.abc.Stream, response: Streamed) -> None:
    """Send ``response``'s chunks until they end or the client closes its side (a closed
    tab): then at once, not at the next chunk, which may be many seconds away."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_at_eof, stream, nursery.cancel_scope)
        try:
            async with contextlib.aclosing(response.chunks) as chunks:
                async for chunk in chunks:
                    await stream.send_all(conn.send(h11.Data(data=chunk)))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away (raised here, not as a group from the nursery)
        nursery.cancel_scope.cancel()


async def _cancel_at_eof(stream: trio.abc.Stream, scope: trio.CancelScope) -> None:
    """Read (and drop) whatever the client sends until it closes; then cancel ``scope``.
    The connection is closed after a stream, so nothing read here was a request."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while await stream.receive_some(MAX_HEAD):
            pass
    scope.cancel()


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> Request | None:
    """The next request, its body (if any) read and dropped; None when the client closed."""
    request: Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(MAX_HEAD)
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.Request):
            request = _request(event)
        elif isinstance(event, h11.Data) and conn.their_state is h11.SEND_BODY:
            continue  # a GET has no body worth reading; h11 bounds it by the head's length
        elif isinstance(event, h11.EndOfMessage):
            return request
        else:  # ConnectionClosed, PAUSED
            return None


def _request(event: h11.Request) -> Request:
    target = event.target.decode("ascii", "replace")
    parts = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(parts.query))
    headers = {k.decode("ascii", "replace"): v.decode("latin-1") for k, v in event.headers}
    method = event.method.decode("ascii", "replace")
    return Request(method, parts.path, query, headers)


def _error(status: int) -> Response:
    return Response(status, f"bad request ({status})\n".encode())

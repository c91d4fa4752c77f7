"""What the HTTP stand-ins of the tests share (GitHub, Jira, Plane and the Plane agent):
a quiet request handler that reads a request and writes a JSON answer, and a threaded
server on 127.0.0.1 with a port of its own. Each stand-in's handler says how it checks,
routes and refuses (its vendor's error bodies differ)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit


class JSONHandler(BaseHTTPRequestHandler):
    """Every verb goes to :meth:`_serve`; :meth:`_request` and :meth:`_send` read and write."""

    content_type = "application/json"
    #: an answer of None is an empty body (Jira's 204s), else the JSON ``null``
    none_is_empty = False

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        raise NotImplementedError

    def _request(self) -> tuple[str, dict[str, str], bytes]:
        """The request's path, its query (the last value of each name) and its raw body."""
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("content-length") or 0)
        return split.path, query, self.rfile.read(length) if length else b""

    def _send(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        empty = answer is None and self.none_is_empty
        raw = b"" if empty else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", self.content_type)
        self.send_header("content-length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


S = TypeVar("S")


@contextmanager
def serve_with(standin: S, handler: type[BaseHTTPRequestHandler]) -> Iterator[S]:
    """Serve ``standin`` with ``handler`` (as its ``data``) on 127.0.0.1, a port of its own,
    while the block runs; ``standin.url`` says where."""

    class Bound(handler):  # type: ignore[valid-type,misc]
        data = standin

    server = ThreadingHTTPServer(("127.0.0.1", 0), Bound)
    server.daemon_threads = True
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    # a short poll: shutdown() waits for it, once per test
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

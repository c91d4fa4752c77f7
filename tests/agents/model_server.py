"""A scripted stand-in for the model APIs that agent CLIs talk to, on 127.0.0.1 only.

The real CLIs (Claude Code, Codex, Copilot, Gemini CLI, ...) are pointed at this server through
their documented base-URL settings, so that a test can run them end to end with no network and no
model: the server answers every model request from a *script*, a list of turns. A turn is either
a tool call (``ToolCall("Write", {...})``: "call this tool with these arguments") or a final text
answer (``Reply("done")``). Which turn a request gets is derived from the conversation history in
the request itself (the number of assistant turns already in it), so a retried request gets the
same answer and the server keeps no per-conversation state.

Requests without tools (Claude Code's side queries, e.g. a title for the session) get a short text
answer and do not use up a turn. A scripted tool the CLI did not offer is recorded in ``errors``
and answered with text that says so, so a test fails with a clear message instead of hanging.

Dialects, enough for the CLIs' non-interactive runs:

- Anthropic Messages: ``POST /v1/messages`` (SSE with ``stream: true``: message_start,
  content_block_start/delta/stop, message_delta with usage, message_stop; or one JSON body),
  ``POST /v1/messages/count_tokens``.
- OpenAI Responses: ``POST /v1/responses`` (SSE: response.created, response.in_progress,
  response.output_item.added, response.output_text.delta / function_call_arguments.delta,
  response.output_item.done, response.completed with usage; or one JSON body).
- OpenAI Chat Completions: ``POST /v1/chat/completions`` (chunks with content / tool_calls, a
  final usage chunk, ``[DONE]``).
- Gemini API: ``POST /v1beta/models/{model}:streamGenerateContent`` / ``:generateContent`` /
  ``:countTokens``.
- Anything else (model lists, telemetry, feature flags, ...): ``GET /v1/models`` gets a one-model
  list; every other request gets 200 ``{}``. Everything is recorded in ``requests``.
- As a proxy: point a CLI's HTTPS_PROXY/HTTP_PROXY here (NO_PROXY=127.0.0.1) and every attempt
  to reach another host arrives as a CONNECT (or an absolute-URL request), which is recorded
  (``outbound()``) and refused with 403.

A ``Fail(message, status)`` turn answers with that HTTP error in the dialect's error format;
requests that offer no tools get ``side_answer`` (or, for Gemini structured-output side queries,
a small object that fits the requested schema).

Use it in a thread (``with ModelServer(script) as server: ... server.url``) or as a process:
``python -m tests.agents.model_server --script turns.json`` prints ``URL http://127.0.0.1:PORT``
on its first line and serves until SIGTERM/SIGINT; the JSON script is a list of
``{"tool": NAME, "arguments": {...} | "raw input"}`` and ``{"text": "..."}`` objects.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlsplit

# Tokens reported for every model response: tests compare the CLI's reported usage with these.
INPUT_TOKENS = 120
OUTPUT_TOKENS = 30
MODEL_ID = "mock-model"
SIDE_ANSWER = "OK"


@dataclass(frozen=True)
class ToolCall:
    """One assistant turn that calls a tool. ``arguments`` as a str is raw input (freeform tools
    such as Codex's ``apply_patch``) or an already-encoded JSON argument string."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One assistant turn that ends the conversation with a text answer."""

    text: str


@dataclass(frozen=True)
class Fail:
    """The API refuses the request with this HTTP status (400: not retried by the CLIs)."""

    message: str
    status: int = 400


Answer = ToolCall | Reply | Fail
# A turn may also be chosen by a function of the tool names the CLI offered in that request.
Turn = Answer | Callable[[frozenset[str]], Answer]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    dialect: str  # "anthropic" | "responses" | "chat" | "gemini" | "proxy" | "other"
    turn: int | None  # the script index answered, None for side requests and non-model calls

    def summary(self) -> str:
        return f"{self.method} {self.path} [{self.dialect}, turn={self.turn}]"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ModelServer


def _sse(event: str | None, data: object) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _decode_body(raw: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class ModelServer:
    """A scripted model server on 127.0.0.1 (a free port unless ``port`` is given)."""

    def __init__(
        self,
        script: Sequence[Turn] = (),
        *,
        port: int = 0,
        log: Callable[[str], None] | None = None,
        side_answer: str = SIDE_ANSWER,
    ) -> None:
        self._script: list[Turn] = list(script)
        # The text for requests that offer no tools; a CLI that never uses tools (aider edits
        # files from the answer's text) is scripted through this.
        self.side_answer = side_answer
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._ids = itertools.count(1)
        self._log = log
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ModelServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="model-server",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- script and records ----------------------------------------------------------------
    def set_script(self, script: Sequence[Turn]) -> None:
        with self._lock:
            self._script = list(script)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def outbound(self) -> list[str]:
        """Hosts the CLIs tried to reach through the proxy (HTTPS_PROXY pointing here)."""
        return [r.path for r in self.requests if r.dialect == "proxy"]

    def model_requests(self, dialect: str | None = None) -> list[RecordedRequest]:
        """Requests that were answered from the script (not side requests)."""
        return [
            r
            for r in self.requests
            if r.turn is not None and (dialect is None or r.dialect == dialect)
        ]

    def describe(self) -> str:
        """Every request seen, one per line: for assertion messages."""
        lines = [r.summary() for r in self.requests] or ["(no requests)"]
        lines += [f"ERROR: {e}" for e in self.errors]
        return "\n".join(lines)

    def next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{next(self._ids):06d}"

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
        if self._log is not None:
            self._log(request.summary())

    def error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)
        if self._log is not None:
            self._log(f"ERROR: {message}")

    def choose(self, index: int, tools: frozenset[str]) -> tuple[int | None, Answer]:
        """The turn to answer for a request with ``index`` assistant turns in its history."""
        if not tools:
            return None, Reply(self.side_answer)
        with self._lock:
            script = list(self._script)
        if index >= len(script):
            self.error(f"the CLI asked for turn {index} but the script has {len(script)} turns")
            return index, Reply("The script is over.")
        turn = script[index]
        chosen = turn if isinstance(turn, ToolCall | Reply | Fail) else turn(tools)
        if isinstance(chosen, ToolCall) and chosen.name not in tools:
            self.error(
                f"turn {index} calls {chosen.name!r}, which the CLI did not offer: {sorted(tools)}"
            )
            return index, Reply(f"Cannot call {chosen.name}: not among the offered tools.")
        return index, chosen


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # -- plumbing ----------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # the server records requests itself
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return _decode_body(raw, self.headers.get("Content-Encoding", ""))

    def _send_json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _fail(self, dialect: str, turn: Fail) -> None:
        if dialect == "anthropic":
            body: dict[str, Any] = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": turn.message},
            }
        elif dialect == "gemini":
            body = {
                "error": {
                    "code": turn.status,
                    "message": turn.message,
                    "status": "INVALID_ARGUMENT",
                }
            }
        else:
            body = {
                "error": {"message": turn.message, "type": "invalid_request_error", "code": None}
            }
        self._send_json(turn.status, body)

    def _stream(self, events: Iterator[bytes]) -> None:
        self._start_stream()
        for event in events:
            self._chunk(event)
        self._end_stream()

    # -- dispatch ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_CONNECT(self) -> None:
        # Only reached when a CLI was given HTTPS_PROXY pointing here: an attempt to leave
        # 127.0.0.1. Record it and refuse, so the test can name the host the CLI tried.
        self.server.owner.record(
            RecordedRequest("CONNECT", self.path, dict(self.headers), b"", None, "proxy", None)
        )
        self.send_response(403, "planrun tests: no network")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def do_HEAD(self) -> None:
        self.server.owner.record(
            RecordedRequest("HEAD", self.path, dict(self.headers), b"", None, "other", None)
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _handle(self, method: str) -> None:
        owner = self.server.owner
        try:
            body = self._read_body()
        except (ValueError, OSError, zlib.error) as exc:
            owner.error(f"{method} {self.path}: unreadable body: {exc}")
            self._send_json(400, {"error": {"message": str(exc)}})
            return
        try:
            payload: Any = json.loads(body) if body else None
        except ValueError:
            payload = None
        path = urlsplit(self.path).path
        headers = dict(self.headers)
        if self.path.startswith(("http://", "https://")):  # a plain-HTTP proxy request
            owner.record(RecordedRequest(method, self.path, headers, body, payload, "proxy", None))
            self._send_json(403, {"error": {"message": "planrun tests: no network"}})
            return
        try:
            if method == "POST" and path.endswith("/messages/count_tokens"):
                owner.record(
                    RecordedRequest(method, self.path, headers, body, payload, "anthropic", None)
                )
                self._send_json(200, {"input_tokens": INPUT_TOKENS})
            elif method == "POST" and path.endswith("/messages") and isinstance(payload, dict):
                self._anthropic(headers, body, payload)
            elif method == "POST" and path.endswith("/responses") and isinstance(payload, dict):
                self._responses(headers, body, payload)
            elif (
                method == "POST"
                and path.endswith("/chat/completions")
                and isinstance(payload, dict)
            ):
                self._chat(headers, body, payload)
            elif method == "POST" and ":" in path.rsplit("/", 1)[-1] and "/models/" in path:
                self._gemini(headers, body, payload if isinstance(payload, dict) else {}, path)
            else:
                owner.record(
                    RecordedRequest(method, self.path, headers, body, payload, "other", None)
                )
                if method == "GET" and path.rstrip("/").endswith("/models"):
                    self._send_json(200, _model_list(headers))
                else:
                    self._send_json(200, {})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- Anthropic Messages --------------------------------------------------------------------
    def _anthropic(self, headers: dict[str, str], body: bytes, req: dict[str, Any]) -> None:
        owner = self.server.owner
        messages = req.get("messages") or []
        index = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        tools = frozenset(
            str(t.get("name"))
            for t in req.get("tools") or []
            if isinstance(t, dict) and t.get("name")
        )
        turn_index, turn = owner.choose(index, tools)
        owner.record(
            RecordedRequest("POST", self.path, headers, body, req, "anthropic", turn_index)
        )
        if isinstance(turn, Fail):
            self._fail("anthropic", turn)
            return
        model = str(req.get("model") or MODEL_ID)
        msg_id = owner.next_id("msg")
        if isinstance(turn, ToolCall):
            args = (
                json.loads(turn.arguments)
                if isinstance(turn.arguments, str)
                else dict(turn.arguments)
            )
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": owner.next_id("toolu"),
                "name": turn.name,
                "input": args,
            }
            stop_reason = "tool_use"
        else:
            block = {"type": "text", "text": turn.text}
            stop_reason = "end_turn"
        usage = {
            "input_tokens": INPUT_TOKENS,
            "output_tokens": OUTPUT_TOKENS,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        if not req.get("stream"):
            self._send_json(200, message)
            return

        def events() -> Iterator[bytes]:
            start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
            yield _sse("message_start", {"type": "message_start", "message": start})
            if block["type"] == "text":
                yield _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                yield _sse("ping", {"type": "ping"})
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": block["text"]},
                    },
                )
            else:
                yield _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": dict(block, input={}),
                    },
                )
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": json.dumps(block["input"]),
                        },
                    },
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": OUTPUT_TOKENS},
                },
            )
            yield _sse("message_stop", {"type": "message_stop"})

        self._stream(events())

    # -- OpenAI Responses ----------------------------------------------------------------------
    def _responses(self, headers: dict[str, str], body: bytes, req: dict[str, Any]) -> None:
        owner = self.server.owner
        items = req.get("input")
        history = items if isinstance(items, list) else []
        index = sum(1 for item in history if isinstance(item, dict) and _is_assistant_item(item))
        tool_kinds: dict[str, str] = {}
        for tool in req.get("tools") or []:
            if isinstance(tool, dict):
                name = tool.get("name") or (tool.get("function") or {}).get("name")
                if name:
                    tool_kinds[str(name)] = str(tool.get("type", "function"))
        turn_index, turn = owner.choose(index, frozenset(tool_kinds))
        owner.record(
            RecordedRequest("POST", self.path, headers, body, req, "responses", turn_index)
        )
        if isinstance(turn, Fail):
            self._fail("responses", turn)
            return
        model = str(req.get("model") or MODEL_ID)
        resp_id = owner.next_id("resp")
        if isinstance(turn, ToolCall):
            call_id = owner.next_id("call")
            if tool_kinds.get(turn.name) == "custom":
                raw = (
                    turn.arguments
                    if isinstance(turn.arguments, str)
                    else json.dumps(turn.arguments)
                )
                item: dict[str, Any] = {
                    "type": "custom_tool_call",
                    "id": owner.next_id("ctc"),
                    "status": "completed",
                    "call_id": call_id,
                    "name": turn.name,
                    "input": raw,
                }
            else:
                args = (
                    turn.arguments
                    if isinstance(turn.arguments, str)
                    else json.dumps(turn.arguments)
                )
                item = {
                    "type": "function_call",
                    "id": owner.next_id("fc"),
                    "status": "completed",
                    "call_id": call_id,
                    "name": turn.name,
                    "arguments": args,
                }
        else:
            item = {
                "type": "message",
                "id": owner.next_id("msg"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
            }
        usage = {
            "input_tokens": INPUT_TOKENS,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": OUTPUT_TOKENS,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        }
        created = int(time.time())
        base = {
            "id": resp_id,
            "object": "response",
            "created_at": created,
            "model": model,
            "tool_choice": req.get("tool_choice", "auto"),
            "tools": req.get("tools") or [],
            "parallel_tool_calls": bool(req.get("parallel_tool_calls", False)),
        }
        final = dict(base, status="completed", output=[item], usage=usage, error=None)
        if not req.get("stream"):
            self._send_json(200, final)
            return

        def events() -> Iterator[bytes]:
            seq = itertools.count()
            pending = dict(base, status="in_progress", output=[], usage=None, error=None)
            yield _sse(
                "response.created",
                {"type": "response.created", "sequence_number": next(seq), "response": pending},
            )
            yield _sse(
                "response.in_progress",
                {"type": "response.in_progress", "sequence_number": next(seq), "response": pending},
            )
            if item["type"] == "message":
                text = item["content"][0]["text"]
                added = dict(item, status="in_progress", content=[])
                yield _sse(
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "sequence_number": next(seq),
                        "output_index": 0,
                        "item": added,
                    },
                )
                part = {"type": "output_text", "text": "", "annotations": []}
                common = {"item_id": item["id"], "output_index": 0, "content_index": 0}
                yield _sse(
                    "response.content_part.added",
                    {
                        "type": "response.content_part.added",
                        "sequence_number": next(seq),
                        **common,
                        "part": part,
                    },
                )
                yield _sse(
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": next(seq),
                        **common,
                        "delta": text,
                    },
                )
                yield _sse(
                    "response.output_text.done",
                    {
                        "type": "response.output_text.done",
                        "sequence_number": next(seq),
                        **common,
                        "text": text,
                    },
                )
                yield _sse(
                    "response.content_part.done",
                    {
                        "type": "response.content_part.done",
                        "sequence_number": next(seq),
                        **common,
                        "part": dict(part, text=text),
                    },
                )
            elif item["type"] == "function_call":
                added = dict(item, status="in_progress", arguments="")
                yield _sse(
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "sequence_number": next(seq),
                        "output_index": 0,
                        "item": added,
                    },
                )
                yield _sse(
                    "response.function_call_arguments.delta",
                    {
                        "type": "response.function_call_arguments.delta",
                        "sequence_number": next(seq),
                        "item_id": item["id"],
                        "output_index": 0,
                        "delta": item["arguments"],
                    },
                )
                yield _sse(
                    "response.function_call_arguments.done",
                    {
                        "type": "response.function_call_arguments.done",
                        "sequence_number": next(seq),
                        "item_id": item["id"],
                        "output_index": 0,
                        "arguments": item["arguments"],
                    },
                )
            else:  # custom_tool_call
                added = dict(item, status="in_progress", input="")
                yield _sse(
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "sequence_number": next(seq),
                        "output_index": 0,
                        "item": added,
                    },
                )
                yield _sse(
                    "response.custom_tool_call_input.delta",
                    {
                        "type": "response.custom_tool_call_input.delta",
                        "sequence_number": next(seq),
                        "item_id": item["id"],
                        "output_index": 0,
                        "delta": item["input"],
                    },
                )
            yield _sse(
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "sequence_number": next(seq),
                    "output_index": 0,
                    "item": item,
                },
            )
            yield _sse(
                "response.completed",
                {"type": "response.completed", "sequence_number": next(seq), "response": final},
            )

        self._stream(events())

    # -- OpenAI Chat Completions ---------------------------------------------------------------
    def _chat(self, headers: dict[str, str], body: bytes, req: dict[str, Any]) -> None:
        owner = self.server.owner
        messages = req.get("messages") or []
        index = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        tools = frozenset(
            str((t.get("function") or {}).get("name"))
            for t in req.get("tools") or []
            if isinstance(t, dict) and (t.get("function") or {}).get("name")
        )
        turn_index, turn = owner.choose(index, tools)
        owner.record(RecordedRequest("POST", self.path, headers, body, req, "chat", turn_index))
        if isinstance(turn, Fail):
            self._fail("chat", turn)
            return
        model = str(req.get("model") or MODEL_ID)
        chat_id = owner.next_id("chatcmpl")
        created = int(time.time())
        usage = {
            "prompt_tokens": INPUT_TOKENS,
            "completion_tokens": OUTPUT_TOKENS,
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        }
        if isinstance(turn, ToolCall):
            args = turn.arguments if isinstance(turn.arguments, str) else json.dumps(turn.arguments)
            call = {
                "id": owner.next_id("call"),
                "type": "function",
                "function": {"name": turn.name, "arguments": args},
            }
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": turn.text}
            finish = "stop"
        if not req.get("stream"):
            self._send_json(
                200,
                {
                    "id": chat_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                },
            )
            return

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            obj = {
                "id": chat_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
            }
            return _sse(None, dict(obj, choices=choices, **extra))

        def events() -> Iterator[bytes]:
            yield chunk(
                [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
            )
            if "tool_calls" in message:
                calls = [dict(c, index=i) for i, c in enumerate(message["tool_calls"])]
                yield chunk([{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}])
            else:
                yield chunk(
                    [{"index": 0, "delta": {"content": message["content"]}, "finish_reason": None}]
                )
            yield chunk([{"index": 0, "delta": {}, "finish_reason": finish}])
            yield chunk([], usage=usage)
            yield _sse(None, "[DONE]")

        self._stream(events())

    # -- Gemini API ----------------------------------------------------------------------------
    def _gemini(self, headers: dict[str, str], body: bytes, req: dict[str, Any], path: str) -> None:
        owner = self.server.owner
        model, _, action = path.rsplit("/", 1)[-1].partition(":")
        if action == "countTokens":
            owner.record(RecordedRequest("POST", self.path, headers, body, req, "gemini", None))
            self._send_json(200, {"totalTokens": INPUT_TOKENS})
            return
        contents = req.get("contents") or []
        index = sum(1 for c in contents if isinstance(c, dict) and c.get("role") == "model")
        tools = frozenset(
            str(decl.get("name"))
            for tool in req.get("tools") or []
            if isinstance(tool, dict)
            for decl in tool.get("functionDeclarations") or []
            if isinstance(decl, dict) and decl.get("name")
        )
        turn_index, turn = owner.choose(index, tools)
        owner.record(RecordedRequest("POST", self.path, headers, body, req, "gemini", turn_index))
        if isinstance(turn, Fail):
            self._fail("gemini", turn)
            return
        config = req.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if turn_index is None and isinstance(schema, dict):
            # A side query that wants structured output (e.g. Gemini CLI's model router).
            turn = Reply(json.dumps(fill_schema(schema)))
        if isinstance(turn, ToolCall):
            args = (
                json.loads(turn.arguments)
                if isinstance(turn.arguments, str)
                else dict(turn.arguments)
            )
            part: dict[str, Any] = {"functionCall": {"name": turn.name, "args": args}}
        else:
            part = {"text": turn.text}
        response = {
            "candidates": [
                {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": INPUT_TOKENS,
                "candidatesTokenCount": OUTPUT_TOKENS,
                "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS,
            },
            "modelVersion": model or MODEL_ID,
            "responseId": owner.next_id("gem"),
        }
        if action == "streamGenerateContent":
            self._stream(iter([_sse(None, response)]))
        else:
            self._send_json(200, response)


def fill_schema(schema: Mapping[str, Any]) -> Any:
    """A small value that satisfies a JSON schema (OpenAPI-style upper-case types too)."""
    kind = str(schema.get("type", "object")).lower()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: fill_schema(v) for k, v in props.items() if isinstance(v, Mapping)}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return max(1, int(schema.get("minimum", 1)))
    if kind == "boolean":
        return False
    return SIDE_ANSWER


def _is_assistant_item(item: Mapping[str, Any]) -> bool:
    kind = item.get("type")
    if kind in ("function_call", "custom_tool_call", "local_shell_call"):
        return True
    return kind in ("message", None) and item.get("role") == "assistant"


def _model_list(headers: Mapping[str, str]) -> dict[str, Any]:
    if any(k.lower() == "anthropic-version" for k in headers):
        model = {
            "type": "model",
            "id": MODEL_ID,
            "display_name": "Mock model",
            "created_at": "2025-01-01T00:00:00Z",
        }
        return {"data": [model], "has_more": False, "first_id": MODEL_ID, "last_id": MODEL_ID}
    return {
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "planrun-tests"}],
    }


def load_script(path: Path) -> list[Turn]:
    """Read a JSON script: a list of {"tool": NAME, "arguments": ...} and {"text": ...}."""
    turns: list[Turn] = []
    for entry in json.loads(path.read_text()):
        if "tool" in entry:
            turns.append(ToolCall(str(entry["tool"]), entry.get("arguments", {})))
        else:
            turns.append(Reply(str(entry["text"])))
    return turns


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--script", type=Path, help="JSON list of turns")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)
    script = load_script(args.script) if args.script else []

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with ModelServer(script, port=args.port, log=None if args.quiet else log) as server:
        print(f"URL {server.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

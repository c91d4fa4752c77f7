"""Token and cost accounting read from an agent CLI's machine-readable output (pure).

A provider's ``usage`` setting names one parser:

- ``claude-json``: Claude Code ``-p --output-format json`` (one result object) or
  ``--output-format stream-json`` (JSON lines; the last ``{"type": "result", ...}`` object counts).
  The result carries ``usage`` (``input_tokens``, ``cache_creation_input_tokens``,
  ``cache_read_input_tokens``, ``output_tokens``), ``total_cost_usd``, ``is_error``, ``subtype``
  and ``result``. ``is_error: true`` is reported as the error.
- ``codex-json``: Codex ``exec --json`` JSON lines. Every ``turn.completed`` event carries
  ``usage`` (``input_tokens`` — cached ones included —, ``cached_input_tokens``,
  ``output_tokens``, ``reasoning_output_tokens``): the *thread's* totals so far, so the last
  one counts, and a resumed thread (``exec resume``) reports its earlier turns' tokens again.
  The thread is ``thread.started``'s ``thread_id``.
  ``turn.failed`` (``error.message``) and a top-level ``error`` event (``message``) after the last
  ``turn.completed`` are errors; ``item.completed`` items of type ``error`` are warnings and are
  ignored. Codex reports no cost.
- ``gemini-json``: Gemini CLI ``--output-format json`` (one pretty-printed object with
  ``response``, ``stats.models.<name>.tokens`` and, on failure, ``error``) or
  ``--output-format stream-json`` (the last ``{"type": "result", ...}`` event with ``status`` and
  ``stats.input_tokens`` / ``stats.output_tokens``). Gemini CLI reports no cost.
- ``none``: nothing to read.

Running totals. A follow-up turn continues the CLI's session (``--continue``, ``resume``),
and some figures are then the session's totals so far rather than the turn's (checked
against the pinned CLIs and the scripted model server, two turns of two requests each):

- Claude Code 2.1.329: ``total_cost_usd`` (and ``modelUsage``) is the session's running
  total (0.00216, then 0.00432); ``usage`` is the turn's own;
- Codex 0.169.0: ``turn.completed``'s ``usage`` is the thread's running total;
- Gemini CLI 0.61.0: ``stats`` count the run's own requests, ``--resume`` or not.

:class:`RunningTotals` turns each result into the turn's own figures, by session (Claude's
``session_id``, Codex's ``thread_id``): the figures a session reported at its previous turn
are subtracted. A session whose earlier turn went unread (no result in its output) is
counted whole once.

``input_tokens`` counts every prompt token the model processed, cached ones included (Claude's
cache reads and writes are added to its ``input_tokens``; OpenAI and Gemini already include
them); ``output_tokens`` counts generated tokens, reasoning/thinking included where the CLI
reports them apart. The output may be noisy — other lines, ANSI colours, stderr interleaved —
so the parsers look for JSON objects that start a line and ignore everything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import field, replace
from typing import Any

from planrun.core.frozen import frozen

__all__ = ["USAGE_KINDS", "RunningTotals", "Usage", "UsageResult", "parse_usage"]


@frozen
class Usage:
    input_tokens: int
    output_tokens: int
    cost_usd: float | None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@frozen
class UsageResult:
    """What one attempt's output says: its usage (None if not found) and the error the agent
    itself reported (None if it reported none, or the reason nothing could be read)."""

    usage: Usage | None
    error: str | None
    #: The CLI's session (Claude's session_id, Codex's thread_id), when it names one.
    session: str | None = field(default=None, compare=False)


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_OBJECT_START = re.compile(r"^[ \t]*\{", re.MULTILINE)
_DECODER = json.JSONDecoder()


def _objects(output: str) -> Iterator[dict[str, Any]]:
    """JSON objects in ``output`` that begin a line (JSON lines or a pretty-printed object)."""
    text = _ANSI.sub("", output).replace("\r\n", "\n").replace("\r", "\n")
    pos = 0
    while True:
        match = _OBJECT_START.search(text, pos)
        if match is None:
            return
        start = match.end() - 1
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            pos = match.end()
            continue
        if isinstance(value, dict):
            yield value
        pos = end


def _int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _claude(output: str) -> UsageResult:
    result = None
    for obj in _objects(output):
        if obj.get("type") == "result":
            result = obj
    if result is None:
        return UsageResult(None, "no Claude Code result object in the output")
    raw = _map(result.get("usage"))
    usage = None
    if raw or "total_cost_usd" in result:
        usage = Usage(
            input_tokens=_int(raw.get("input_tokens"))
            + _int(raw.get("cache_creation_input_tokens"))
            + _int(raw.get("cache_read_input_tokens")),
            output_tokens=_int(raw.get("output_tokens")),
            cost_usd=_float(result.get("total_cost_usd")),
        )
    error = None
    subtype = str(result.get("subtype") or "")
    if result.get("is_error") is True or subtype not in ("", "success"):
        detail = result.get("result")
        if not isinstance(detail, str) or not detail:
            errors = result.get("errors")
            detail = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
        status = result.get("api_error_status")
        if subtype not in ("", "success"):
            label = subtype
        elif isinstance(status, int) and not isinstance(status, bool):
            label = f"API error {status}"
        else:
            label = "error"
        error = f"{label}: {detail}" if detail else label
    session = result.get("session_id")
    return UsageResult(usage, error, session if isinstance(session, str) else None)


def _codex_message(message: object, default: str) -> str:
    """Codex passes an API error body through as its message: unwrap ``error.message``."""
    if not message:
        return default
    text = str(message)
    try:
        body = json.loads(text)
    except ValueError:
        return text
    inner = _map(_map(body).get("error")).get("message")
    return str(inner) if inner else text


def _codex(output: str) -> UsageResult:
    usage: Usage | None = None
    thread: str | None = None
    errors: list[str] = []
    for obj in _objects(output):
        kind = obj.get("type")
        if kind == "thread.started" and isinstance(obj.get("thread_id"), str):
            thread = obj["thread_id"]
        elif kind == "turn.completed":  # the thread's totals so far
            raw = _map(obj.get("usage"))
            usage = Usage(_int(raw.get("input_tokens")), _int(raw.get("output_tokens")), None)
            errors.clear()  # an error the turn recovered from (e.g. a retried stream)
        elif kind == "turn.failed":
            errors.append(_codex_message(_map(obj.get("error")).get("message"), "turn failed"))
        elif kind == "error":
            errors.append(_codex_message(obj.get("message"), "error"))
    if errors:
        # Codex repeats a fatal error as an ``error`` event and a ``turn.failed``: say it once.
        return UsageResult(usage, "; ".join(dict.fromkeys(errors)), thread)
    if usage is None:
        return UsageResult(None, "no Codex turn.completed event in the output", thread)
    return UsageResult(usage, None, thread)


def _gemini_error(raw: object) -> str:
    error = _map(raw)
    message = error.get("message")
    kind = error.get("type")
    if message and kind:
        return f"{kind}: {message}"
    return str(message or kind or "error")


def _gemini(output: str) -> UsageResult:
    final = None
    for obj in _objects(output):
        stream_result = obj.get("type") == "result"
        single = "type" not in obj and any(k in obj for k in ("response", "stats", "error"))
        if stream_result or single:
            final = obj
    if final is None:
        return UsageResult(None, "no Gemini CLI result in the output")
    stats = _map(final.get("stats"))
    usage = None
    if final.get("type") == "result":  # stream-json
        if stats:
            usage = Usage(_int(stats.get("input_tokens")), _int(stats.get("output_tokens")), None)
        failed = final.get("status") == "error" or bool(final.get("error"))
        return UsageResult(usage, _gemini_error(final.get("error")) if failed else None)
    models = _map(stats.get("models"))
    if models:
        prompt = generated = 0
        for metrics in models.values():
            tokens = _map(_map(metrics).get("tokens"))
            prompt += _int(tokens.get("prompt"))
            generated += _int(tokens.get("candidates")) + _int(tokens.get("thoughts"))
        usage = Usage(prompt, generated, None)
    error = _gemini_error(final["error"]) if final.get("error") else None
    return UsageResult(usage, error)


def _none(output: str) -> UsageResult:
    return UsageResult(None, None)


_PARSERS: dict[str, Callable[[str], UsageResult]] = {
    "claude-json": _claude,
    "codex-json": _codex,
    "gemini-json": _gemini,
    "none": _none,
}

USAGE_KINDS: tuple[str, ...] = tuple(_PARSERS)


def parse_usage(kind: str, output: str) -> UsageResult:
    """Read tokens, cost and the agent's own error verdict from ``output``.

    Raises ValueError for an unknown ``kind`` (the plan validator checks it against
    ``USAGE_KINDS`` first).
    """
    try:
        parser = _PARSERS[kind]
    except KeyError:
        known = ", ".join(USAGE_KINDS)
        raise ValueError(f"unknown usage parser {kind!r} (known: {known})") from None
    return parser(output)


#: Per parser, the figures that are the session's running totals: "cost", "tokens".
_RUNNING: dict[str, frozenset[str]] = {
    "claude-json": frozenset({"cost"}),
    "codex-json": frozenset({"tokens"}),
}


class RunningTotals:
    """Turns what each turn's output says into that turn's own usage (see the module
    docstring, "Running totals"). One per run: sessions are told apart by their ids."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], Usage] = {}

    def turn(self, kind: str, result: UsageResult) -> Usage | None:
        """The turn's own usage from ``result`` (read by the ``kind`` parser)."""
        usage = result.usage
        running = _RUNNING.get(kind, frozenset())
        if usage is None or not running or result.session is None:
            return usage
        key = (kind, result.session)
        before = self._last.get(key)
        self._last[key] = usage
        if before is None:
            return usage
        if "tokens" in running:
            usage = replace(
                usage,
                input_tokens=max(usage.input_tokens - before.input_tokens, 0),
                output_tokens=max(usage.output_tokens - before.output_tokens, 0),
            )
        if "cost" in running and usage.cost_usd is not None and before.cost_usd is not None:
            usage = replace(usage, cost_usd=round(max(usage.cost_usd - before.cost_usd, 0.0), 10))
        return usage

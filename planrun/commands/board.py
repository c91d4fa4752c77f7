"""``planrun board PLAN [--listen HOST:PORT] [--run ID] [--state-dir DIR | --store URL]``: a
live web page of a run (docs/board.md); with ``--store`` (or ``$PLANRUN_STORE``), of a run
shared by several machines (:mod:`planrun.board.shared`).

Read-only: it opens the store read-only and never takes the state lock, so it shows a run
while ``apply`` writes it, and after. It listens on loopback unless another address is
asked for (then it warns: the board has no login). Port 0 picks a free port. It prints the
URL, serves until SIGINT or SIGTERM, and exits 0.

The plan is loaded for its declared secrets: their values, where this environment has
them, are masked in everything the board sends (logs were already masked when written).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import trio

from planrun.core.loopback import is_loopback
from planrun.errors import UsageError

if TYPE_CHECKING:
    from planrun.board.source import BoardSource
    from planrun.plan.resolved import CompiledPlan

DEFAULT_LISTEN = "127.0.0.1:8642"


def run_board(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.core.redact import Redactor
    from planrun.plan.load import load_plan
    from planrun.run.environment import secret_values

    host, port = parse_listen(args.listen or DEFAULT_LISTEN)
    plan = load_plan(Path(args.plan))
    redact = Redactor(secret_values(plan, os.environ)).redact
    source = _source(args, plan)
    loopback = is_loopback(host)
    if not loopback:
        print(
            f"planrun board: warning: listening on {host}, not loopback: anyone who can reach"
            " this address reads the run (task titles, reasons, logs); the board has no login",
            file=sys.stderr,
        )
    trio.run(_serve, source, redact, host, port, loopback, out)
    return 0


def _source(args: argparse.Namespace, plan: CompiledPlan) -> BoardSource:
    """The run to show: a shared run (``--store``/``$PLANRUN_STORE``) or the state folder's."""
    from planrun.board.source import Source
    from planrun.commands.shared_views import store_url
    from planrun.state.locate import locate

    url = store_url(args)
    if url is not None:
        from planrun.board.shared import SharedSource
        from planrun.state.open import redacted

        words = (args.plan, "--store", redacted(url))  # the password is never shown
        return SharedSource(url, plan, args.run, words)
    folder = ("--state-dir", str(args.state_dir)) if args.state_dir else ()
    return Source(locate(args.plan, args.state_dir), args.run, (args.plan, *folder))


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; ``:PORT`` is loopback) → (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {text}: expected HOST:PORT, e.g. 127.0.0.1:8642 (port 0: any)")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    return host, int(port_text)


async def _serve(
    source: BoardSource,
    redact: Callable[[str], str],
    host: str,
    port: int,
    loopback: bool,
    out: TextIO,
) -> None:
    from planrun.board.app import HEADERS, BoardApp
    from planrun.board.http import Server
    from planrun.board.render import Renderer

    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as error:
        raise UsageError(
            f"--listen {host}:{port}: cannot listen there ({error.strerror})"
        ) from None
    bound = listeners[0].socket.getsockname()
    actual = bound[1]
    app = BoardApp(source, Renderer(redact), redact, loopback_only=loopback)
    shown = f"[{host}]" if ":" in host else host
    print(f"planrun board: http://{shown}:{actual}/  (Ctrl-C stops it)", file=out, flush=True)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
            nursery.start_soon(Server(app, HEADERS).serve, listeners)
    finally:
        source.close()
    print("planrun board: stopped", file=out, flush=True)


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return

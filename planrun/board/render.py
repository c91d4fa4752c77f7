"""The board's HTML, rendered with Jinja2 from the templates beside this module.

Two rules hold for every page and every fragment sent as an event:

- **autoescape**: every value is HTML-escaped (task titles, reasons, keys, log lines are
  data written by tasks and agents, hostile or not);
- **redaction**: every value passes :meth:`planrun.core.redact.Redactor.redact` first
  (Jinja2's ``finalize``), so a declared secret cannot reach the page whatever field it
  hides in; then :func:`planrun.core.redact.visible` drops escape sequences and control
  characters (a reason may quote an agent's question), as ``planrun logs`` does.

Pages load one stylesheet and one script from ``/static/`` and hold no inline script or
style, so the Content Security Policy (:data:`CSP`) can forbid both.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from planrun.board import graph
from planrun.board.snapshot import COLUMNS, Board, TaskPage, task_href
from planrun.core.redact import visible
from planrun.report.figures import cost_text, duration_text, tokens_text
from planrun.state.queries import elapsed_s

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"

#: Cards shown per column; the rest are counted (a column of 10,000 done tasks would make
#: every update of the page megabytes long). Each task's page is still at /task/KEY.
MAX_CARDS = 200

#: No inline script or style, nothing from elsewhere, no frames, no forms.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Renderer:
    """Renders the board's pages with ``redact`` applied to every value."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        def finalize(value: Any) -> Any:
            if isinstance(value, markupsafe.Markup):  # a fragment rendered here: HTML
                return markupsafe.Markup(redact(str(value)))
            return visible(redact(value)) if isinstance(value, str) else value

        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            finalize=finalize,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            duration=duration_text, tokens=tokens_text, cost=cost_text, when=when
        )
        self.env.globals.update(task_href=task_href, took=took, used_tokens=used_tokens)

    def page(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    def board(self, board: Board | None, waiting_for: str) -> str:
        """The board's live part (the whole page embeds it)."""
        drawing = None
        if board is not None:
            drawing = graph.draw(board.planned, board.statuses(), task_href)
        return self.page(
            "_board.html",
            board=board,
            columns=COLUMNS,
            drawing=drawing,
            waiting_for=waiting_for,
            max_cards=MAX_CARDS,
        )

    def task(self, page: TaskPage | None, key: str) -> str:
        """A task page's live part (its log is sent apart, line by line)."""
        return self.page("_task.html", page=page, key=key)


def took(started_at: str | None, ended_at: str | None) -> float | None:
    """An attempt's duration so far."""
    return elapsed_s(started_at, ended_at, time.time())


def used_tokens(usage: dict[str, Any] | None) -> int | None:
    """Input plus output tokens of an attempt's usage; None when it reported none."""
    if not usage:
        return None
    return int((usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0))


def when(stamp: str | None) -> str:
    """A store time as ``2026-12-06 14:23:19Z``; ``-`` when None."""
    if not stamp:
        return "-"
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")

"""The summary every run ends with (SPEC §6): what failed and why, with its last output
lines, what was skipped and because of what, what waits for a person and the command that
lets it go on, the totals, the wall time and what the agents used.

It is built once as :class:`Line` and :class:`Tail` items; the live view prints them with
colours, the plain view as text (a tail in a ``::group::`` under GitHub Actions).
"""

from __future__ import annotations

from planrun.core.frozen import frozen
from planrun.ui.hints import Hints
from planrun.ui.model import IN_REVIEW, NEEDS_INPUT, Ended, RunView, shown

#: how many tasks a section names before it only counts the rest
MOST_NAMED = 20
#: how many lines of a failed task's output the summary shows (the report keeps more)
TAIL_SHOWN = 5

STYLES = {
    "done": "green",
    "succeeded": "bold green",
    "failed": "bold red",
    "interrupted": "bold red",
    "skipped": "yellow",
    "cancelled": "dim",
    "running": "cyan",
    "retrying": "yellow",
    "waiting for a slot": "yellow",
    NEEDS_INPUT: "bold magenta",
    IN_REVIEW: "bold blue",
    "dry run": "bold yellow",
}


@frozen
class Line:
    text: str
    style: str = ""  # a rich style; the plain view ignores it
    indent: int = 0


@frozen
class Tail:
    """The last lines a failed task printed (all the report kept; views cut them)."""

    key: str
    lines: tuple[str, ...]


Item = Line | Tail


def duration(seconds: float) -> str:
    """``7.2s``, ``4m05s``, ``1h02m``: a wall time, short."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def last_line(tail: tuple[str, ...]) -> str:
    """The last line of output that says something ('' if none)."""
    for line in reversed(tail):
        if line.strip():
            return shown(line, 200)
    return ""


def final_summary(view: RunView, hints: Hints, *, dry_run: bool = False) -> list[Item]:
    """The sections, then the verdict last: on a short screen, what scrolls away first is
    the detail, never the outcome."""
    items = _failed(view, hints)
    items += _named(view.with_status("skipped", "cancelled"), "not run", "yellow", hints)
    if view.with_status("cancelled"):
        items.append(Line(f"to run what was cancelled: {hints.apply()}", "dim", 2))
    items += _waiting(view, hints)
    return [*items, _title(view, dry_run), Line(_totals(view), indent=2)]


def _title(view: RunView, dry_run: bool) -> Line:
    status = view.status or "stopped"
    text = f"planrun {view.plan}: {status} in {duration(view.elapsed())}"
    if dry_run:
        text += " (dry run: nothing was run, nothing changed)"
    return Line(text, STYLES.get(status, "bold"))


def _totals(view: RunView) -> str:
    counts = view.finished_counts()
    parts = [f"{n} {status.replace('_', ' ')}" for status, n in counts.items()]
    tasks = f"{view.total} task{'' if view.total == 1 else 's'}"
    text = f"{tasks}: {', '.join(parts) or 'none finished'}"
    if view.tokens:
        text += f"; {view.tokens:,} tokens"
    if view.cost_usd is not None:
        text += f", ${view.cost_usd:.4f}"
    return text


def _failed(view: RunView, hints: Hints) -> list[Item]:
    failed = view.with_status("failed")
    if not failed:
        return []
    items: list[Item] = [Line(f"failed ({len(failed)}):", "bold red")]
    for ended in failed[:MOST_NAMED]:
        items.append(Line(f"{ended.key}: {shown(ended.reason or 'failed')}", "red", 2))
        if ended.tail:
            items.append(Tail(ended.key, ended.tail))
        items.append(Line(f"more: {hints.logs(ended.key)}", "dim", 4))
        if ended.outcome == "needs_input":
            items.append(Line(f"answer: {hints.answer(ended.key)}", "magenta", 4))
            items.append(Line(f"then: {hints.apply()}", "magenta", 4))
    items += _more(len(failed), hints)
    return items


def _named(ended: list[Ended], heading: str, style: str, hints: Hints) -> list[Item]:
    if not ended:
        return []
    items: list[Item] = [Line(f"{heading} ({len(ended)}):", f"bold {style}")]
    for task in ended[:MOST_NAMED]:
        items.append(Line(f"{task.key}: {task.status}: {shown(task.reason)}", style, 2))
    return items + _more(len(ended), hints)


def _waiting(view: RunView, hints: Hints) -> list[Item]:
    asking, review = view.waiting(NEEDS_INPUT), view.waiting(IN_REVIEW)
    if not asking and not review:
        return []
    items: list[Item] = [Line(f"waiting for you ({len(asking) + len(review)}):", "bold magenta")]
    for task in asking[:MOST_NAMED]:
        items.append(Line(f"{task.key} asks: {shown(task.question)}", STYLES[NEEDS_INPUT], 2))
        items.append(Line(f"answer: {hints.answer(task.key)}", "", 4))
    for task in review[:MOST_NAMED]:
        items.append(Line(f"{task.key}: {shown(task.reason or IN_REVIEW)}", STYLES[IN_REVIEW], 2))
        items.append(Line(f"approve: {hints.approve(task.key)}", "", 4))
    return items + _more(max(len(asking), len(review)), hints)


def _more(count: int, hints: Hints) -> list[Item]:
    if count <= MOST_NAMED:
        return []
    return [Line(f"… and {count - MOST_NAMED} more: {hints.status()}", "dim", 2)]

"""What a tracker item should show at each moment of its task (pure: no I/O).

A moment is ``started`` (the task's first attempt in a run began), ``done`` or ``failed``
(failed, skipped or cancelled). For each, the plan's ``status`` mapping names a label and
whether to close the item. The status comment is one per item and task, found again by a
hidden marker (:func:`marker`) and edited in place; its text is redacted by the caller's
redactor and holds tracker or agent text only inside a code fence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any, Literal

from planrun.core.frozen import frozen
from planrun.plan.model import StatusChange, Tracker, TrackerStatus

Moment = Literal["started", "done", "failed"]
MOMENTS: tuple[Moment, ...] = ("started", "done", "failed")
#: The most characters of a reason a comment quotes.
REASON_LIMIT = 2000


@frozen
class Intent:
    """One status update for a tracker item, as the outbox records it."""

    tracker: str
    ref: str  # the item in the tracker's API: a GitHub number, a Plane id, a Jira key
    item_key: str  # owner/repo#42, ENG-12, ABC-7: for people
    task: str  # the task's key
    plan: str
    moment: Moment
    run_id: str
    at: str
    branch: str | None = None
    commit: str | None = None
    reason: str = ""

    def as_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Intent:
        fields = {name: data.get(name) for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in fields.items() if v is not None})

    @property
    def item(self) -> tuple[str, str, str]:
        """Which comment this intent writes: one per tracker item and task."""
        return (self.tracker, self.ref, self.task)


#: What each kind shows at each moment when the plan's ``status`` does not say.
DEFAULTS: dict[str, dict[str, StatusChange]] = {
    "github": {
        "started": StatusChange(label="planrun:running"),
        "done": StatusChange(label="planrun:done"),
        "failed": StatusChange(label="planrun:failed"),
    },
    "plane": {
        "started": StatusChange(state="started"),
        "done": StatusChange(state="completed"),
        "failed": StatusChange(),
    },
    "jira": {
        "started": StatusChange(state="In Progress"),
        "done": StatusChange(state="Done"),
        "failed": StatusChange(),
    },
}


def change_for(tracker: Tracker, moment: Moment) -> StatusChange:
    """What the tracker's items show at ``moment``: the plan's mapping, else the default."""
    written: StatusChange | None = getattr(tracker.status or TrackerStatus(), moment)
    return written if written is not None else DEFAULTS[tracker.kind][moment]


def managed_labels(tracker: Tracker) -> frozenset[str]:
    """The status labels planrun sets on the tracker's items (none without ``status``)."""
    if tracker.status is None:
        return frozenset()
    changes = (change_for(tracker, moment) for moment in MOMENTS)
    return frozenset(c.label for c in changes if c.label)


def labels_after(
    current: Iterable[str], managed: frozenset[str], change: StatusChange
) -> list[str]:
    """The item's labels once it shows ``change``: planrun's other status labels removed,
    the person's own labels kept, in their order."""
    kept = [label for label in current if label not in managed]
    if change.label is not None:
        kept.append(change.label)
    return kept


def marker(plan: str, task: str) -> str:
    """The hidden line that identifies planrun's status comment of ``task`` of ``plan``."""
    digest = hashlib.sha256(f"{plan}\0{task}".encode()).hexdigest()[:20]
    return f"<!-- planrun:status:{digest} -->"


_WORDS = {"started": "in progress", "done": "done", "failed": "failed"}


def comment_body(intent: Intent, redact: Callable[[str], str]) -> str:
    """The status comment's Markdown: the marker, then what happened, redacted."""
    lines = [
        marker(intent.plan, intent.task),
        f"**planrun**: task `{_code(intent.task)}` of plan `{_code(intent.plan)}` is "
        f"**{_WORDS[intent.moment]}** (run `{_code(intent.run_id)}`, {intent.at}).",
    ]
    if intent.branch:
        lines.append(f"- branch: `{_code(intent.branch)}`")
    if intent.commit:
        lines.append(f"- landed commit: `{_code(intent.commit)}`")
    if intent.reason and intent.moment != "started":
        lines += ["", fenced(intent.reason[:REASON_LIMIT])]
    return redact("\n".join(lines))


def fenced(text: str) -> str:
    """``text`` in a Markdown code fence no backtick run in it can close: shown as data."""
    fence = "`" * max(3, _longest_backticks(text) + 1)
    return f"{fence}text\n{text}\n{fence}"


def _code(text: str) -> str:
    """Text for an inline code span: no backticks, one line."""
    return re.sub(r"[`\r\n]", "?", text)


def _longest_backticks(text: str) -> int:
    runs = re.findall(r"`+", text)
    return max((len(run) for run in runs), default=0)

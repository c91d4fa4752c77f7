"""What a changeset should be, as the publisher records it (pure: no I/O).

A :class:`Proposal` is recorded in the store (a ``changeset_intent`` event) when a
project's tasks and checks have all finished: ``verified`` when every one of them is
done, else with the reason nothing is published. Its delivery's :class:`Result` is
recorded as a ``changeset_delivered`` event naming the proposals it settles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, field
from typing import Any

from planrun.core.frozen import frozen

INTENT_EVENT = "changeset_intent"
DELIVERED_EVENT = "changeset_delivered"
#: Delivery states that wrote to GitHub (they count against ``changesets.per_hour``).
WRITES = frozenset({"opened", "updated"})
#: Every state a changeset can be recorded in, as ``planrun changesets`` shows them.
STATES = (
    "unpublished",  # published: false; nothing left the machine
    "opened",  # a PR was opened by this delivery
    "updated",  # planrun's PR was found and brought up to date
    "unchanged",  # planrun's PR already showed this
    "closed",  # a person closed the PR: left closed, never reopened
    "merged",  # done
    "exists",  # a PR for the branch that planrun did not open: left alone
    "no_diff",  # the work changes nothing against the base branch
    "failed",  # tasks or checks failed, or the push or PR could not be made
    "conflicted",  # rebasing on a moved base conflicted and no agent resolved it
    "budget_exceeded",  # a task's budget ran out: its partial work is kept, not published
)


@frozen
class Proposal:
    """One project's changeset as the run wants it."""

    plan: str
    project: str
    repo: str
    remote: str
    branch: str
    base: str
    target: str  # the project's integration branch: its tip is what is proposed
    path: str  # the project's repository on this machine
    published: bool | str
    title: str
    body: str
    labels: tuple[str, ...]
    reviewers: tuple[str, ...]
    run_id: str
    at: str
    verified: bool = True
    reason: str = ""
    commit: str | None = None
    tasks: tuple[str, ...] = field(default=())
    outcome: str = "failed"  # what an unverified proposal is recorded as (budget_exceeded)
    commit_message: str | None = None  # rendered: one squashed commit is proposed
    task: str | None = None  # a task's own changeset: only its landings are proposed

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"], data["reviewers"], data["tasks"] = (
            list(self.labels),
            list(self.reviewers),
            list(self.tasks),
        )
        return data

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Proposal:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for name in ("labels", "reviewers", "tasks"):
            values[name] = tuple(values.get(name) or ())
        return cls(**values)


@frozen
class Result:
    """How a delivery left the changeset."""

    state: str
    number: int | None = None
    url: str = ""
    pushed: bool = False
    commit: str | None = None
    detail: str = ""
    base: str | None = None  # the base's commit the proposed branch is on (its merge base)


def marker(plan: str, project: str) -> str:
    """The hidden line by which planrun knows its own PR for ``project`` of ``plan``."""
    digest = hashlib.sha256(f"{plan}\0{project}".encode()).hexdigest()[:20]
    return f"<!-- planrun:changeset:{digest} -->"


def default_body(tasks: list[dict[str, Any]]) -> str:
    """planrun's own PR body: one line per task and check of the project. A title may
    come from an issue anyone could open: it pings nobody and holds no HTML."""
    lines = ["Made by planrun. The tasks and checks of this change:", ""]
    for task in tasks:
        title = _inert(str(task["title"]))
        lines.append(f"- `{_code(task['key'])}` {title}: **{task['status']}**")
    return "\n".join(lines)


def _inert(text: str) -> str:
    """One line of Markdown text that mentions no one (``@``) and opens no HTML (``<``)."""
    line = " ".join(text.split())
    return line.replace("<", "&lt;").replace("@", "@\u200b")


def full_body(body: str, plan: str, project: str, redact: Callable[[str], str]) -> str:
    """The body GitHub gets: redacted, with planrun's marker as its last line."""
    return f"{redact(body).rstrip()}\n\n{marker(plan, project)}"


def _code(text: str) -> str:
    return str(text).replace("`", "?").replace("\n", " ")

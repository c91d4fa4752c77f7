"""The ``trackers:`` section and a tracker fan-out's ``select`` (SPEC §8, docs/trackers.md).

Part of the plan's models (:mod:`planrun.plan.model` imports them); each field's docstring
is its documentation, as there. A tracker is a named connection to an issue tracker; its
credentials are declared secrets (``settings.secrets``), read by planrun only and never
given to a task's session.
"""

# No ``from __future__ import annotations``: see planrun/plan/model.py.

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from planrun.plan.values import EnvName, NonEmptyStr

#: ``owner/name`` of a GitHub repository.
RepoName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
#: A label as a tracker takes it: one line, no commas (GitHub joins labels with commas).
Label = Annotated[str, StringConstraints(pattern=r"^[^,\n\r]{1,100}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StatusChange(_Model):
    """What planrun sets on an item at one moment of its task."""

    label: Label | None = None
    """The status label the item gets (planrun removes its other status labels)."""
    close: bool = False
    """Close the item (GitHub: state closed, reason completed)."""


class TrackerStatus(_Model):
    """Status written back to the tracker's items (opt-in: only with this section)."""

    started: StatusChange = Field(default_factory=lambda: StatusChange(label="planrun:running"))
    """When the task's first attempt starts (default: label `planrun:running`)."""
    done: StatusChange = Field(default_factory=lambda: StatusChange(label="planrun:done"))
    """When the task is done (default: label `planrun:done`; `close: true` closes it)."""
    failed: StatusChange = Field(default_factory=lambda: StatusChange(label="planrun:failed"))
    """When the task failed, was skipped or cancelled (default: label `planrun:failed`)."""
    comment: bool = True
    """Keep one status comment per item (edited in place) with branch, commit and result."""


class Tracker(_Model):
    """A connection to an issue tracker, whose items tasks can fan out over."""

    kind: Literal["github"]
    """The tracker: `github` (GitHub Issues)."""
    repo: RepoName
    """The repository whose issues are read, as `owner/name`."""
    token: EnvName
    """The environment variable holding the API token; it must be in `settings.secrets`
    (redacted everywhere, never given to a task's session)."""
    url: NonEmptyStr = "https://api.github.com"
    """The API's base URL (GitHub Enterprise: `https://HOST/api/v3`)."""
    status: TrackerStatus | None = None
    """Write each task's status back to its item (labels, one comment); off without it."""


class TrackerSelect(_Model):
    """Which items of a tracker a `for_each` fans out over (all conditions hold)."""

    labels: list[Label] | None = None
    """Items carrying every one of these labels."""
    state: Literal["open", "closed", "all"] = "open"
    """Open items (the default), closed ones, or both."""
    assignee: NonEmptyStr | None = None
    """Items assigned to this user (`none`: unassigned, `*`: assigned to anyone)."""
    limit: Annotated[int, Field(ge=1, le=10_000)] = 500
    """At most this many items, oldest first (an error names the tracker when there are
    more)."""

"""The ``trackers:`` section and a tracker fan-out's ``select`` (SPEC §8, docs/trackers.md).

A tracker is one of :class:`GitHubTracker`, :class:`PlaneTracker`, :class:`JiraTracker`,
told apart by ``kind``.

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
    """GitHub: the status label the item gets (planrun removes its other status labels)."""
    close: bool = False
    """GitHub: close the item (state closed, reason completed)."""
    state: NonEmptyStr | None = None
    """Plane: the state (by name, or a state group: `started`, `completed`...) the item
    moves to; Jira: the status to transition to (by name, e.g. `In Progress`)."""


class TrackerStatus(_Model):
    """Status written back to the tracker's items (opt-in: only with this section). A
    moment left out takes its tracker's default (docs/trackers.md)."""

    started: StatusChange | None = None
    """When the task's first attempt starts (GitHub: label `planrun:running`; Plane:
    group `started`; Jira: `In Progress`)."""
    done: StatusChange | None = None
    """When the task is done (GitHub: label `planrun:done`; Plane: group `completed`;
    Jira: `Done`)."""
    failed: StatusChange | None = None
    """When the task failed, was skipped or cancelled (GitHub: label `planrun:failed`;
    Plane and Jira: no change but the comment)."""
    comment: bool = True
    """Keep one status comment per item (edited in place) with branch, commit and result."""


class _TrackerBase(_Model):
    token: EnvName
    """The environment variable holding the API token; it must be in `settings.secrets`
    (redacted everywhere, never given to a task's session)."""
    status: TrackerStatus | None = None
    """Write each task's status back to its item (labels or states, one comment); off
    without it."""


class GitHubTracker(_TrackerBase):
    """GitHub Issues of one repository."""

    kind: Literal["github"]
    """`github`: GitHub Issues."""
    repo: RepoName
    """The repository whose issues are read, as `owner/name`."""
    url: NonEmptyStr = "https://api.github.com"
    """The API's base URL (GitHub Enterprise: `https://HOST/api/v3`)."""


class PlaneTracker(_TrackerBase):
    """The work items of one Plane project (an API key: `X-Api-Key`)."""

    kind: Literal["plane"]
    """`plane`: Plane work items."""
    workspace: NonEmptyStr
    """The workspace's slug (as in its URLs)."""
    project: NonEmptyStr
    """The project's id (a UUID)."""
    url: NonEmptyStr = "https://api.plane.so"
    """The API's origin (self-hosted Plane: its address)."""


class JiraTracker(_TrackerBase):
    """The issues of a Jira Cloud site (Basic auth: an account's email and API token)."""

    kind: Literal["jira"]
    """`jira`: Jira Cloud issues."""
    url: NonEmptyStr
    """The site, e.g. `https://acme.atlassian.net`."""
    email: NonEmptyStr
    """The account the API token belongs to."""
    project: NonEmptyStr | None = None
    """A project key (`ABC`) that limits the search, unless `select.jql` says it all."""


Tracker = Annotated[GitHubTracker | PlaneTracker | JiraTracker, Field(discriminator="kind")]


class TrackerSelect(_Model):
    """Which items of a tracker a `for_each` fans out over (all conditions hold)."""

    labels: list[Label] | None = None
    """Items carrying every one of these labels."""
    state: Literal["open", "closed", "all"] = "open"
    """Open items (the default), closed ones, or both (Plane: closed is a state of the
    completed or cancelled groups; Jira: of the Done category)."""
    assignee: NonEmptyStr | None = None
    """GitHub: items assigned to this user (`none`: unassigned, `*`: to anyone)."""
    jql: NonEmptyStr | None = None
    """Jira: the search, in JQL, instead of project, state and labels."""
    limit: Annotated[int, Field(ge=1, le=10_000)] = 500
    """At most this many items, oldest first (more is an error that names the tracker,
    never a silent cut)."""

"""The ``agents:`` section: a Plane agent that answers @mentions (docs/plane-agent.md).

An agent is an OAuth app with app mentions on a Plane workspace; under ``planrun serve``
each mention of it on a work item becomes one task of the task that fans out over it
(``for_each: {agent: NAME}``). Part of the plan's models (:mod:`planrun.plan.model`
imports them); each field's docstring is its documentation, as there. Every credential
is a declared secret (``settings.secrets``), read by planrun only and never given to a
task's session.
"""

# No ``from __future__ import annotations``: see planrun/plan/model.py.

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from planrun.plan.values import Duration, EnvName, NonEmptyStr

#: ``HOST:PORT`` the webhook server listens on.
Listen = Annotated[
    str, StringConstraints(pattern=r"^[^\s:]+:[0-9]{1,5}$|^\[[0-9a-fA-F:]+\]:[0-9]{1,5}$")
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AgentWebhook(_Model):
    """Take Plane's webhooks (opt-in: polling alone works, and stays the reconciler)."""

    secret: EnvName
    """The environment variable holding the webhook secret Plane signs with (HMAC-SHA256
    over the body); it must be in `settings.secrets`."""
    path: EnvName
    """The environment variable holding the secret last part of the webhook's path
    (`/plane/<it>`, at least 16 characters): an unguessable address; in `settings.secrets`."""
    listen: Listen = "127.0.0.1:8787"
    """`HOST:PORT` the server binds; behind a TLS proxy on the same machine (the default,
    loopback). Another address needs `public: true`."""
    public: bool = False
    """Allow `listen` on an address other than loopback (you answer for TLS and exposure)."""


class PlaneAgent(_Model):
    """A Plane agent (an OAuth app with app mentions) whose mentions become tasks."""

    kind: Literal["plane"]
    """`plane`: a Plane agent (Plane Cloud, or a commercial edition: agent runs are not in
    the open-source server)."""
    url: NonEmptyStr = "https://api.plane.so"
    """The API's origin (a self-hosted commercial Plane: its address)."""
    client_id: EnvName
    """The environment variable holding the OAuth app's client id; in `settings.secrets`."""
    client_secret: EnvName
    """The environment variable holding the OAuth app's client secret (bot tokens come from
    it by client credentials, refreshed before they expire); in `settings.secrets`."""
    installation: NonEmptyStr
    """The app installation's id (`app_installation_id`, given when a workspace admin
    installed the app)."""
    allow: Annotated[list[NonEmptyStr], Field(min_length=1)]
    """Who may start a run or answer its questions: Plane user ids, or e-mail addresses of
    workspace members. A mention by anyone else gets an `error` activity and runs nothing;
    their replies on others' runs are ignored."""
    poll: Annotated[Duration, Field(gt=0)] = 10.0
    """How often the agent runs' activity feed is read (mentions, replies, stop requests);
    webhooks only make it faster."""
    heartbeat: Annotated[Duration, Field(ge=10, le=240)] = 240.0
    """While a task runs, a `thought` at least this often (Plane marks a run `stale` after 5
    minutes without one); at most `4m`."""
    progress: Duration = 30.0
    """At most one progress `thought` per run this often (its latest output line)."""
    limit: Annotated[int, Field(ge=200, le=20_000)] = 4000
    """The most characters of one activity's text (longer is cut, and says so)."""
    follow_ups: bool = True
    """A reply on a finished run runs its task again, the reply added to `item.replies`
    (on the same branch)."""
    webhook: AgentWebhook | None = None
    """Take Plane's agent webhooks too (docs/plane-agent.md); polling only without it."""

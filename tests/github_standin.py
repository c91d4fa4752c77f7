"""A stand-in for GitHub's REST API on 127.0.0.1, for the tracker tests: real HTTP.

It serves the endpoints planrun uses (tests/test_trackers*.py) and holds issues and
comments in memory. Every request body is validated with githubkit's request models and
every answer built through githubkit's response models (``githubkit_schemas``, generated
from GitHub's OpenAPI description), so the stand-in refuses what GitHub refuses and
answers what GitHub answers; a request it does not know is a 404 and is recorded in
``problems`` (the test then fails). Faults on demand: write failures (503), rate limits
(403 with ``x-ratelimit-*``, 429 with ``Retry-After``) and a write held until released.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from githubkit_schemas.latest import models as gh
from pydantic import BaseModel, ValidationError

from tests.standin_http import serve_with

STAMP = "2026-12-06T10:00:00Z"
PER_PAGE_MAX = 100


def _user(login: str) -> dict[str, Any]:
    base = f"https://api.github.com/users/{login}"
    return gh.SimpleUser(
        login=login,
        id=abs(hash(login)) % 10**6,
        node_id=f"U_{login}",
        avatar_url=f"https://avatars.example/{login}",
        gravatar_id="",
        url=base,
        html_url=f"https://github.com/{login}",
        followers_url=f"{base}/followers",
        following_url=f"{base}/following{{/other_user}}",
        gists_url=f"{base}/gists{{/gist_id}}",
        starred_url=f"{base}/starred{{/owner}}{{/repo}}",
        subscriptions_url=f"{base}/subscriptions",
        organizations_url=f"{base}/orgs",
        repos_url=f"{base}/repos",
        events_url=f"{base}/events{{/privacy}}",
        received_events_url=f"{base}/received_events",
        type="User",
        site_admin=False,
    ).model_dump(mode="json", by_alias=True, exclude_unset=True)


@dataclass
class Standin:
    """The stand-in's data and faults; ``url`` once started (:func:`serve`)."""

    repo: str = "acme/api"
    token: str = "ghp_standin_token_0123456789"
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fail_writes: int = 0  # answer this many write requests with 503
    fail_reads: int = 0  # ... and reads
    rate_limited: int = 0  # answer this many requests with a rate limit
    rate_limit_status: int = 403
    odd_answers: int = 0  # answer this many reads of one issue with a list (a broken proxy)
    hold_writes: threading.Event | None = None  # set: writes go through
    hold_when: str = ""  # hold only the writes whose body holds this text
    held: threading.Event = field(default_factory=threading.Event)  # a write is waiting
    drop_held: bool = False  # a held write, once released, is refused (it never happened)
    url: str = ""
    repos: list[str] = field(default_factory=list)  # more repositories served (pulls)
    bare: dict[str, Any] = field(default_factory=dict)  # repository → its bare git folder
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    reviews: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by head sha
    topics: dict[str, list[str]] = field(default_factory=dict)  # repository → its topics
    archived: set[str] = field(default_factory=set)  # archived repositories
    review_comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    graphql: list[dict[str, Any]] = field(default_factory=list)  # requests to /graphql
    login: str = "planrun-bot"  # the token's user (GET /user)
    no_push: set[str] = field(default_factory=set)  # repositories the token cannot push to
    forks: dict[str, str] = field(default_factory=dict)  # fork → the repository forked
    unready: dict[str, int] = field(default_factory=dict)  # fork → GETs still answered 404
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1000

    # ------------------------------------------------------------ data

    def add_issue(self, number: int, title: str, body: str = "", **extra: Any) -> None:
        api = f"https://api.github.com/repos/{self.repo}/issues/{number}"
        issue = {
            "id": 10_000 + number,
            "node_id": f"I_{number}",
            "url": api,
            "repository_url": f"https://api.github.com/repos/{self.repo}",
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"https://github.com/{self.repo}/issues/{number}",
            "number": number,
            "state": "open",
            "title": title,
            "body": body,
            "user": _user(extra.pop("author", "octocat")),
            "labels": [self.label(n) for n in extra.pop("labels", [])],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "comments": 0,
            "closed_at": None,
            "created_at": STAMP,
            "updated_at": STAMP,
            **extra,
        }
        self.issues[number] = _valid(gh.Issue, issue)

    def label(self, name: str) -> dict[str, Any]:
        return {
            "id": abs(hash(name)) % 10**6,
            "node_id": f"L_{name}",
            "url": f"https://api.github.com/repos/{self.repo}/labels/{name}",
            "name": name,
            "description": None,
            "color": "ededed",
            "default": False,
        }

    def labels_of(self, number: int) -> list[str]:
        return [label["name"] for label in self.issues[number]["labels"]]

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        suffix = f"/issues/{number}"
        return [c for c in self.comments.values() if c["issue_url"].endswith(suffix)]

    def pulls_of(self, repo: str) -> list[dict[str, Any]]:
        return [p for (r, _), p in sorted(self.pulls.items()) if r == repo]

    def close_pull(self, repo: str, number: int) -> None:
        """A person closes the PR on GitHub."""
        with self.lock:
            self.pulls[(repo, number)].update(state="closed", closed_at=STAMP)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET"]


def _valid(model: type[BaseModel], data: Any) -> dict[str, Any]:
    """``data`` as ``model`` accepts it, or an AssertionError naming what is wrong."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise AssertionError(f"the stand-in built an invalid {model.__name__}: {exc}") from exc
    return dict(data)


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@contextmanager
def serve(standin: Standin) -> Iterator[Standin]:
    """Run ``standin`` on 127.0.0.1 (a free port) while the block runs."""
    from tests.github_routes import Handler

    with serve_with(standin, Handler):
        try:
            yield standin
        finally:  # a write held until released would keep the server from stopping
            if standin.hold_writes is not None:
                standin.hold_writes.set()

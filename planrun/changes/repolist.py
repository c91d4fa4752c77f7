"""The repositories a GitHub query selects, for a project's ``repositories:``.

Endpoints (REST, through the trackers' HTTP client: one path for errors and rate
limits): ``GET /orgs/{org}/repos`` (every page; ``topic`` then chooses among them) and
``GET /search/repositories?q=...`` (``topic`` alone is the search ``topic:NAME``).
Archived repositories are left out: nothing can be proposed to them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from planrun.changes.pulls import API_VERSION, PER_PAGE
from planrun.core.frozen import frozen
from planrun.plan.expand import ItemError
from planrun.trackers.http import Http, TrackerError, with_waits

if TYPE_CHECKING:
    from planrun.plan.repomodel import Repositories


@frozen
class Found:
    """A repository as the query answered it."""

    name: str  # owner/name
    clone_url: str
    default_branch: str | None


@frozen
class Query:
    """What a ``repositories:`` query asks (one of org, topic, search; org with topic)."""

    org: str | None
    topic: str | None
    search: str | None
    url: str
    limit: int


def query_repositories(query: Query, token: str) -> list[Found]:
    """The repositories ``query`` selects, in GitHub's order; TrackerError when GitHub
    cannot be asked or answers more than ``query.limit``."""
    http = Http(
        "github repositories",
        query.url,
        {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "planrun",
        },
    )
    try:
        return with_waits(lambda: _collect(http, query))
    finally:
        http.close()


def _collect(http: Http, query: Query) -> list[Found]:
    found: list[Found] = []
    for row in _rows(http, query):
        if row.get("archived") or row.get("disabled"):
            continue
        if query.org and query.topic and query.topic not in (row.get("topics") or ()):
            continue
        found.append(Found(str(row["full_name"]), str(row["clone_url"]), row.get("default_branch")))
        if len(found) > query.limit:
            raise TrackerError(
                f"the query selects more than {query.limit} repositories (raise limit:)"
            )
    return found


def _rows(http: Http, query: Query) -> Iterator[dict[str, Any]]:
    if query.org is not None:
        for page in http.pages(f"/orgs/{query.org}/repos", {"per_page": PER_PAGE}):
            yield from page
        return
    text = query.search if query.search is not None else f"topic:{query.topic}"
    page_number = 1
    while True:
        params = {"q": text, "per_page": PER_PAGE, "page": page_number}
        body = http.json("GET", "/search/repositories", params=params)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise TrackerError("github: GET /search/repositories did not answer items")
        yield from items
        if len(items) < PER_PAGE or page_number * PER_PAGE >= int(body.get("total_count", 0)):
            return
        page_number += 1


def fetch_repositories(project: str, spec: Repositories) -> list[tuple[str, str, str | None]]:
    """What :func:`query_repositories` answers for a project's ``repositories:``, as
    (``owner/name``, clone URL, default branch); ItemError (field ``token`` or
    ``repositories``) when it cannot be read. Called while compiling
    (:class:`planrun.plan.reads.DiskFiles`)."""
    assert spec.token is not None
    token = os.environ.get(spec.token)
    if not token:
        raise ItemError(
            "token",
            f"project {project}: the environment variable {spec.token} (its token) is not set",
        )
    query = Query(spec.org, spec.topic, spec.search, spec.url, spec.limit)
    try:
        found = query_repositories(query, token)
    except TrackerError as exc:
        raise ItemError("repositories", f"project {project}: {exc.message}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # an answer of odd shape
        raise ItemError(
            "repositories", f"project {project}: GitHub answered something unexpected: {exc!r}"
        ) from None
    return [(f.name, f.clone_url, f.default_branch) for f in found]

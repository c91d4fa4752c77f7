"""The repositories a GitHub query selects, for a project's ``repositories:``.

Endpoints (REST, through the trackers' HTTP client: one path for errors and rate
limits): ``GET /orgs/{org}/repos`` (every page; ``topic`` then chooses among them) and
``GET /search/repositories?q=...`` (``topic`` alone is the search ``topic:NAME``).
Archived repositories are left out: nothing can be proposed to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from planrun.changes.pulls import API_VERSION, PER_PAGE
from planrun.trackers.http import Http, TrackerError, with_waits


@dataclass(frozen=True)
class Found:
    """A repository as the query answered it."""

    name: str  # owner/name
    clone_url: str
    default_branch: str | None


@dataclass(frozen=True)
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

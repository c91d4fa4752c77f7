"""Repository listing and search endpoints of the GitHub stand-in (tests/github_standin.py),
for a project's ``repositories:`` query (docs/batch-changes.md).

The organisation's repositories are ``Standin.repos``; one mapped to a bare git folder
(``Standin.bare``) answers that folder as its ``clone_url`` (``file://``), so planrun
clones it for real. ``Standin.topics`` gives repositories topics, ``Standin.archived``
marks some archived. Answers are validated with githubkit's models.
"""

from __future__ import annotations

import re
from typing import Any

from githubkit_schemas.latest import models as gh

from tests.github_pulls import repository
from tests.github_standin import Standin, _Refused, _valid

ORG_REPOS = re.compile(r"^/orgs/(?:[^/]+)/repos$")
SEARCH = re.compile(r"^/search/repositories$")


def repo_data(d: Standin, name: str) -> dict[str, Any]:
    """A repository as the listing endpoints answer it."""
    bare = d.bare.get(name)
    return {
        **repository(name),
        "private": False,
        "clone_url": f"file://{bare}" if bare is not None else f"https://github.com/{name}.git",
        "topics": d.topics.get(name, []),
        "archived": name in d.archived,
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "visibility": "public",
    }


def _matches(d: Standin, name: str, words: list[str]) -> bool:
    for word in words:
        kind, _, value = word.partition(":")
        if kind == "org" and value and name.split("/")[0] != value:
            return False
        if kind == "topic" and value and value not in d.topics.get(name, []):
            return False
        if not value and word not in name:
            return False
    return True


class RepoRoutes:
    data: Standin
    path: str

    def list_org_repos(self, *, query: dict[str, str], body: Any) -> Any:
        org = self.path.split("?")[0].split("/")[2]
        rows = [repo_data(self.data, n) for n in self.data.repos if n.split("/")[0] == org]
        if not rows:
            raise _Refused(404, "Not Found")
        return self._page("repos", rows, query, gh.MinimalRepository)  # type: ignore[attr-defined]

    def search_repos(self, *, query: dict[str, str], body: Any) -> Any:
        words = query.get("q", "").split()
        if not words:
            raise _Refused(422, "Validation Failed: q is missing")
        per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
        found = [
            {**repo_data(self.data, n), "score": 1.0}
            for n in self.data.repos
            if _matches(self.data, n, words)
        ]
        chunk = found[(page - 1) * per_page : page * per_page]
        answer = {"total_count": len(found), "incomplete_results": False, "items": chunk}
        return 200, _valid(gh.SearchRepositoriesGetResponse200, answer), {}


REPO_ROUTES: list[tuple[re.Pattern[str], dict[str, Any]]] = [
    (ORG_REPOS, {"GET": RepoRoutes.list_org_repos}),
    (SEARCH, {"GET": RepoRoutes.search_repos}),
]

"""Repository, user and fork endpoints of the GitHub stand-in (tests/github_standin.py),
for a changeset pushed to a fork (docs/batch-changes.md, "Forks").

``GET /repos/{o}/{r}`` answers the token's ``permissions`` (no push to a repository in
``Standin.no_push``); ``POST /repos/{o}/{r}/forks`` makes the fork a real bare git
repository (a bare clone of the repository's, ``Standin.bare``), answered as its
``clone_url`` (``file://``) so that planrun's push reaches it; a fork already made is
answered again (as GitHub does). A new fork answers 404 to its first
``Standin.unready[fork]`` reads, as GitHub's asynchronous forks do. ``GET /user`` is the
token's user, ``Standin.login``. Answers and bodies are validated with githubkit's models.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

from githubkit_schemas.latest import models as gh

from tests.github_repos import repo_data
from tests.github_standin import STAMP, Standin, _Refused, _user, _valid

REPO = re.compile(r"^/repos/([^/]+/[^/]+)$")
FORKS = re.compile(r"^/repos/([^/]+/[^/]+)/forks$")
USER = re.compile(r"^/user$")
#: How many reads a new fork answers 404 to (GitHub makes forks asynchronously).
UNREADY_READS = 1


def full_repository(d: Standin, name: str) -> dict[str, Any]:
    """``name`` as ``GET /repos/{o}/{r}`` answers it, with the token's permissions."""
    parent = d.forks.get(name)
    data = {
        **repo_data(d, name),
        "fork": parent is not None,
        "has_discussions": False,
        "subscribers_count": 0,
        "network_count": 0,
        "permissions": {
            "admin": False,
            "maintain": False,
            "push": name not in d.no_push,
            "triage": True,
            "pull": True,
        },
    }
    if parent is not None:
        parent_data = {**repo_data(d, parent), "fork": False}
        data.update(parent=parent_data, source=parent_data)
    return data


class ForkRoutes:
    """Mixed into the stand-in's handler: ``self.data`` and ``self.repo`` are set."""

    data: Standin
    repo: str

    def get_repo(self, *, query: dict[str, str], body: Any) -> Any:
        d = self.data
        with d.lock:
            if d.unready.get(self.repo, 0) > 0:
                d.unready[self.repo] -= 1
                raise _Refused(404, "Not Found")
        return 200, _valid(gh.FullRepository, full_repository(d, self.repo)), {}

    def create_fork(self, *, query: dict[str, str], body: Any) -> Any:
        from tests.github_routes import _body

        change = _body(gh.ReposOwnerRepoForksPostBody, body or {})
        d = self.data
        owner = change.get("organization") or d.login
        name = f"{owner}/{change.get('name') or self.repo.split('/')[1]}"
        with d.lock:
            mine = [f for f, p in d.forks.items() if p == self.repo and f.startswith(f"{owner}/")]
            made = mine[0] if mine else None
            if made is None:
                made = name
                upstream = d.bare[self.repo]
                folder = upstream.parent / f"fork-{owner}.git"
                subprocess.run(
                    ["git", "clone", "-q", "--bare", str(upstream), str(folder)], check=True
                )
                d.bare[made], d.forks[made] = folder, self.repo
                d.repos.append(made)
                d.unready[made] = UNREADY_READS
        return 202, _valid(gh.FullRepository, full_repository(d, made)), {}

    def get_user(self, *, query: dict[str, str], body: Any) -> Any:
        login = self.data.login
        user = {
            **_user(login),
            **dict.fromkeys(("name", "company", "blog", "location", "email", "bio"), None),
            "hireable": None,
            **dict.fromkeys(("public_repos", "public_gists", "followers", "following"), 0),
            "created_at": STAMP,
            "updated_at": STAMP,
        }
        return 200, _valid(gh.PublicUser, user), {}


FORK_ROUTES: list[tuple[re.Pattern[str], dict[str, Any]]] = [
    (REPO, {"GET": ForkRoutes.get_repo}),
    (FORKS, {"POST": ForkRoutes.create_fork}),
    (USER, {"GET": ForkRoutes.get_user}),
]

"""Where a changeset's branch is pushed: the repository itself, or a fork of it.

``changeset.fork`` says when a fork is used: ``auto`` (the default) asks GitHub whether
the token may push to the repository (``GET /repos/{o}/{r}``: ``permissions.push``) and
forks only when it may not (or when a push is refused with 403), and once planrun has a
PR, stays where its head is (``GET .../pulls/{n}``); ``always``; ``never``.

A fork is looked for before one is made: ``GET /repos/{me}/{name}`` (``me`` is the
``organization`` asked for, else the token's user, ``GET /user``) answering a fork of
the repository is reused; else ``POST /repos/{o}/{r}/forks`` makes one (GitHub answers
the existing fork when there is one under another name, so this never makes two).
GitHub makes a fork asynchronously: it is polled (``GET /repos/{fork}``) with a backoff
until it answers, within a deadline. The branch is then pushed to the fork's
``clone_url`` (the token as an HTTP header in git's environment, never in argv or the
URL) and the PR is opened on the repository with ``head: "<fork owner>:<branch>"``.
Runs in the publisher's worker thread (synchronous).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from planrun.changes import push as git
from planrun.changes.gitcall import url_auth_env
from planrun.changes.record import Proposal
from planrun.core.frozen import frozen
from planrun.trackers.http import Http, TrackerError

#: Seconds to wait for GitHub to make a fork, and the first and longest pause between
#: looks.
FORK_DEADLINE = 300.0
FORK_POLL = (1.0, 15.0)


@frozen
class ForkPolicy:
    """``changeset.fork``: when the branch goes to a fork, and whose fork it is."""

    when: str = "auto"
    organization: str | None = None


#: The default: a fork only when the token may not push to the repository.
AUTO = ForkPolicy()


@frozen
class Head:
    """Where the PR's branch lives: ``owner`` names it in the PR's ``head``; ``remote``
    (a remote's name or a URL) is what git pushes to, with ``env``; ``fork`` is the
    fork's ``owner/name`` (None: the repository itself)."""

    owner: str
    remote: str
    env: dict[str, str]
    fork: str | None = None

    def label(self, branch: str) -> str:
        return f"{self.owner}:{branch}"


def upstream(proposal: Proposal, token: str) -> Head:
    """The repository itself, through the project's remote."""
    env = git.auth_env(proposal.path, proposal.remote, token)
    return Head(proposal.repo.split("/")[0], proposal.remote, env)


def may_push(http: Http, repo: str) -> bool:
    """Whether the token may push to ``repo`` (GitHub's ``permissions.push``)."""
    answer = http.json("GET", f"repos/{repo}")
    permissions = answer.get("permissions") if isinstance(answer, dict) else None
    return bool((permissions or {}).get("push", True))


def from_fork(pull: dict[str, Any], repo: str) -> bool:
    """Whether ``pull`` (a PR of ``repo``) is opened from another repository (a fork; or
    one deleted since)."""
    head = pull.get("head") or {}
    return str((head.get("repo") or {}).get("full_name") or "") != repo


def fork_owner(http: Http, policy: ForkPolicy) -> str:
    """Who owns the fork: the organization asked for, else the token's user."""
    if policy.organization:
        return policy.organization
    user = http.json("GET", "user")
    return str(user["login"])


def fork_head(
    http: Http,
    repo: str,
    owner: str,
    token: str,
    policy: ForkPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> Head:
    """``owner``'s fork of ``repo``, found or made, once GitHub answers it."""
    found = _existing(http, repo, owner)
    if found is None:
        data = {"organization": policy.organization} if policy.organization else {}
        made = http.json("POST", f"repos/{repo}/forks", json=data)
        found = _ready(http, str(made["full_name"]), sleep)
    url = str(found["clone_url"])
    return Head(str(found["owner"]["login"]), url, url_auth_env(url, token), found["full_name"])


def _existing(http: Http, repo: str, owner: str) -> dict[str, Any] | None:
    """``owner``'s repository named as ``repo``, when it is a fork of it."""
    name = f"{owner}/{repo.split('/')[1]}"
    try:
        answer = http.json("GET", f"repos/{name}")
    except TrackerError as exc:
        if exc.status == 404:
            return None
        raise
    parents = {str((answer.get(k) or {}).get("full_name")) for k in ("parent", "source")}
    return answer if answer.get("fork") and repo in parents else None


def _ready(http: Http, fork: str, sleep: Callable[[float], None]) -> dict[str, Any]:
    """The fork, once GitHub answers it (polled with a backoff, within FORK_DEADLINE)."""
    pause, started = FORK_POLL[0], time.monotonic()
    while True:
        try:
            answer: dict[str, Any] = http.json("GET", f"repos/{fork}")
            return answer
        except TrackerError as exc:
            if exc.status != 404:
                raise
        if time.monotonic() - started + pause > FORK_DEADLINE:
            raise TrackerError(f"github: the fork {fork} was not ready within {FORK_DEADLINE}s")
        sleep(pause)
        pause = min(pause * 2, FORK_POLL[1])

"""GitHub pull requests: the few REST endpoints a changeset needs.

Endpoints (REST, ``X-GitHub-Api-Version: 2022-11-28``), through the trackers' HTTP
client (:class:`planrun.trackers.http.Http`: one path for errors and rate limits):

- ``GET /repos/{o}/{r}/pulls?head=OWNER:BRANCH&state=all`` (a PR for the branch, in
  any state, found before one is opened: a crash between push and creation never makes
  two), ``GET .../pulls/{n}``;
- ``POST .../pulls`` (open, maybe as a draft), ``PATCH .../pulls/{n}`` (title, body;
  ``state: closed``), ``PUT .../pulls/{n}/merge``;
- ``POST .../issues/{n}/labels`` (added: a person's labels stay),
  ``POST .../pulls/{n}/requested_reviewers``, ``POST .../issues/{n}/comments``;
- ``POST /graphql`` ``markPullRequestReadyForReview`` (a draft made ready: REST
  cannot);
- ``GET .../pulls/{n}/reviews`` and ``GET .../commits/{sha}/check-runs`` (its state for
  ``planrun changesets``; with ``GET .../pulls/{n}/comments``, what ``apply --follow-up``
  gives the agent).
"""

from __future__ import annotations

from typing import Any

import httpx

from planrun.trackers.http import Http, TrackerError

API_VERSION = "2022-11-28"
#: Check run conclusions that mean the check failed.
FAILING = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})
PER_PAGE = 100


class Pulls:
    """The pull requests of ``repo`` at ``url``, with ``token``."""

    def __init__(
        self, repo: str, url: str, token: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.repo = repo
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "planrun",
        }
        self.http = Http(f"github {repo}", url, headers, transport=transport)
        root = url.rstrip("/")  # GitHub Enterprise: REST at /api/v3, GraphQL at /api/graphql
        self.graphql = root[: -len("/v3")] + "/graphql" if root.endswith("/api/v3") else "graphql"

    def close(self) -> None:
        self.http.close()

    def for_branch(self, branch: str, owner: str | None = None) -> list[dict[str, Any]]:
        """The PRs (any state) whose head is ``branch`` of this repository (or of
        ``owner``'s fork of it), newest first."""
        owner = owner or self.repo.split("/")[0]
        params = {"head": f"{owner}:{branch}", "state": "all", "per_page": PER_PAGE}
        found = [p for page in self.http.pages(f"repos/{self.repo}/pulls", params) for p in page]
        return sorted(found, key=lambda p: int(p["number"]), reverse=True)

    def get(self, number: int) -> dict[str, Any]:
        pull: dict[str, Any] = self.http.json("GET", f"repos/{self.repo}/pulls/{number}")
        return pull

    def open(self, head: str, base: str, title: str, body: str, draft: bool) -> dict[str, Any]:
        data = {"title": title, "head": head, "base": base, "body": body, "draft": draft}
        pull: dict[str, Any] = self.http.json("POST", f"repos/{self.repo}/pulls", json=data)
        return pull

    def edit(self, number: int, **fields: Any) -> None:
        self.http.json("PATCH", f"repos/{self.repo}/pulls/{number}", json=fields)

    def add_labels(self, number: int, labels: list[str]) -> None:
        path = f"repos/{self.repo}/issues/{number}/labels"
        self.http.json("POST", path, json={"labels": labels})

    def request_reviewers(self, number: int, reviewers: list[str]) -> None:
        path = f"repos/{self.repo}/pulls/{number}/requested_reviewers"
        self.http.json("POST", path, json={"reviewers": reviewers})

    def comment(self, number: int, body: str) -> None:
        path = f"repos/{self.repo}/issues/{number}/comments"
        self.http.json("POST", path, json={"body": body})

    def merge(self, number: int) -> None:
        self.http.json("PUT", f"repos/{self.repo}/pulls/{number}/merge", json={})

    def mark_ready(self, node_id: str) -> None:
        """Draft → ready for review (GraphQL: REST cannot do it)."""
        query = (
            "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id})"
            " { pullRequest { isDraft } } }"
        )
        data = {"query": query, "variables": {"id": node_id}}
        answer = self.http.json("POST", self.graphql, json=data)
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            raise TrackerError(f"github {self.repo}: marking the PR ready failed: {errors}")

    def reviews(self, number: int) -> list[dict[str, Any]]:
        path = f"repos/{self.repo}/pulls/{number}/reviews"
        return [r for page in self.http.pages(path, {"per_page": PER_PAGE}) for r in page]

    def review_comments(self, number: int) -> list[dict[str, Any]]:
        path = f"repos/{self.repo}/pulls/{number}/comments"
        return [c for page in self.http.pages(path, {"per_page": PER_PAGE}) for c in page]

    def check_runs(self, sha: str) -> list[dict[str, Any]]:
        path = f"repos/{self.repo}/commits/{sha}/check-runs"
        body = self.http.json("GET", path, params={"per_page": PER_PAGE})
        runs = body.get("check_runs") if isinstance(body, dict) else None
        return list(runs or [])


def verdicts(reviews: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each reviewer's latest verdict (a review approving, requesting changes or
    dismissed), by login."""
    latest: dict[str, dict[str, Any]] = {}
    for review in reviews:
        state = str(review.get("state") or "")
        login = str((review.get("user") or {}).get("login") or "")
        if state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login] = review
    return latest


def review_decision(reviews: list[dict[str, Any]]) -> str:
    """``changes_requested``, ``approved`` or ``none``: each reviewer's latest verdict."""
    states = {str(r.get("state")) for r in verdicts(reviews).values()}
    if "CHANGES_REQUESTED" in states:
        return "changes_requested"
    return "approved" if "APPROVED" in states else "none"


def checks_summary(runs: list[dict[str, Any]]) -> str:
    """``none``, ``pending``, ``failing`` or ``passing`` over a commit's check runs."""
    if not runs:
        return "none"
    if any(r.get("status") != "completed" for r in runs):
        return "pending"
    return "failing" if any(r.get("conclusion") in FAILING for r in runs) else "passing"


def pr_state(pull: dict[str, Any]) -> str:
    """``merged``, ``closed``, ``draft`` or ``open``."""
    if pull.get("merged_at") or pull.get("merged"):
        return "merged"
    if pull.get("state") == "closed":
        return "closed"
    return "draft" if pull.get("draft") else "open"

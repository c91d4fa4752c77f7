"""GitHub Issues: the few REST endpoints planrun uses, and a fan-out item from an issue.

Endpoints (REST, ``X-GitHub-Api-Version: 2022-11-28``):

- ``GET /repos/{o}/{r}/issues`` (pages of 100, oldest first; pull requests dropped),
- ``GET /repos/{o}/{r}/issues/{n}`` (re-read before a change),
- ``GET /repos/{o}/{r}/issues/{n}/comments`` (find planrun's own status comment),
- ``POST /repos/{o}/{r}/issues/{n}/comments`` and ``PATCH .../issues/comments/{id}``,
- ``PUT /repos/{o}/{r}/issues/{n}/labels`` (the whole set: idempotent, no toggling),
- ``PATCH /repos/{o}/{r}/issues/{n}`` (close, as completed).

A thin client over httpx rather than githubkit: six endpoints, one code path for rate
limits and pages, and a small install (githubkit-schemas is 56 MB and a second to import);
the tests validate every request and answer with githubkit's models instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from planrun.plan.item import Item
from planrun.plan.model import GitHubTracker, StatusChange, TrackerSelect
from planrun.trackers.http import Http, TrackerError
from planrun.trackers.status import Intent, labels_after, managed_labels, marker

API_VERSION = "2022-11-28"
PER_PAGE = 100


class GitHub:
    """The issues of ``tracker.repo``, as tracker ``name`` (its token: ``token``)."""

    def __init__(
        self,
        name: str,
        tracker: GitHubTracker,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.repo = tracker.repo
        self.managed = managed_labels(tracker)
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "planrun",
        }
        self.http = Http(name, tracker.url, headers, transport=transport)

    def close(self) -> None:
        self.http.close()

    def items(self, select: TrackerSelect) -> list[Item]:
        issues = self.issues(select)
        return [item_of(self.name, self.repo, i, self.managed, n) for n, i in enumerate(issues)]

    def show(self, intent: Intent, change: StatusChange, comment: str | None) -> None:
        number = int(intent.ref)
        issue = self.issue(number)
        closed = issue.get("state") == "closed"
        if not closed:  # a person closed it: never re-labelled nor reopened
            current = label_names(issue)
            wanted = labels_after(current, self.managed, change)
            if sorted(wanted) != sorted(current):
                self.set_labels(number, wanted)
        if comment is not None:
            self._upsert_comment(number, marker(intent.plan, intent.task), comment)
        if change.close and not closed:
            self.close_issue(number)

    def _upsert_comment(self, number: int, mark: str, body: str) -> None:
        """Edit planrun's status comment on the issue, or make it once."""
        mine = [c for c in self.comments(number) if mark in str(c.get("body") or "")]
        if not mine:
            self.create_comment(number, body)
        elif mine[0].get("body") != body:
            self.edit_comment(int(mine[0]["id"]), body)

    def issues(self, select: TrackerSelect) -> list[dict[str, Any]]:
        """The issues ``select`` chooses, oldest first; TrackerError past ``select.limit``."""
        params: dict[str, Any] = {
            "state": select.state,
            "sort": "created",
            "direction": "asc",
            "per_page": PER_PAGE,
        }
        if select.labels:
            params["labels"] = ",".join(select.labels)
        if select.assignee is not None:
            params["assignee"] = select.assignee
        found: list[dict[str, Any]] = []
        for page in self.http.pages(f"repos/{self.repo}/issues", params):
            found += [issue for issue in page if "pull_request" not in issue]
            if len(found) > select.limit:
                raise TrackerError(
                    f"tracker {self.name}: more than {select.limit} issues match; narrow "
                    "select (labels, assignee) or raise select.limit"
                )
        return found

    def issue(self, number: int) -> dict[str, Any]:
        issue: dict[str, Any] = self.http.json("GET", f"repos/{self.repo}/issues/{number}")
        return issue

    def comments(self, number: int) -> list[dict[str, Any]]:
        path = f"repos/{self.repo}/issues/{number}/comments"
        return [c for page in self.http.pages(path, {"per_page": PER_PAGE}) for c in page]

    def create_comment(self, number: int, body: str) -> dict[str, Any]:
        path = f"repos/{self.repo}/issues/{number}/comments"
        created: dict[str, Any] = self.http.json("POST", path, json={"body": body})
        return created

    def edit_comment(self, comment_id: int, body: str) -> None:
        path = f"repos/{self.repo}/issues/comments/{comment_id}"
        self.http.json("PATCH", path, json={"body": body})

    def set_labels(self, number: int, labels: Iterable[str]) -> None:
        path = f"repos/{self.repo}/issues/{number}/labels"
        self.http.json("PUT", path, json={"labels": list(labels)})

    def close_issue(self, number: int) -> None:
        path = f"repos/{self.repo}/issues/{number}"
        self.http.json("PATCH", path, json={"state": "closed", "state_reason": "completed"})


def label_names(issue: Mapping[str, Any]) -> list[str]:
    """An issue's label names (GitHub gives objects, or plain names in older answers)."""
    names = []
    for label in issue.get("labels") or ():
        name = label.get("name") if isinstance(label, dict) else label
        if isinstance(name, str):
            names.append(name)
    return names


def item_of(
    name: str, repo: str, issue: Mapping[str, Any], managed: frozenset[str], index: int
) -> Item:
    """The fan-out item of ``issue``: what tasks may use, and so what its fingerprint covers.

    Left out on purpose: the labels planrun itself sets (``managed``), the state, dates
    and counts, so that planrun's own status updates never make a task look edited.
    """
    number = issue.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        raise TrackerError(f"tracker {name}: an issue without a number in the answer")
    values = {
        "id": str(number),
        "number": number,
        "key": f"{repo}#{number}",
        "title": str(issue.get("title") or ""),
        "body": str(issue.get("body") or ""),
        "url": str(issue.get("html_url") or ""),
        "labels": sorted(n for n in label_names(issue) if n not in managed),
        "author": str((issue.get("user") or {}).get("login") or ""),
        "tracker": name,
        "ref": str(number),
        "index": index,
    }
    return Item(f"{repo}#{number}", values)

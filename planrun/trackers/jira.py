"""Jira Cloud issues (REST, Basic auth with an account's email and API token): items from a
JQL search, status as workflow transitions, one status comment per item.

Endpoints:

- ``POST /rest/api/3/search/jql`` (cursor pages: ``nextPageToken``, ``isLast``) with the
  fields planrun uses; the description is Atlassian Document Format, read as text;
- ``GET /rest/api/3/issue/{key}?fields=status`` (re-read before a change);
- ``GET|POST /rest/api/3/issue/{key}/transitions`` (find the transition whose target
  status has the name the plan gives, then take it);
- ``GET|POST /rest/api/2/issue/{key}/comment``, ``PUT .../comment/{id}``: v2 takes plain
  text; planrun's comment ends with its marker as a last line.

An issue whose status is in the Done category is closed: never moved again.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from planrun.plan.item import Item
from planrun.plan.model import JiraTracker, StatusChange, TrackerSelect
from planrun.trackers.http import Http, TrackerError
from planrun.trackers.status import Intent, marker

FIELDS = ["summary", "description", "labels", "status", "reporter", "created"]
PER_PAGE = 100


class Jira:
    """The issues of the Jira site ``tracker.url``, as tracker ``name``."""

    def __init__(
        self,
        name: str,
        tracker: JiraTracker,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.tracker = tracker
        basic = base64.b64encode(f"{tracker.email}:{token}".encode()).decode()
        headers = {
            "Authorization": f"Basic {basic}",
            "Accept": "application/json",
            "User-Agent": "planrun",
        }
        self.http = Http(name, tracker.url, headers, transport=transport)

    def close(self) -> None:
        self.http.close()

    def jql(self, select: TrackerSelect) -> str:
        """The search: ``select.jql`` as written, else built from project, state, labels."""
        if select.jql is not None:
            return select.jql
        terms = []
        if self.tracker.project is not None:
            terms.append(f"project = {_quoted(self.tracker.project)}")
        if select.state != "all":
            terms.append(f"statusCategory {'!=' if select.state == 'open' else '='} Done")
        terms += [f"labels = {_quoted(label)}" for label in select.labels or ()]
        return " AND ".join(terms) + " ORDER BY created ASC"

    def search(self, jql: str) -> Iterator[dict[str, Any]]:
        body: dict[str, Any] = {"jql": jql, "fields": FIELDS, "maxResults": PER_PAGE}
        while True:
            page = self.http.json("POST", "rest/api/3/search/jql", json=body)
            if not isinstance(page, dict) or not isinstance(page.get("issues"), list):
                raise TrackerError(f"tracker {self.name}: the search answered no issues list")
            yield from page["issues"]
            token = page.get("nextPageToken")
            if page.get("isLast", True) or not token:
                return
            body = {**body, "nextPageToken": token}

    def items(self, select: TrackerSelect) -> list[Item]:
        found = []
        for issue in self.search(self.jql(select)):
            found.append(issue)
            if len(found) > select.limit:
                raise TrackerError(
                    f"tracker {self.name}: more than {select.limit} issues match; narrow "
                    "select (jql, labels) or raise select.limit"
                )
        return [self._item(issue, n) for n, issue in enumerate(found)]

    def _item(self, issue: Mapping[str, Any], index: int) -> Item:
        key = issue.get("key")
        fields = issue.get("fields") or {}
        if not isinstance(key, str):
            raise TrackerError(f"tracker {self.name}: an issue without a key in the answer")
        reporter = fields.get("reporter") or {}
        values = {
            "id": key,
            "key": key,
            "title": str(fields.get("summary") or ""),
            "body": adf_text(fields.get("description")),
            "url": f"{self.tracker.url.rstrip('/')}/browse/{key}",
            "labels": sorted(str(label) for label in fields.get("labels") or ()),
            "author": str(reporter.get("displayName") or ""),
            "tracker": self.name,
            "ref": key,
            "index": index,
        }
        return Item(key, values)

    # ------------------------------------------------------------ writing

    def show(self, intent: Intent, change: StatusChange, comment: str | None) -> None:
        key = intent.ref
        issue = self.http.json("GET", f"rest/api/3/issue/{key}", params={"fields": "status"})
        status = (issue.get("fields") or {}).get("status") or {}
        category = (status.get("statusCategory") or {}).get("key")
        wanted = change.state
        refused = None
        if wanted is not None and category != "done" and status.get("name") != wanted:
            refused = self._transition(key, wanted)
        if comment is not None:
            self._upsert_comment(key, marker(intent.plan, intent.task), comment)
        if refused is not None:  # the comment is there; the move cannot be: said, not retried
            raise refused

    def _transition(self, key: str, wanted: str) -> TrackerError | None:
        """Take the transition to status ``wanted``; the error if the workflow has none."""
        path = f"rest/api/3/issue/{key}/transitions"
        offered = self.http.json("GET", path).get("transitions") or []
        for transition in offered:
            target = (transition.get("to") or {}).get("name") or transition.get("name")
            if str(target).casefold() == wanted.casefold():
                self.http.json("POST", path, json={"transition": {"id": transition["id"]}})
                return None
        names = ", ".join(str((t.get("to") or {}).get("name")) for t in offered) or "none"
        return TrackerError(
            f"tracker {self.name}: {key} cannot move to {wanted!r} from its status "
            f"(its workflow offers: {names})",
            status=422,
        )

    def _upsert_comment(self, key: str, mark: str, text: str) -> None:
        footer = f"[{mark.removeprefix('<!-- ').removesuffix(' -->')}]"
        body = text.replace(mark + "\n", "") + "\n\n" + footer
        path = f"rest/api/2/issue/{key}/comment"
        mine = [c for c in self._comments(path) if str(c.get("body") or "").endswith(footer)]
        if not mine:
            self.http.json("POST", path, json={"body": body})
        elif mine[0].get("body") != body:
            self.http.json("PUT", f"{path}/{mine[0]['id']}", json={"body": body})

    def _comments(self, path: str) -> Iterator[dict[str, Any]]:
        start = 0
        while True:
            page = self.http.json("GET", path, params={"startAt": start, "maxResults": 100})
            comments = page.get("comments") or []
            yield from comments
            start += len(comments)
            if not comments or start >= int(page.get("total") or 0):
                return


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def adf_text(node: Any) -> str:
    """Atlassian Document Format as plain text: text nodes, one line per block."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text") or "")
    if node.get("type") == "hardBreak":
        return "\n"
    parts = [adf_text(child) for child in node.get("content") or ()]
    block = node.get("type") in ("doc", "bulletList", "orderedList", "listItem", "table")
    return ("\n" if block else "").join(parts).strip("\n") if block else "".join(parts)

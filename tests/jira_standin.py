"""A stand-in for Jira Cloud's REST API (search, issue, transitions, comments) on 127.0.0.1.

Atlassian ships no Python models of its API, so the stand-in checks requests against the
documented shapes itself: Basic auth, ``POST /rest/api/3/search/jql`` with ``jql``,
``fields``, ``maxResults`` (at most 5000) and ``nextPageToken`` only (the old ``startAt``
is refused, as the new endpoint refuses it), a transition id the issue's workflow offers,
plain-text comment bodies on API v2. Descriptions are Atlassian Document Format. A tiny
JQL reader understands what planrun writes (``project``, ``statusCategory``, ``labels``,
``ORDER BY created``) and refuses the rest with 400, as Jira refuses JQL it cannot parse.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tests.standin_http import JSONHandler, serve_with

STATUSES = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}
#: the workflow: from each status, the transitions offered (id, target)
WORKFLOW = {
    "To Do": [("11", "In Progress"), ("31", "Done")],
    "In Progress": [("21", "To Do"), ("31", "Done")],
    "Done": [("41", "To Do")],
}
SEARCH_FIELDS = {"jql", "fields", "maxResults", "nextPageToken"}


@dataclass
class JiraStandin:
    email: str = "bot@acme.io"
    token: str = "jira_api_standin_token_0123456789"
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 10_000

    def add_issue(self, key: str, summary: str, text: str = "", **extra: Any) -> None:
        status = extra.pop("status", "To Do")
        self.issues[key] = {
            "id": str(len(self.issues) + 100),
            "key": key,
            "summary": summary,
            "description": _adf(text) if text else None,
            "labels": extra.pop("labels", []),
            "status": status,
            "project": key.split("-")[0],
        }

    def status_of(self, key: str) -> str:
        return str(self.issues[key]["status"])

    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET" and not r[1].endswith("/search/jql")]


def _adf(text: str) -> dict[str, Any]:
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]}
        for line in text.split("\n")
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _status(name: str) -> dict[str, Any]:
    return {"name": name, "statusCategory": {"key": STATUSES[name], "name": name}}


def _matches(issue: dict[str, Any], jql: str) -> bool:
    where = re.split(r"\s+ORDER BY\s+created\s+ASC\s*$", jql)[0]
    for term in [t.strip() for t in re.split(r"\s+AND\s+", where) if t.strip()]:
        found = re.fullmatch(
            r'(project|labels|statusCategory)\s*(=|!=)\s*("(?:[^"\\]|\\.)*"|\w+)', term
        )
        if found is None:
            raise _Refused(400, f"Error in the JQL Query: cannot read {term!r}")
        name, op, value = found.groups()
        value = json.loads(value) if value.startswith('"') else value
        have = {
            "project": [issue["project"]],
            "labels": issue["labels"],
            "statusCategory": ["Done" if STATUSES[issue["status"]] == "done" else "Other"],
        }[name]
        if (value in have) != (op == "="):
            return False
    return True


class Handler(JSONHandler):
    data: ClassVar[JiraStandin]
    none_is_empty = True  # 204 No Content

    def _serve(self, method: str) -> None:
        path, query, raw = self._request()
        body = json.loads(raw) if raw else None
        try:
            self._check(method, path, body)
            status, answer = self._route(method, path, query, body)
        except _Refused as refused:
            status, answer = refused.status, {"errorMessages": [str(refused)], "errors": {}}
        self._send(status, answer)

    def _check(self, method: str, path: str, body: Any) -> None:
        d = self.data
        basic = base64.b64encode(f"{d.email}:{d.token}".encode()).decode()
        if self.headers.get("authorization") != f"Basic {basic}":
            raise _Refused(401, "Client must be authenticated to access this resource.")
        with d.lock:
            d.requests.append((method, path, body))

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        for pattern, verb, handle in ROUTES:
            found = re.fullmatch(pattern, path)
            if found and verb == method:
                return handle(self, *found.groups(), query=query, body=body)
        self.data.problems.append(f"unknown request {method} {path}")
        raise _Refused(404, "not found")

    def _issue(self, key: str) -> dict[str, Any]:
        issue = self.data.issues.get(key)
        if issue is None:
            raise _Refused(404, "Issue does not exist or you do not have permission to see it.")
        return issue

    def search(self, *, query: dict[str, str], body: Any) -> Any:
        if not isinstance(body, dict) or set(body) - SEARCH_FIELDS or "jql" not in body:
            raise _Refused(400, f"Invalid request payload: {body!r}")
        size = int(body.get("maxResults", 50))
        if not 1 <= size <= 5000:
            raise _Refused(400, "maxResults")
        matching = [i for i in self.data.issues.values() if _matches(i, body["jql"])]
        start = int(body.get("nextPageToken") or 0)
        chunk = matching[start : start + size]
        answer: dict[str, Any] = {
            "issues": [self._shown(i, body.get("fields") or []) for i in chunk],
            "isLast": start + size >= len(matching),
        }
        if not answer["isLast"]:
            answer["nextPageToken"] = str(start + size)
        return 200, answer

    def _shown(self, issue: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        every = {
            "summary": issue["summary"],
            "description": issue["description"],
            "labels": issue["labels"],
            "status": _status(issue["status"]),
            "reporter": {"displayName": "Ada Reporter"},
            "created": "2026-12-06T10:00:00.000+0000",
        }
        shown = {k: v for k, v in every.items() if k in fields}
        return {"id": issue["id"], "key": issue["key"], "fields": shown}

    def get_issue(self, key: str, *, query: dict[str, str], body: Any) -> Any:
        issue = self._issue(key)
        return 200, self._shown(issue, query.get("fields", "summary").split(","))

    def transitions(self, key: str, *, query: dict[str, str], body: Any) -> Any:
        issue = self._issue(key)
        offered = [
            {"id": ident, "name": f"to {target}", "to": _status(target)}
            for ident, target in WORKFLOW[issue["status"]]
        ]
        return 200, {"transitions": offered}

    def transition(self, key: str, *, query: dict[str, str], body: Any) -> Any:
        issue = self._issue(key)
        ident = (body or {}).get("transition", {}).get("id")
        for offered, target in WORKFLOW[issue["status"]]:
            if offered == ident:
                issue["status"] = target
                return 204, None
        raise _Refused(400, f"Transition id '{ident}' is not valid for this issue.")

    def list_comments(self, key: str, *, query: dict[str, str], body: Any) -> Any:
        self._issue(key)
        rows = self.data.comments.get(key, [])
        start, size = int(query.get("startAt", 0)), int(query.get("maxResults", 50))
        return 200, {
            "startAt": start,
            "maxResults": size,
            "total": len(rows),
            "comments": rows[start : start + size],
        }

    def add_comment(self, key: str, *, query: dict[str, str], body: Any) -> Any:
        self._issue(key)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("body"), str)
            or set(body) - {"body"}
        ):
            raise _Refused(400, "comment body must be text (API v2)")
        with self.data.lock:
            self.data._next += 1
            row = {"id": str(self.data._next), "body": body["body"]}
            self.data.comments.setdefault(key, []).append(row)
        return 201, row

    def edit_comment(self, key: str, ident: str, *, query: dict[str, str], body: Any) -> Any:
        for row in self.data.comments.get(key, []):
            if row["id"] == ident:
                row["body"] = (body or {}).get("body")
                return 200, row
        raise _Refused(404, "comment not found")


KEY = r"([A-Z][A-Z0-9]+-\d+)"
ROUTES: list[tuple[str, str, Any]] = [
    (r"/rest/api/3/search/jql", "POST", Handler.search),
    (rf"/rest/api/3/issue/{KEY}", "GET", Handler.get_issue),
    (rf"/rest/api/3/issue/{KEY}/transitions", "GET", Handler.transitions),
    (rf"/rest/api/3/issue/{KEY}/transitions", "POST", Handler.transition),
    (rf"/rest/api/2/issue/{KEY}/comment", "GET", Handler.list_comments),
    (rf"/rest/api/2/issue/{KEY}/comment", "POST", Handler.add_comment),
    (rf"/rest/api/2/issue/{KEY}/comment/(\d+)", "PUT", Handler.edit_comment),
]


@contextmanager
def serve_jira(standin: JiraStandin) -> Iterator[JiraStandin]:
    with serve_with(standin, Handler):
        yield standin

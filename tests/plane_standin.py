"""A stand-in for Plane's API v1 (work items, states, comments) on 127.0.0.1: real HTTP.

Paths end with a slash, as plane-sdk writes them (a path without one is a 404 here, and
recorded as a problem). Request bodies are validated with plane-sdk's request models
(``UpdateWorkItem``, ``CreateWorkItemComment``, ``UpdateWorkItemComment``) and refused
with unknown fields; every answer is built through its response models (``WorkItem``,
``State``, ``WorkItemComment``, the paginated responses). Lists are cursor-paginated as
Plane's are (``per_page`` at most 100, ``next_cursor``, ``next_page_results``).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from plane.models import projects as pm
from plane.models import states as sm
from plane.models import work_items as wm
from pydantic import BaseModel, ValidationError

from tests.standin_http import JSONHandler, serve_with

STAMP = "2026-12-06T10:00:00Z"
GROUPS = [
    ("Backlog", "backlog"),
    ("Todo", "unstarted"),
    ("In Progress", "started"),
    ("Done", "completed"),
    ("Cancelled", "cancelled"),
]


@dataclass
class PlaneStandin:
    workspace: str = "acme"
    project: str = field(default_factory=lambda: str(uuid.uuid4()))
    identifier: str = "ENG"
    token: str = "plane_api_standin_key_0123456789"
    states: list[dict[str, Any]] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fail_writes: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for n, (name, group) in enumerate(GROUPS):
            state = {"id": str(uuid.uuid4()), "name": name, "group": group, "sequence": n}
            state["color"] = "#60646C"
            self.states.append(_valid(sm.State, {**state, "project": self.project}))

    def state(self, group: str) -> str:
        return next(s["id"] for s in self.states if s["group"] == group)

    def group_of(self, key: str) -> str:
        item = self.by_key(key)
        return next(s["group"] for s in self.states if s["id"] == item["state"])

    def add_item(self, sequence: int, name: str, text: str = "", **extra: Any) -> str:
        ident = str(uuid.uuid4())
        labels = [{"id": str(uuid.uuid4()), "name": n} for n in extra.pop("labels", [])]
        item = {
            "id": ident,
            "sequence_id": sequence,
            "name": name,
            "description_html": f"<p>{text}</p>",
            "description_stripped": text,
            "state": self.state(extra.pop("group", "unstarted")),
            "labels": labels,
            "project": self.project,
            "created_at": STAMP,
            "created_by": "user-1",
            **extra,
        }
        self.items[ident] = _valid(wm.WorkItemDetail, item)
        return ident

    def by_key(self, key: str) -> dict[str, Any]:
        sequence = int(key.rsplit("-", 1)[1])
        return next(i for i in self.items.values() if i["sequence_id"] == sequence)

    def comments_on(self, key: str) -> list[dict[str, Any]]:
        ident = self.by_key(key)["id"]
        return [c for c in self.comments.values() if c["issue"] == ident]


def _valid(model: type[BaseModel], data: Any) -> dict[str, Any]:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise AssertionError(f"the stand-in built an invalid {model.__name__}: {exc}") from exc
    return dict(data)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _body(model: type[BaseModel], data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _Refused(400, "expected a JSON object")
    unknown = set(data) - set(model.model_fields)
    if unknown:
        raise _Refused(400, f"unknown fields {sorted(unknown)} for {model.__name__}")
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise _Refused(400, str(exc)) from None
    return data


class Handler(JSONHandler):
    data: ClassVar[PlaneStandin]

    def _serve(self, method: str) -> None:
        path, query, raw = self._request()
        body = json.loads(raw) if raw else None
        try:
            self._check(method, path, body)
            status, answer = self._route(method, path, query, body)
        except _Refused as refused:
            status, answer = refused.status, {"error": str(refused)}
        except AssertionError as broken:
            self.data.problems.append(str(broken))
            status, answer = 500, {"error": "stand-in error"}
        self._send(status, answer)

    def _check(self, method: str, path: str, body: Any) -> None:
        d = self.data
        if self.headers.get("x-api-key") != d.token:
            raise _Refused(401, "Given API token is not valid")
        with d.lock:
            d.requests.append((method, path, body))
            if method != "GET" and d.fail_writes > 0:
                d.fail_writes -= 1
                raise _Refused(503, "Service Unavailable")

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        d = self.data
        prefix = f"/api/v1/workspaces/{d.workspace}/projects/{d.project}/"
        if not path.startswith(prefix) or not path.endswith("/"):
            d.problems.append(f"unknown request {method} {path}")
            raise _Refused(404, "Page not found.")
        rest = path[len(prefix) :]
        for pattern, verb, handle in ROUTES:
            found = re.fullmatch(pattern, rest)
            if found and verb == method:
                return handle(self, *found.groups(), query=query, body=body)
        d.problems.append(f"unknown request {method} {path}")
        raise _Refused(404, "Page not found.")

    def _page(self, rows: list[Any], query: dict[str, str], model: Any) -> Any:
        per_page = int(query.get("per_page", 100))
        if not 1 <= per_page <= 100:
            raise _Refused(400, "per_page")
        page = int(query.get("cursor", f"{per_page}:0:0").split(":")[1])
        chunk = rows[page * per_page : (page + 1) * per_page]
        more = (page + 1) * per_page < len(rows)
        answer = {
            "grouped_by": None,
            "sub_grouped_by": None,
            "total_count": len(rows),
            "next_cursor": f"{per_page}:{page + 1}:0",
            "prev_cursor": f"{per_page}:{max(page - 1, 0)}:0",
            "next_page_results": more,
            "prev_page_results": page > 0,
            "count": len(chunk),
            "total_pages": max(1, -(-len(rows) // per_page)),
            "total_results": len(rows),
            "extra_stats": None,
            "results": chunk,
        }
        return 200, _valid(model, answer)

    def project(self, *, query: dict[str, str], body: Any) -> Any:
        d = self.data
        project = {"id": d.project, "name": "Engineering", "identifier": d.identifier}
        return 200, _valid(pm.Project, project)

    def list_states(self, *, query: dict[str, str], body: Any) -> Any:
        return self._page(self.data.states, query, sm.PaginatedStateResponse)

    def _expanded(self, item: dict[str, Any], expand: str) -> dict[str, Any]:
        shown = dict(item)
        if "state" in expand.split(","):
            shown["state"] = next(s for s in self.data.states if s["id"] == item["state"])
        if "labels" not in expand.split(","):
            shown["labels"] = [la["id"] for la in item["labels"]]
        return shown

    def list_items(self, *, query: dict[str, str], body: Any) -> Any:
        expand = query.get("expand", "")
        rows = [self._expanded(i, expand) for i in self.data.items.values()]
        return self._page(rows, query, wm.PaginatedWorkItemResponse)

    def get_item(self, ident: str, *, query: dict[str, str], body: Any) -> Any:
        item = self.data.items.get(ident)
        if item is None:
            raise _Refused(404, "Work item not found")
        return 200, _valid(wm.WorkItemDetail, self._expanded(item, query.get("expand", "")))

    def update_item(self, ident: str, *, query: dict[str, str], body: Any) -> Any:
        change = _body(wm.UpdateWorkItem, body)
        with self.data.lock:
            item = self.data.items[ident]
            if "state" in change:
                if change["state"] not in {s["id"] for s in self.data.states}:
                    raise _Refused(400, "state does not exist")
                item["state"] = change["state"]
        return 200, _valid(wm.WorkItem, self._expanded(item, ""))

    def list_comments(self, ident: str, *, query: dict[str, str], body: Any) -> Any:
        rows = [c for c in self.data.comments.values() if c["issue"] == ident]
        return self._page(rows, query, wm.PaginatedWorkItemCommentResponse)

    def create_comment(self, ident: str, *, query: dict[str, str], body: Any) -> Any:
        change = _body(wm.CreateWorkItemComment, body)
        d = self.data
        with d.lock:
            source, external = change.get("external_source"), change.get("external_id")
            if source and any(
                c["external_source"] == source and c["external_id"] == external
                for c in d.comments.values()
                if c["issue"] == ident
            ):  # Plane refuses a second comment with the same external id
                raise _Refused(409, "Work item comment with the same external id exists")
            comment = {
                "id": str(uuid.uuid4()),
                "comment_html": change.get("comment_html"),
                "external_source": source,
                "external_id": external,
                "issue": ident,
                "project": d.project,
                "created_at": STAMP,
            }
            d.comments[comment["id"]] = _valid(wm.WorkItemComment, comment)
        return 201, comment

    def update_comment(self, ident: str, comment: str, *, query: dict[str, str], body: Any) -> Any:
        change = _body(wm.UpdateWorkItemComment, body)
        with self.data.lock:
            row = self.data.comments[comment]
            row.update(change)
        return 200, _valid(wm.WorkItemComment, row)


UUID = r"([0-9a-f-]{36})"
ROUTES: list[tuple[str, str, Any]] = [
    (r"", "GET", Handler.project),
    (r"states/", "GET", Handler.list_states),
    (r"work-items/", "GET", Handler.list_items),
    (rf"work-items/{UUID}/", "GET", Handler.get_item),
    (rf"work-items/{UUID}/", "PATCH", Handler.update_item),
    (rf"work-items/{UUID}/comments/", "GET", Handler.list_comments),
    (rf"work-items/{UUID}/comments/", "POST", Handler.create_comment),
    (rf"work-items/{UUID}/comments/{UUID}/", "PATCH", Handler.update_comment),
]


@contextmanager
def serve_plane(standin: PlaneStandin) -> Iterator[PlaneStandin]:
    with serve_with(standin, Handler):
        yield standin

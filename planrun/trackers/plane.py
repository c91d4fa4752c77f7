"""Plane work items (API v1, an API key in ``X-Api-Key``): items of one project, status as
its states, one status comment per item.

Endpoints, under ``/api/v1/workspaces/{slug}/projects/{project}/`` (trailing slashes, as
plane-sdk writes them; lists are cursor-paginated: ``per_page``, ``cursor``,
``next_page_results``, ``next_cursor``):

- ``GET ./`` (the project's identifier, as in ``ENG-12``), ``GET states/``;
- ``GET work-items/?expand=labels,state`` (Community Edition filters nothing on the
  server, so ``select`` is applied here), ``GET work-items/{id}/?expand=state``;
- ``PATCH work-items/{id}/`` with ``{"state": id}``;
- ``GET|POST work-items/{id}/comments/``, ``PATCH .../comments/{id}/``: planrun's comment
  carries ``external_source: planrun`` and its marker as ``external_id``.

A state is named in the plan by its name or by its group (``started``, ``completed``...);
an item in the ``completed`` or ``cancelled`` group is closed: never moved again.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from planrun.plan.item import Item
from planrun.plan.model import PlaneTracker, StatusChange, TrackerSelect
from planrun.trackers.http import Http, TrackerError, cursor_pages
from planrun.trackers.status import Intent, marker

CLOSED_GROUPS = frozenset({"completed", "cancelled"})
PER_PAGE = 100
SOURCE = "planrun"


class Plane:
    """The work items of ``tracker.project``, as tracker ``name``."""

    def __init__(
        self,
        name: str,
        tracker: PlaneTracker,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.tracker = tracker
        base = f"{tracker.url.rstrip('/')}/api/v1/workspaces/{tracker.workspace}/"
        base += f"projects/{tracker.project}/"
        headers = {"X-Api-Key": token, "User-Agent": "planrun", "Accept": "application/json"}
        self.http = Http(name, base, headers, transport=transport)
        self._states: list[dict[str, Any]] | None = None

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------ reading

    def pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every row of a cursor-paginated list."""
        query = {"per_page": PER_PAGE, **(params or {})}
        yield from cursor_pages(
            lambda p, q: self.http.json("GET", p, params=q), path, query, f"tracker {self.name}"
        )

    def states(self) -> list[dict[str, Any]]:
        if self._states is None:
            self._states = list(self.pages("states/"))
        return self._states

    def items(self, select: TrackerSelect) -> list[Item]:
        identifier = str(self.http.json("GET", "")["identifier"])
        groups = {s.get("id"): s.get("group") for s in self.states()}
        found = []
        params = {"expand": "labels,state", "order_by": "created_at"}
        for row in self.pages("work-items/", params):
            if _selected(row, select, groups):
                found.append(row)
                if len(found) > select.limit:
                    raise TrackerError(
                        f"tracker {self.name}: more than {select.limit} work items match; "
                        "narrow select (labels, state) or raise select.limit"
                    )
        return [self._item(identifier, row, n) for n, row in enumerate(found)]

    def _item(self, identifier: str, row: Mapping[str, Any], index: int) -> Item:
        sequence = row.get("sequence_id")
        ref = row.get("id")
        if not isinstance(sequence, int) or not isinstance(ref, str):
            raise TrackerError(f"tracker {self.name}: a work item without id or sequence_id")
        key = f"{identifier}-{sequence}"
        web = re.sub(r"//api\.", "//app.", self.tracker.url.rstrip("/"))
        values = {
            "id": key,
            "key": key,
            "title": str(row.get("name") or ""),
            "body": _text(row),
            "url": f"{web}/{self.tracker.workspace}/browse/{key}/",
            "labels": sorted(_label_names(row)),
            "author": str(row.get("created_by") or ""),
            "tracker": self.name,
            "ref": ref,
            "index": index,
        }
        return Item(key, values)

    # ------------------------------------------------------------ writing

    def show(self, intent: Intent, change: StatusChange, comment: str | None) -> None:
        row = self.http.json("GET", f"work-items/{intent.ref}/", params={"expand": "state"})
        current = _state_id(row.get("state"))
        groups = {s.get("id"): s.get("group") for s in self.states()}
        closed = groups.get(current) in CLOSED_GROUPS
        if change.state is not None and not closed:
            target = self._state(change.state)
            if target != current:
                self.http.json("PATCH", f"work-items/{intent.ref}/", json={"state": target})
        if comment is not None:
            self._upsert_comment(intent, comment)

    def _state(self, wanted: str) -> str:
        """The id of the state named ``wanted``, else of the first state of that group."""
        states = sorted(self.states(), key=lambda s: s.get("sequence") or 0)
        for field in ("name", "group"):
            for state in states:
                if str(state.get(field) or "").casefold() == wanted.casefold():
                    return str(state["id"])
        raise TrackerError(f"tracker {self.name}: no state or state group named {wanted!r}")

    def _upsert_comment(self, intent: Intent, text: str) -> None:
        mark = marker(intent.plan, intent.task)
        ident = mark.removeprefix("<!-- planrun:status:").removesuffix(" -->")
        body = _html(text.replace(mark, ""))  # found by external_id, not by text
        path = f"work-items/{intent.ref}/comments/"
        mine = [
            c
            for c in self.pages(path)
            if c.get("external_source") == SOURCE and c.get("external_id") == ident
        ]
        if not mine:
            data = {"comment_html": body, "external_source": SOURCE, "external_id": ident}
            self.http.json("POST", path, json=data)
        elif mine[0].get("comment_html") != body:
            self.http.json("PATCH", f"{path}{mine[0]['id']}/", json={"comment_html": body})


def _selected(row: Mapping[str, Any], select: TrackerSelect, groups: Mapping[Any, Any]) -> bool:
    closed = groups.get(_state_id(row.get("state"))) in CLOSED_GROUPS
    if (select.state == "open" and closed) or (select.state == "closed" and not closed):
        return False
    wanted = {label.casefold() for label in select.labels or ()}
    return wanted <= {n.casefold() for n in _label_names(row)}


def _state_id(state: Any) -> Any:
    return state.get("id") if isinstance(state, dict) else state


def _label_names(row: Mapping[str, Any]) -> list[str]:
    return [str(la["name"]) for la in row.get("labels") or () if isinstance(la, dict)]


def _text(row: Mapping[str, Any]) -> str:
    """The description as text: Plane's stripped form, else the HTML without its tags."""
    stripped = row.get("description_stripped")
    if isinstance(stripped, str):
        return stripped
    raw = str(row.get("description_html") or "")
    return html.unescape(re.sub(r"<[^>]*>", " ", raw)).strip()


def _html(text: str) -> str:
    """planrun's comment (Markdown) as Plane's comment HTML: each line escaped."""
    return "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line)

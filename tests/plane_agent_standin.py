"""A stand-in for Plane's agent API (Plane Cloud) on 127.0.0.1: real HTTP, plane-sdk's models.

The agent's side of research/trackers.md §1: bot tokens by client credentials (Basic auth,
form-encoded, ``expires_in``), the app installation, workspace members, a project and
its work items, agent runs and their activities (v1), the completion ``PATCH`` and the
workspace's prompt feed (v2). Every request body is validated with plane-sdk's request
models (``CreateAgentRunActivity``; unknown fields refused, as tests/plane_standin.py
does) and every answer built through its response models (``AgentRun``,
``AgentRunActivity``, ``PaginatedAgentRunActivityResponse``, ``WorkItemDetail``,
``Project``, ``WorkspaceMember``, ``OAuthToken``). Runs move by the status table of §1.6
(a thought or action → in_progress, but not while stopping; a response → stopped when a
stop is pending; an elicitation → awaiting; an error → failed; a person's prompt
re-opens an ended run; 5 minutes without an update → stale, applied when the run is
read), on a clock the test may replace.

A person's moves (:meth:`AgentStandin.mention`, ``reply``, ``stop``) return the webhook
event Plane would send; :func:`deliver` sends one signed as Plane signs (HMAC-SHA256 of
the exact bytes, hex, a fresh ``X-Plane-Delivery`` each time).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

import httpx
from plane.client.oauth_client import OAuthToken
from plane.models import agent_runs as am
from plane.models import projects as pm
from plane.models import work_items as wm
from plane.models import workspaces as ws

from tests import plane_standin
from tests.plane_standin import STAMP, _body, _Refused, _valid
from tests.standin_http import serve_with

STALE_AFTER = 300.0
ENDED = {"completed", "stopped", "failed", "stale"}


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class AgentStandin:
    slug: str = "acme"
    workspace: str = field(default_factory=lambda: str(uuid.uuid4()))
    project: str = field(default_factory=lambda: str(uuid.uuid4()))
    identifier: str = "ENG"
    client_id: str = "planrun-client-id-0123"
    client_secret: str = "planrun-client-secret-0123456789"
    installation: str = field(default_factory=lambda: str(uuid.uuid4()))
    bot: str = field(default_factory=lambda: str(uuid.uuid4()))
    expires_in: int = 86400
    members: dict[str, str] = field(default_factory=dict)  # user id → e-mail
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    url: str = ""
    lock: Any = field(default_factory=threading.RLock)

    # ------------------------------------------------------------ what people do

    def member(self, email: str) -> str:
        ident = str(uuid.uuid4())
        self.members[ident] = email
        return ident

    def add_item(self, sequence: int, name: str, text: str = "") -> str:
        ident = str(uuid.uuid4())
        item = {
            "id": ident,
            "sequence_id": sequence,
            "name": name,
            "description_html": f"<p>{text}</p>",
            "description_stripped": text,
            "project": self.project,
            "created_at": STAMP,
        }
        self.items[ident] = _valid(wm.WorkItemDetail, item)
        return ident

    def mention(self, item: str, actor: str, body: str) -> tuple[str, dict[str, Any]]:
        """A person mentions the agent in a comment on ``item``: a run and its first prompt;
        the run's id and the prompt's webhook event."""
        with self.lock:
            run = {
                "id": str(uuid.uuid4()),
                "agent_user": self.bot,
                "comment": str(uuid.uuid4()),
                "creator": actor,
                "started_at": _iso(self.clock()),
                "issue": item,
                "workspace": self.workspace,
                "project": self.project,
                "status": "created",
                "type": "comment_thread",
                "updated_at": _iso(self.clock()),
            }
            self.runs[run["id"]] = _valid(am.AgentRun, run)
        return run["id"], self.prompt(run["id"], actor, body)

    def reply(self, run: str, actor: str, body: str) -> dict[str, Any]:
        return self.prompt(run, actor, body)

    def stop(self, run: str, actor: str) -> dict[str, Any]:
        return self.prompt(run, actor, "Stopping", signal="stop")

    def prompt(self, run: str, actor: str, body: str, signal: str = "continue") -> dict[str, Any]:
        with self.lock:
            row = self.runs[run]
            activity = self._activity(run, "prompt", {"type": "prompt", "body": body}, actor)
            activity["signal"] = signal
            self._move(row, "stopping" if signal == "stop" else "in_progress")
            return {
                "type": "agent_run_activity",
                "action": "prompted",
                "agent_run_activity": _valid(am.AgentRunActivity, activity),
                "agent_run": {k: v for k, v in row.items() if k != "_touched"},
                "agent_user_id": self.bot,
                "app_client_id": self.client_id,
                "comment_id": row["comment"],
                "issue_id": row["issue"],
                "project_id": self.project,
                "workspace_id": self.workspace,
            }

    def status(self, run: str) -> str:
        with self.lock:
            row = self.runs[run]
            self._settle_stale(row)
            return str(row["status"])

    def said(self, run: str) -> list[tuple[str, str]]:
        """The agent's activities on ``run``: (type, body or action)."""
        return [
            (a["type"], a["content"].get("body") or a["content"].get("action"))
            for a in self.activities
            if a["agent_run"] == run and a["actor"] == self.bot
        ]

    # ------------------------------------------------------------ the rules

    def _activity(self, run: str, kind: str, content: dict[str, Any], actor: str) -> dict[str, Any]:
        activity = {
            "id": str(uuid.uuid4()),
            "agent_run": run,
            "content": content,
            "ephemeral": kind in ("thought", "action", "error"),
            "signal": "continue",
            "actor": actor,
            "type": kind,
            "project": self.project,
            "workspace": self.workspace,
            "created_at": _iso(self.clock()),
        }
        self.activities.append(activity)
        return activity

    def _move(self, row: dict[str, Any], status: str) -> None:
        row["status"] = status
        row["updated_at"] = _iso(self.clock())
        row["_touched"] = self.clock()
        row["ended_at"] = row["updated_at"] if status in ENDED else None

    def _settle_stale(self, row: dict[str, Any]) -> None:
        touched = row.get("_touched", 0.0)
        if row["status"] in ("created", "in_progress") and self.clock() - touched > STALE_AFTER:
            self._move(row, "stale")

    def agent_said(self, run: str, body: dict[str, Any]) -> dict[str, Any]:
        row = self.runs.get(run)
        if row is None:
            raise _Refused(404, "Agent run not found")
        self._settle_stale(row)
        kind = body["type"]
        activity = self._activity(run, kind, body["content"], self.bot)
        activity["content_metadata"] = body.get("content_metadata")
        status = row["status"]
        if kind in ("thought", "action") and status != "stopping":
            self._move(row, "in_progress")
        elif kind == "response":
            self._move(row, "stopped" if status == "stopping" else "in_progress")
        elif kind == "elicitation":
            self._move(row, "awaiting")
        elif kind == "error":
            self._move(row, "failed")
        return _valid(am.AgentRunActivity, activity)


class Handler(plane_standin.Handler):
    """plane_standin's handler (its verbs, no log) with the agent's routes."""

    data: ClassVar[AgentStandin]  # type: ignore[assignment]

    def _serve(self, method: str) -> None:
        path, query, raw = self._request()
        try:
            with self.data.lock:
                status, answer = self._route(method, path, query, raw)
        except _Refused as refused:
            status, answer = refused.status, {"error": str(refused)}
        except AssertionError as broken:
            self.data.problems.append(str(broken))
            status, answer = 500, {"error": "stand-in error"}
        self._send(status, answer)

    def _route(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Any:
        d = self.data
        if (method, path) == ("POST", "/auth/o/token/"):
            return self._token(raw)
        if self.headers.get("authorization") not in {f"Bearer {t}" for t in d.tokens}:
            raise _Refused(401, "Authentication credentials were not provided.")
        body = json.loads(raw) if raw else None
        for pattern, verb, handle in ROUTES:
            found = re.fullmatch(pattern.replace("{slug}", re.escape(d.slug)), path)
            if found and verb == method:
                return handle(self, *found.groups(), query=query, body=body)
        d.problems.append(f"unknown request {method} {path}")
        raise _Refused(404, "Page not found.")

    def _token(self, raw: bytes) -> Any:
        d = self.data
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        basic = base64.b64encode(f"{d.client_id}:{d.client_secret}".encode()).decode()
        if self.headers.get("authorization") != f"Basic {basic}":
            raise _Refused(401, "invalid_client")
        if form != {"grant_type": "client_credentials", "app_installation_id": d.installation}:
            raise _Refused(400, f"invalid_request {sorted(form)}")
        token = f"pln_bot_{uuid.uuid4().hex}"
        d.tokens.append(token)
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": d.expires_in}
        return 200, _valid(OAuthToken, {**answer, "scope": "read write"})

    def installation(self, *, query: dict[str, str], body: Any) -> Any:
        d = self.data
        if query.get("id") != d.installation:
            return 200, []
        detail = {"slug": d.slug, "id": d.workspace, "name": "Acme"}
        row = {"id": d.installation, "workspace": d.workspace, "app_bot": d.bot}
        return 200, [{**row, "workspace_detail": detail}]

    def members(self, *, query: dict[str, str], body: Any) -> Any:
        rows = [{"id": i, "email": e} for i, e in self.data.members.items()]
        return 200, [_valid(ws.WorkspaceMember, r) for r in rows]

    def a_project(self, project: str, *, query: dict[str, str], body: Any) -> Any:
        d = self.data
        if project != d.project:
            raise _Refused(404, "Project not found")
        return 200, _valid(pm.Project, {"id": d.project, "name": "Eng", "identifier": d.identifier})

    def work_item(self, project: str, item: str, *, query: dict[str, str], body: Any) -> Any:
        if item not in self.data.items:
            raise _Refused(404, "Work item not found")
        return 200, _valid(wm.WorkItemDetail, self.data.items[item])

    def run(self, run: str, *, query: dict[str, str], body: Any) -> Any:
        row = self.data.runs.get(run)
        if row is None:
            raise _Refused(404, "Agent run not found")
        self.data._settle_stale(row)
        return 200, _valid(am.AgentRun, {k: v for k, v in row.items() if k != "_touched"})

    def list_activities(self, run: str, *, query: dict[str, str], body: Any) -> Any:
        rows = [a for a in self.data.activities if a["agent_run"] == run]
        return self._page(rows, query, am.PaginatedAgentRunActivityResponse)

    def create_activity(self, run: str, *, query: dict[str, str], body: Any) -> Any:
        checked = _body(am.CreateAgentRunActivity, body)
        return 201, self.data.agent_said(run, checked)

    def complete(self, run: str, *, query: dict[str, str], body: Any) -> Any:
        if not isinstance(body, dict) or body.get("status") != "completed":
            raise _Refused(400, "only status completed is accepted")
        unknown = set(body) - {"status", "title", "summary", "token_usage", "credit_usage"}
        if unknown:
            raise _Refused(400, f"unknown fields {sorted(unknown)}")
        row = self.data.runs[run]
        self.data._move(row, "completed")
        return 200, _valid(am.AgentRun, {k: v for k, v in row.items() if k != "_touched"})

    def feed(self, *, query: dict[str, str], body: Any) -> Any:
        since = query.get("created_at__gte", "")
        rows = [
            a
            for a in self.data.activities
            if a["type"] == query.get("type", a["type"]) and a["created_at"] >= since
        ]
        return self._page(rows, query, am.PaginatedAgentRunActivityResponse)


UUID = r"([0-9a-f-]{36})"
V1, V2 = "/api/v1/workspaces/{slug}/", "/api/v2/workspaces/{slug}/"
ROUTES: list[tuple[str, str, Any]] = [
    (r"/auth/o/app-installation/", "GET", Handler.installation),
    (rf"{V1}members/", "GET", Handler.members),
    (rf"{V1}projects/{UUID}/", "GET", Handler.a_project),
    (rf"{V1}projects/{UUID}/work-items/{UUID}/", "GET", Handler.work_item),
    (rf"{V1}runs/{UUID}/", "GET", Handler.run),
    (rf"{V1}runs/{UUID}/activities/", "GET", Handler.list_activities),
    (rf"{V1}runs/{UUID}/activities/", "POST", Handler.create_activity),
    (rf"{V2}runs/{UUID}/", "PATCH", Handler.complete),
    (rf"{V2}runs/activities/", "GET", Handler.feed),
]


@contextmanager
def serve_agent(standin: AgentStandin) -> Iterator[AgentStandin]:
    with serve_with(standin, Handler):
        yield standin


def deliver(url: str, secret: str, event: dict[str, Any], *, forged: bool = False) -> int:
    """POST ``event`` as Plane's webhook task does: ``json.dumps`` bytes, their HMAC."""
    raw = json.dumps(event).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Autopilot",
        "X-Plane-Delivery": str(uuid.uuid4()),
        "X-Plane-Event": "agent_run_activity",
        "X-Plane-Signature": ("0" * 64) if forged else signature,
    }
    return httpx.post(url, content=raw, headers=headers, timeout=10).status_code

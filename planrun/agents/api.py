"""Plane's agent API, the few endpoints a Plane agent uses (research/trackers.md §1).

- ``POST /auth/o/token/`` (client credentials, Basic auth, the installation id): a bot
  token, valid ``expires_in`` seconds (24 h); taken again :data:`REFRESH_AHEAD` before it
  expires. It lives in this object only: never written, never in a session's environment.
- ``GET /auth/o/app-installation/?id=``: the workspace's slug and id, and the bot user.
- v1, under ``/api/v1/workspaces/{slug}/``: ``projects/{p}/work-items/{id}/`` (the item
  mentioned), ``members/`` (e-mail addresses for the allow-list),
  ``runs/{run}/activities/`` (list; post an activity).
- v2, under ``/api/v2/workspaces/{slug}/``: ``runs/activities/?type=prompt`` (the
  workspace's prompts: mentions, replies and stop requests, for polling) and ``PATCH
  runs/{run}/`` ``{"status": "completed"}`` (the only way a run completes; an older
  server's 404 or 405 is taken as done).

Synchronous httpx (the outbox and the poll call it from worker threads); every failure is
a :class:`~planrun.trackers.http.TrackerError` naming the agent, never holding a secret.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from planrun.core.frozen import frozen
from planrun.trackers.http import Http, TrackerError, cursor_pages

#: A bot token is taken again this long before it expires (seconds).
REFRESH_AHEAD = 3600.0
PER_PAGE = 100


@frozen
class Installation:
    slug: str  # the workspace's slug, in every path
    workspace: str  # its id
    bot: str  # the bot user's id: the actor of the agent's own activities


class AgentApi:
    """Agent ``name`` at ``url``, authenticated as the app ``client_id``/``client_secret``
    installed as ``installation``."""

    def __init__(
        self,
        name: str,
        url: str,
        client: tuple[str, str],
        installation: str,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.name = name
        self._client = client
        self._installation_id = installation
        self._clock = clock
        headers = {"User-Agent": "planrun", "Accept": "application/json"}
        self.http = Http(f"agent {name}", url, headers, transport=transport)
        self._token: tuple[str, float] | None = None  # the token, when to take another
        self._given: list[str] = []  # the latest tokens, masked in what planrun says
        self._installation: Installation | None = None
        self._emails: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------ auth

    def _bearer(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._token[1]:
                self._token = self._take_token()
            return {"Authorization": f"Bearer {self._token[0]}"}

    def mask(self, text: str) -> str:
        """``text`` without any bot token this object was given (for what planrun says)."""
        for token in self._given:
            text = text.replace(token, "***")
        return text

    def _take_token(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", "app_installation_id": self._installation_id}
        answer = self.http.json("POST", "auth/o/token/", data=form, headers=_basic(*self._client))
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise TrackerError(f"agent {self.name}: the token answer has no access_token")
        self._given = [*self._given[-3:], token]
        lasts = float(answer.get("expires_in") or 86400)
        return token, self._clock() + max(lasts - REFRESH_AHEAD, lasts / 2)

    def installation(self) -> Installation:
        if self._installation is None:
            path = "auth/o/app-installation/"
            rows = self._get(path, params={"id": self._installation_id})
            row = rows[0] if isinstance(rows, list) and rows else rows
            if not isinstance(row, dict):
                raise TrackerError(f"agent {self.name}: installation {self._installation_id} ?")
            detail = row.get("workspace_detail") or {}
            self._installation = Installation(
                str(detail["slug"]), str(row["workspace"]), str(row["app_bot"])
            )
        return self._installation

    @property
    def known_installation(self) -> Installation | None:
        """The installation, if it was read already (never asks Plane)."""
        return self._installation

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.http.json("GET", path, params=params, headers=self._bearer())

    def _v1(self, rest: str) -> str:
        return f"api/v1/workspaces/{self.installation().slug}/{rest}"

    def _v2(self, rest: str) -> str:
        return f"api/v2/workspaces/{self.installation().slug}/{rest}"

    # ------------------------------------------------------------ reading

    def pages(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        query = {"per_page": PER_PAGE, **params}
        yield from cursor_pages(self._get, path, query, f"agent {self.name}")

    def prompts_since(self, since: str) -> list[dict[str, Any]]:
        """The workspace's prompt activities created at or after ``since`` (ISO 8601),
        oldest first: mentions, replies and stop requests of every run of the agent."""
        params = {"type": "prompt", "created_at__gte": since, "order_by": "created_at"}
        return list(self.pages(self._v2("runs/activities/"), params))

    def activities(self, run: str) -> list[dict[str, Any]]:
        return list(self.pages(self._v1(f"runs/{run}/activities/"), {}))

    def run(self, run: str) -> dict[str, Any]:
        """The agent run (its work item, project and creator)."""
        found: dict[str, Any] = self._get(self._v1(f"runs/{run}/"))
        return found

    def project_identifier(self, project: str) -> str:
        return str(self._get(self._v1(f"projects/{project}/"))["identifier"])

    def work_item(self, project: str, issue: str) -> dict[str, Any]:
        path = self._v1(f"projects/{project}/work-items/{issue}/")
        item: dict[str, Any] = self._get(path, {"expand": "labels,state"})
        return item

    def email_of(self, user: str) -> str:
        """The e-mail address of workspace member ``user`` ("" if unknown)."""
        if user not in self._emails:
            members = self._get(self._v1("members/"))
            for member in members if isinstance(members, list) else ():
                if isinstance(member, dict) and member.get("id"):
                    self._emails[str(member["id"])] = str(member.get("email") or "")
        return self._emails.get(user, "")

    # ------------------------------------------------------------ writing

    def post_activity(self, run: str, body: Mapping[str, Any]) -> None:
        path = self._v1(f"runs/{run}/activities/")
        self.http.json("POST", path, json=dict(body), headers=self._bearer())

    def complete(self, run: str, summary: str) -> None:
        data = {"status": "completed", "summary": summary}
        try:
            self.http.json("PATCH", self._v2(f"runs/{run}/"), json=data, headers=self._bearer())
        except TrackerError as exc:
            if exc.status not in (404, 405):  # an older server: its response ended the run
                raise


def _basic(client_id: str, secret: str) -> dict[str, str]:
    auth = httpx.BasicAuth(client_id, secret)
    request = auth.auth_flow(httpx.Request("POST", "http://x")).__next__()
    return {"Authorization": request.headers["Authorization"]}

"""One request to a tracker's API, its rate limits told apart from its other failures.

:class:`Http` sends one request and raises :class:`TrackerError` for anything but a 2xx
answer: :class:`RateLimited` (with the time the limit resets) for a 429, or a 403 that
says so (``Retry-After``, or ``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset``, as
GitHub answers). Waiting is the caller's: compiling waits a little with
:func:`with_waits`; the outbox waits on trio's clock. Every message names the tracker,
and never holds the token (it is only in the ``Authorization`` header).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

#: Seconds one request may take (connect, read, write, pool).
TIMEOUT = 30.0
#: The most a compile waits, in all, for a tracker's rate limit to reset.
MAX_COMPILE_WAIT = 60.0
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


class TrackerError(Exception):
    """A tracker's API could not do what was asked; ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    @property
    def transient(self) -> bool:
        """Worth trying again later: no answer, a rate limit or a server error."""
        return self.status is None or self.status >= 500 or self.status in (408, 409, 429)


class RateLimited(TrackerError):
    """The tracker's rate limit is spent until ``reset_at`` (a Unix time)."""

    def __init__(self, message: str, status: int, reset_at: float) -> None:
        super().__init__(message, status)
        self.reset_at = reset_at


class Http:
    """Requests to one tracker (``name`` in messages) at ``base_url``, with ``headers``."""

    def __init__(
        self,
        name: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=dict(headers),
            timeout=TIMEOUT,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The 2xx answer to one request (``data``: a form; ``headers`` added to the
        client's); TrackerError (RateLimited) otherwise."""
        try:
            response = self._client.request(
                method, path.lstrip("/"), params=params, json=json, data=data, headers=headers
            )
        except httpx.HTTPError as exc:
            raise TrackerError(
                f"tracker {self.name} is unreachable at {self._client.base_url}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if response.is_success:
            return response
        raise _failure(self.name, method, path, response)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body of :meth:`request`'s answer."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json() if response.content else None
        except ValueError:
            raise TrackerError(
                f"tracker {self.name}: {method} {path} answered {response.status_code} "
                "with a body that is not JSON"
            ) from None

    def pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
        """Each page of a list, following the ``Link: <...>; rel="next"`` header."""
        url: str | None = path
        query: Mapping[str, Any] | None = params
        while url is not None:
            response = self.request("GET", url, params=query)
            body = response.json()
            if not isinstance(body, list):
                raise TrackerError(f"tracker {self.name}: GET {path} did not answer a list")
            yield body
            found = _NEXT.search(response.headers.get("link", ""))
            url, query = (found.group(1), None) if found else (None, None)
            if url is not None and not url.startswith(str(self._client.base_url)):
                raise TrackerError(
                    f"tracker {self.name}: the next page is on another server ({url})"
                )


def cursor_pages(
    get: Callable[[str, Mapping[str, Any]], Any], path: str, params: Mapping[str, Any], who: str
) -> Iterator[Any]:
    """Every row of one of Plane's cursor-paginated lists (``results``, ``next_cursor``,
    ``next_page_results``), each page asked with ``get(path, query)``."""
    query = dict(params)
    while True:
        body = get(path, query)
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise TrackerError(f"{who}: GET {path} is not a page of results")
        yield from body["results"]
        if not body.get("next_page_results") or not body.get("next_cursor"):
            return
        query = {**query, "cursor": body["next_cursor"]}


def _failure(name: str, method: str, path: str, response: httpx.Response) -> TrackerError:
    status = response.status_code
    what = f"tracker {name}: {method} /{path.lstrip('/')} answered {status}"
    detail = _detail(response)
    reset_at = _reset_at(response)
    if status == 429 or (status == 403 and reset_at is not None):
        reset_at = reset_at if reset_at is not None else time.time() + 60
        when = time.strftime("%H:%M:%S UTC", time.gmtime(reset_at))
        return RateLimited(f"{what}: rate limit reached, resets at {when}", status, reset_at)
    if status in (401, 403):
        detail += " (is the token valid, and allowed to do this?)"
    return TrackerError(f"{what}{detail}", status)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f": {str(message)[:300]}" if message else ""


def _reset_at(response: httpx.Response) -> float | None:
    """When a rate limit ends, from ``Retry-After`` or GitHub's ``x-ratelimit-*``."""
    headers = response.headers
    after = headers.get("retry-after")
    if after is not None:
        if after.strip().isdigit():
            return time.time() + int(after)
        parsed = email.utils.parsedate_to_datetime(after) if after else None
        return parsed.timestamp() if parsed is not None else None
    if (
        headers.get("x-ratelimit-remaining") == "0"
        and headers.get("x-ratelimit-reset", "").isdigit()
    ):
        return float(headers["x-ratelimit-reset"])
    return None


def with_waits(
    call: Callable[[], T],
    *,
    max_wait: float = MAX_COMPILE_WAIT,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, waiting out rate limits that reset within ``max_wait`` seconds in all."""
    waited = 0.0
    while True:
        try:
            return call()
        except RateLimited as limited:
            wait = max(limited.reset_at - time.time(), 0.0) + 0.25
            if waited + wait > max_wait:
                raise
            sleep(wait)
            waited += wait

"""Helpers of the board's tests: a real ``planrun board`` process, real HTTP requests and
event streams (the standard library's client), and a real headless chromium.

Nothing here sleeps blindly: every wait polls a condition with a deadline.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import runs

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass
class Board:
    """A running ``planrun board``: its process and where it listens."""

    proc: subprocess.Popen[str]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def get(self, path: str, **options: Any) -> Reply:
        return get(self.host, self.port, path, **options)


@contextmanager
def board(plan: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Board]:
    """``planrun board PLAN --listen 127.0.0.1:0 ARGS``, stopped with SIGTERM at the end."""
    proc = subprocess.Popen(
        [*runs.PLANRUN, "board", str(plan), "--listen", "127.0.0.1:0", *args],
        cwd=plan.parent,
        env=runs.environment(**(env or {})),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the URL, printed once it listens
        found = re.search(r"http://([0-9.]+):(\d+)/", first)
        if found is None:
            proc.kill()
            raise AssertionError(f"no URL from planrun board: {first!r} {proc.communicate()}")
        yield Board(proc, found.group(1), int(found.group(2)))
    finally:
        runs.stop(proc)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


def get(host: str, port: int, path: str, *, method: str = "GET", host_header: str = "") -> Reply:
    """One real HTTP request."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        headers = {"Host": host_header} if host_header else {}
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        body = response.read().decode()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        conn.close()


def read_events(
    host: str, port: int, path: str, until: Callable[[list[tuple[str, str]]], bool]
) -> tuple[list[tuple[str, str]], str]:
    """Read the server-sent events of ``path`` until ``until(events)``: the (event, data)
    pairs and the raw text of the stream so far. 20 s at most."""
    conn = http.client.HTTPConnection(host, port, timeout=20)
    events: list[tuple[str, str]] = []
    raw: list[str] = []
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        deadline = time.monotonic() + 20
        name, data = "", []
        while not until(events):
            assert time.monotonic() < deadline, f"events so far: {events}"
            line = response.readline().decode()
            raw.append(line)
            if line.startswith("event: "):
                name = line[7:].rstrip("\n")
            elif line.startswith("data: "):
                data.append(line[6:].rstrip("\n"))
            elif line == "\n" and name:
                events.append((name, "\n".join(data)))
                name, data = "", []
    finally:
        conn.close()
    return events, "".join(raw)


def log_lines(events: list[tuple[str, str]]) -> list[str]:
    """The lines of the ``log`` events."""
    return [line for name, data in events if name == "log" for line in json.loads(data)["lines"]]


# ---------------------------------------------------------------- the browser


def chromium_or_skip() -> tuple[str, str]:
    """Debian's chromium and its chromedriver, or skip (CI installs both)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install them)")
    pytest.importorskip("selenium")
    return browser, driver


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium driven by selenium through chromedriver, fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_or_skip()
    with tempfile.TemporaryDirectory(prefix="planrun-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,900"):
            options.add_argument(flag)
        session = webdriver.Chrome(options=options, service=Service(driver))
        try:
            session.set_page_load_timeout(20)
            yield session
        finally:
            session.quit()


def wait_until(condition: Callable[[], object], what: str, timeout: float = 20.0) -> Any:
    """Poll ``condition`` until it returns something true (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # the page is being replaced under us: ask again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)  # polling a condition with a deadline


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""Live smoke tests: each reads one real tracker (read-only: items, never a write), and is
reported as skipped unless its credentials are in the environment.

- GitHub: ``PLANRUN_LIVE_GITHUB_TOKEN`` and ``PLANRUN_LIVE_GITHUB_REPO`` (``owner/name``);
- Plane: ``PLANRUN_LIVE_PLANE_KEY``, ``PLANRUN_LIVE_PLANE_WORKSPACE``,
  ``PLANRUN_LIVE_PLANE_PROJECT`` (and ``PLANRUN_LIVE_PLANE_URL`` for a self-hosted one);
- Jira: ``PLANRUN_LIVE_JIRA_URL``, ``PLANRUN_LIVE_JIRA_EMAIL``, ``PLANRUN_LIVE_JIRA_TOKEN``
  and ``PLANRUN_LIVE_JIRA_JQL``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from planrun.plan.model import GitHubTracker, JiraTracker, PlaneTracker, TrackerSelect
from planrun.trackers.source import fetch_items


def needs(*names: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"live tracker test: set {', '.join(missing)} to run it")
    return {n: os.environ[n] for n in names}


def check(items: list[Any]) -> None:
    ids = [item.id for item in items]
    assert len(ids) == len(set(ids))
    for item in items:
        assert item["title"] is not None
        assert item["url"].startswith("http")


def test_github_live() -> None:
    env = needs("PLANRUN_LIVE_GITHUB_TOKEN", "PLANRUN_LIVE_GITHUB_REPO")
    tracker = GitHubTracker(
        kind="github", repo=env["PLANRUN_LIVE_GITHUB_REPO"], token="PLANRUN_LIVE_GITHUB_TOKEN"
    )
    check(fetch_items("live", tracker, TrackerSelect(state="all", limit=10_000), env))


def test_plane_live() -> None:
    env = needs(
        "PLANRUN_LIVE_PLANE_KEY", "PLANRUN_LIVE_PLANE_WORKSPACE", "PLANRUN_LIVE_PLANE_PROJECT"
    )
    tracker = PlaneTracker(
        kind="plane",
        workspace=env["PLANRUN_LIVE_PLANE_WORKSPACE"],
        project=env["PLANRUN_LIVE_PLANE_PROJECT"],
        url=os.environ.get("PLANRUN_LIVE_PLANE_URL") or "https://api.plane.so",
        token="PLANRUN_LIVE_PLANE_KEY",
    )
    check(fetch_items("live", tracker, TrackerSelect(state="all", limit=10_000), env))


def test_jira_live() -> None:
    env = needs(
        "PLANRUN_LIVE_JIRA_URL",
        "PLANRUN_LIVE_JIRA_EMAIL",
        "PLANRUN_LIVE_JIRA_TOKEN",
        "PLANRUN_LIVE_JIRA_JQL",
    )
    tracker = JiraTracker(
        kind="jira",
        url=env["PLANRUN_LIVE_JIRA_URL"],
        email=env["PLANRUN_LIVE_JIRA_EMAIL"],
        token="PLANRUN_LIVE_JIRA_TOKEN",
    )
    select = TrackerSelect(jql=env["PLANRUN_LIVE_JIRA_JQL"], limit=10_000)
    check(fetch_items("live", tracker, select, env))

"""The changesets a plan's runs recorded, read back from the store (no network), for
``planrun changesets``; and their one-line summary for ``planrun status``.

``status`` must stay cheap whatever the store holds, so it does not read the events of
every run: the publisher keeps ``<state_dir>/changesets.json``, each project's latest
state, written (atomically) after every record it makes in the store. The store stays
the truth; a crash between the two leaves the file one step behind until the next
apply of the plan writes it again.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from planrun.atomic import write_atomic
from planrun.changes.record import DELIVERED_EVENT, INTENT_EVENT
from planrun.report.model import ChangesetReport
from planrun.state.store import StoreReader

SUMMARY_FILE = "changesets.json"


@dataclass
class Recorded:
    """One project's changeset as last recorded: ``state`` is the last delivery's, or
    ``waiting`` when the latest proposal is not delivered yet (the hourly limit, GitHub
    down); ``number`` is the PR's, once there is one."""

    project: str
    repo: str
    branch: str
    state: str
    number: int | None = None
    url: str = ""
    detail: str = ""
    commit: str | None = None
    base_commit: str | None = None  # the base's commit when it was last proposed
    published: bool | str | None = None  # as last delivered (draft, true, false)


def recorded_changesets(store: StoreReader, plan_name: str) -> dict[str, Recorded]:
    """Each project's changeset, by project name, in the order they were first proposed."""
    found: dict[str, Recorded] = {}
    latest: dict[str, str] = {}
    settled: set[str] = set()
    for row in store.plan_events(plan_name, (INTENT_EVENT, DELIVERED_EVENT)):
        data = row.data
        if row.kind == INTENT_EVENT:
            project = str(data["project"])
            latest[project] = f"{row.run_id}/{row.seq}"
            known = found.get(project)
            if known is None:
                found[project] = Recorded(project, str(data["repo"]), str(data["branch"]), "")
            else:
                known.repo, known.branch = str(data["repo"]), str(data["branch"])
        elif row.kind == DELIVERED_EVENT and str(data.get("project")) in found:
            settled.update(data.get("intents") or ())
            change = found[str(data["project"])]
            change.state = str(data.get("state") or "")
            change.number = data.get("number") or change.number
            change.url = str(data.get("url") or change.url)
            change.detail = str(data.get("detail") or "")
            change.commit = data.get("commit") or change.commit
            change.base_commit = data.get("base_commit") or change.base_commit
            if "published" in data:
                change.published = data["published"]
    for project, ident in latest.items():
        if ident not in settled:
            found[project].state = "waiting"
    return found


def write_summary(state_dir: Path, found: Mapping[str, Recorded]) -> None:
    """Keep ``found`` in the state folder for ``planrun status`` (best effort: it only
    informs; the store holds the record)."""
    data = {"format": 1, "changesets": {name: asdict(c) for name, c in found.items()}}
    with contextlib.suppress(OSError):
        write_atomic(state_dir / SUMMARY_FILE, json.dumps(data).encode())


def last_states(state_dir: Path) -> dict[str, str]:
    """Each project's changeset state as last kept for ``planrun status`` (``opened
    #3``, ``waiting``); empty when there is none, or the file cannot be read."""
    try:
        data = json.loads((state_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        found = data["changesets"]
        return {
            str(name): str(c["state"]) + (f" #{c['number']}" if c.get("number") else "")
            for name, c in found.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def summary(state_dir: Path) -> str | None:
    """``changesets: 3 (2 opened, 1 waiting)``, or None when the plan has none."""
    states = [state.split(" #")[0] for state in last_states(state_dir).values()]
    if not states:
        return None
    counts = Counter(states)
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return f"changesets: {len(states)} ({parts}); `planrun changesets PLAN` for their PRs"


def run_changesets(store: StoreReader, run_id: str) -> list[ChangesetReport]:
    """The changesets one run proposed or delivered, as the run report shows them: the
    last delivery's state in that run, else ``waiting``."""
    found: dict[str, ChangesetReport] = {}
    for row in store.events(run_id):
        if row.kind not in (INTENT_EVENT, DELIVERED_EVENT):
            continue
        data = row.data
        project = str(data.get("project"))
        known = found.setdefault(
            project, ChangesetReport(project=project, repo=str(data.get("repo")), state="waiting")
        )
        if row.kind == INTENT_EVENT:
            known.state = "waiting"
            continue
        number = data.get("number")
        known.state = str(data.get("state") or "")
        known.number = number if isinstance(number, int) else known.number
        known.url = str(data.get("url") or known.url)
        known.detail = str(data.get("detail") or "")
    return list(found.values())

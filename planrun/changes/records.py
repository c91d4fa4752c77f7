"""The changesets a plan's runs recorded, read back from the store (pure reading: no
network), for ``planrun changesets`` and the summary line of ``planrun status``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from planrun.changes.record import DELIVERED_EVENT, INTENT_EVENT
from planrun.state.store import StoreReader


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


def recorded_changesets(store: StoreReader, plan_name: str) -> dict[str, Recorded]:
    """Each project's changeset, by project name, in the order they were first proposed."""
    found: dict[str, Recorded] = {}
    latest: dict[str, str] = {}
    settled: set[str] = set()
    for run in store.runs(plan_name):
        for row in store.events(run.id):
            data = row.data
            if row.kind == INTENT_EVENT:
                project = str(data["project"])
                latest[project] = f"{run.id}/{row.seq}"
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
    for project, ident in latest.items():
        if ident not in settled:
            found[project].state = "waiting"
    return found


def summary(store: StoreReader, plan_name: str) -> str | None:
    """``changesets: 3 (2 opened, 1 waiting)``, or None when the plan has none."""
    found = recorded_changesets(store, plan_name)
    if not found:
        return None
    counts = Counter(c.state for c in found.values())
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return f"changesets: {len(found)} ({parts}); `planrun changesets PLAN` for their PRs"

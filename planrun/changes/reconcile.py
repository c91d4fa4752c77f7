"""Reconciling re-apply: the changesets of repositories a plan no longer has.

A repository of a ``repositories:`` project (``svc[owner/name]``) that a query no longer
selects, that is no longer listed, or that opted out with ``.batchignore``, may still
have the PR an earlier run opened. With ``changesets: {close_unmatched: true}`` planrun
closes it at the start of the next ``apply``, with a comment saying why; without it the
PR is left as it is and said on stderr. Only planrun's own PR (its marker) is closed; a
PR a person closed or merged is left alone. A repository that could not be cloned or
fetched still matches: its PR stays. The close is recorded as a ``changeset_delivered``
event (state ``closed``), so it is done once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from planrun.changes.pulls import Pulls, pr_state
from planrun.changes.record import DELIVERED_EVENT, marker
from planrun.changes.records import Recorded, write_summary
from planrun.errors import StoreError
from planrun.plan.resolved import ChangesetSpec, CompiledPlan
from planrun.trackers.http import TrackerError

if TYPE_CHECKING:
    from planrun.changes.publisher import Publisher

#: States a recorded changeset is settled in: nothing to close.
SETTLED = frozenset({"closed", "merged", "exists", "unpublished", "no_diff", "failed"})


def unmatched(plan: CompiledPlan, found: Mapping[str, Recorded]) -> list[Recorded]:
    """Recorded changesets with a PR, of repositories ``plan``'s ``repositories:``
    projects no longer have."""
    prefixes = tuple(f"{key}[" for key in plan.repositories)
    return [
        change
        for name, change in found.items()
        if prefixes
        and name.startswith(prefixes)
        and name not in plan.projects
        and change.number is not None
        and change.state not in SETTLED
    ]


def _spec_for(plan: CompiledPlan, project: str) -> ChangesetSpec | None:
    """The changeset of a repository still in the same written project (token, API)."""
    written = project.split("[", 1)[0]
    for repo in plan.repositories.get(written, ()):
        spec = plan.projects.get(repo.key)
        if spec is not None and spec.changeset is not None:
            return spec.changeset
    return None


async def close_unmatched(publisher: Publisher) -> None:
    """Close (or name) the PRs of repositories that no longer match (see the module doc)."""
    plan = publisher.plan
    for change in unmatched(plan, publisher.found):
        what = f"{change.repo}#{change.number}"
        if not plan.publishing.close_unmatched:
            print(
                f"planrun: {what} is no longer among the plan's repositories; its PR stays "
                "open (changesets.close_unmatched: true closes it)",
                file=sys.stderr,
            )
            continue
        spec = _spec_for(plan, change.project)
        token = publisher.environ.get(spec.token) if spec is not None else None
        if spec is None or not token:
            print(f"planrun: {what} no longer matches, but no token to close it", file=sys.stderr)
            continue
        try:
            state = await trio.to_thread.run_sync(
                _close, change, plan.name, spec.url, token, publisher.redact
            )
        except TrackerError as exc:
            print(
                f"planrun: closing {what} failed: {publisher.redact(exc.message)}", file=sys.stderr
            )
            continue
        _record(publisher, change, state)


def _close(change: Recorded, plan: str, url: str, token: str, redact: Callable[[str], str]) -> str:
    """Comment and close planrun's PR (if still open); the state it is left in."""
    assert change.number is not None
    pulls = Pulls(change.repo, url, token)
    try:
        pull = pulls.get(change.number)
        state = pr_state(pull)
        if state not in ("open", "draft"):
            return state
        if marker(plan, change.project) not in str(pull.get("body") or ""):
            return "exists"
        why = (
            f"planrun: closing this pull request: {change.repo} is no longer among the "
            f"repositories of plan {plan} (no longer selected or listed, or it opted out "
            "with .batchignore), and the plan closes unmatched changesets."
        )
        pulls.comment(change.number, redact(why))
        pulls.edit(change.number, state="closed")
        return "closed"
    finally:
        pulls.close()


def _record(publisher: Publisher, change: Recorded, state: str) -> None:
    detail = "closed: no longer matches" if state == "closed" else ""
    data: dict[str, Any] = {
        "intents": [],
        "project": change.project,
        "repo": change.repo,
        "branch": change.branch,
        "state": state,
        "number": change.number,
        "url": change.url,
        "pushed": False,
        "commit": change.commit,
        "detail": detail,
        "time": time.time(),
    }
    try:
        publisher.store.happened(publisher.run_id, DELIVERED_EVENT, None, data)
    except StoreError as exc:
        print(f"planrun: {change.repo} closed but not recorded: {exc}", file=sys.stderr)
    change.state, change.detail = state, detail
    if publisher.state_dir is not None:
        write_summary(publisher.state_dir, publisher.found)
    print(f"planrun: {change.repo}#{change.number}: {state} (no longer matches)", file=sys.stderr)

"""``planrun changesets PLAN [list|merge|close|comment TEXT]``: the plan's PRs, in bulk.

Reads the changesets the plan's runs recorded (the store, read-only: it works while an
apply runs) and each PR's current state from GitHub: open, draft, merged or closed, its
check runs (passing, failing, pending, none) and its review decision (approved,
changes requested, none). ``--state``, ``--checks`` and ``--repo`` choose which;
``merge``, ``close`` and ``comment TEXT`` act on each chosen PR that can take it, and say
what they did. A comment is redacted like everything planrun sends. Exit 0, or 1 when an
action failed.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from planrun.changes.records import Recorded, recorded_changesets
from planrun.errors import UsageError
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from planrun.run.environment import secrets_masked
from planrun.state.locate import locate
from planrun.state.queries import open_readonly

if TYPE_CHECKING:
    from planrun.changes.pulls import Pulls

#: What each action can act on (the PR's live state).
ACTS_ON = {"merge": ("open",), "close": ("open", "draft"), "comment": ("open", "draft")}


@dataclass
class Row:
    change: Recorded
    state: str
    checks: str = "-"
    review: str = "-"


def run_changesets(args: argparse.Namespace, out: TextIO) -> int:
    plan = load_plan(Path(args.plan))
    if args.action == "comment" and not args.text:
        raise UsageError("comment needs its TEXT: planrun changesets PLAN comment TEXT")
    if args.action != "comment" and args.text:
        raise UsageError(f"{args.action} takes no TEXT")
    store = open_readonly(locate(args.plan, args.state_dir))
    try:
        found = recorded_changesets(store, plan.name)
    finally:
        store.close()
    chosen = [c for c in found.values() if fnmatchcase(c.repo, args.repo or "*")]
    failed = 0
    with secrets_masked(plan) as redact:
        rows = [_live(plan, c) for c in chosen]
        rows = [r for r in rows if args.state is None or r.state == args.state]
        rows = [r for r in rows if args.checks is None or _checks(r) == args.checks]
        if args.action == "list":
            out.write(redact(_table(rows)))
        else:
            for row in rows:
                said, ok = _act(plan, row, args.action, redact(args.text or ""))
                failed += not ok
                print(redact(said), file=out)
    return 1 if failed else 0


def _checks(row: Row) -> str:
    """The row's checks for ``--checks``: a changeset without a PR has none."""
    return "none" if row.checks == "-" else row.checks


def _pulls(plan: CompiledPlan, change: Recorded) -> Pulls | None:
    from planrun.changes.pulls import Pulls

    spec = plan.changeset_of(change.project)
    if spec is None or change.number is None:
        return None
    token = os.environ.get(spec.token)
    if not token:
        raise UsageError(f"{spec.token} is not set: it is the token of {change.repo}")
    return Pulls(change.repo, spec.url, token)


def _live(plan: CompiledPlan, change: Recorded) -> Row:
    """The changeset with its PR's state read from GitHub (as recorded when there is no PR,
    or GitHub cannot be read: then the detail says why)."""
    from planrun.changes.pulls import checks_summary, pr_state, review_decision
    from planrun.trackers.http import TrackerError

    if change.state in ("exists", "waiting"):  # not planrun's PR, or not sent yet
        return Row(change, change.state)
    pulls = _pulls(plan, change)
    if pulls is None:
        return Row(change, change.state)
    try:
        pull = pulls.get(change.number or 0)
        sha = str((pull.get("head") or {}).get("sha") or "")
        checks = checks_summary(pulls.check_runs(sha)) if sha else "none"
        return Row(change, pr_state(pull), checks, review_decision(pulls.reviews(pull["number"])))
    except TrackerError as exc:
        change.detail = exc.message
        return Row(change, change.state)
    finally:
        pulls.close()


def _act(plan: CompiledPlan, row: Row, action: str, text: str) -> tuple[str, bool]:
    from planrun.trackers.http import TrackerError

    change = row.change
    what = f"{change.repo}#{change.number}" if change.number else change.repo
    if row.state not in ACTS_ON[action]:
        return f"{what}: {row.state}, not {action}d", True
    pulls = _pulls(plan, change)
    assert pulls is not None
    assert change.number is not None
    try:
        if action == "merge":
            pulls.merge(change.number)
        elif action == "close":
            pulls.edit(change.number, state="closed")
        else:
            pulls.comment(change.number, text)
    except TrackerError as exc:
        return f"{what}: {action} failed: {exc.message}", False
    finally:
        pulls.close()
    return f"{what}: {action.replace('comment', 'commente')}d", True


def _where(change: Recorded) -> str:
    """The PR, and what the last delivery said (why it failed, where unpublished work is)."""
    return " ".join(filter(None, [change.url, change.detail])) or change.branch


def _table(rows: list[Row]) -> str:
    if not rows:
        return "no changesets recorded (or none chosen)\n"
    head = ("PROJECT", "REPO", "STATE", "CHECKS", "REVIEW", "PR")
    cells = [head] + [
        (
            r.change.project,
            r.change.repo,
            r.state,
            r.checks,
            r.review,
            _where(r.change),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"

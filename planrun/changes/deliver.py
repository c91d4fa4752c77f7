"""Delivering one changeset: push its branch, then open or update its pull request.

Every step looks before it acts, so a delivery cut short (planrun killed between the
push and the PR) is simply done again: the branch is pushed only when the remote's
differs, and a PR for the branch (any state) is looked for before one is opened. planrun
knows its own PR by a hidden marker in its body (:func:`planrun.changes.record.marker`);
a PR a person closed is left closed, a merged one is done, and a PR for the branch that
planrun did not open is left alone (``exists``). Runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from planrun.changes import push as git
from planrun.changes.pulls import Pulls, pr_state
from planrun.changes.record import Proposal, Result, full_body, marker
from planrun.trackers.http import TrackerError


def deliver(
    proposal: Proposal,
    url: str,
    environ: Mapping[str, str],
    token: str,
    redact: Callable[[str], str],
    known: int | None = None,
) -> Result:
    """Bring the changeset of ``proposal`` to what it says; TrackerError if GitHub or the
    remote refuse (:class:`~planrun.changes.push.Rejected`: for good). ``known`` is the
    PR planrun recorded for it, if any: a PR of planrun's found without a record was
    opened by a delivery cut short, and gets its reviewers now."""
    if not proposal.verified:
        return Result("failed", detail=proposal.reason)
    path = proposal.path
    commit = proposal.commit or git.tip(path, f"refs/heads/{proposal.target}")
    if commit is None:
        return Result("failed", detail=f"branch {proposal.target} is gone from {path}")
    base = git.base_commit(path, proposal.remote, proposal.base)
    if base is not None and git.same_tree(path, base, commit):
        return Result("no_diff", commit=commit, detail=f"no change against {proposal.base}")
    if proposal.published is False:
        return Result(
            "unpublished", commit=commit, detail=git.keep_branch(path, proposal.branch, commit)
        )
    value = environ.get(token)
    if not value:
        raise TrackerError(f"{token} is not set: the changeset of {proposal.repo} waits")
    pulls = Pulls(proposal.repo, url, value)
    try:
        return _publish(pulls, proposal, commit, value, redact, known)
    finally:
        pulls.close()


def _publish(
    pulls: Pulls,
    proposal: Proposal,
    commit: str,
    token: str,
    redact: Callable[[str], str],
    known: int | None,
) -> Result:
    found = pulls.for_branch(proposal.branch)
    pull = found[0] if found else None
    if pull is not None:
        state = pr_state(pull)
        seen = Result(state, pull["number"], str(pull.get("html_url") or ""), commit=commit)
        if state in ("merged", "closed"):  # done, or a person's no: never reopened
            return seen
        if marker(proposal.plan, proposal.project) not in str(pull.get("body") or ""):
            return Result("exists", seen.number, seen.url, detail="a PR planrun did not open")
    env = git.auth_env(proposal.path, proposal.remote, token)
    pushed = git.remote_head(proposal.path, proposal.remote, proposal.branch, env) != commit
    if pushed:
        git.push(proposal.path, proposal.remote, commit, proposal.branch, env)
    title = redact(proposal.title)
    body = full_body(proposal.body, proposal.plan, proposal.project, redact)
    if pull is None:
        made = pulls.open(
            proposal.branch, proposal.base, title, body, proposal.published == "draft"
        )
        number = int(made["number"])
        if proposal.labels:
            pulls.add_labels(number, list(proposal.labels))
        if proposal.reviewers:
            pulls.request_reviewers(number, list(proposal.reviewers))
        return Result("opened", number, str(made.get("html_url") or ""), pushed, commit)
    if proposal.reviewers and int(pull["number"]) != known:  # opened, then cut short
        pulls.request_reviewers(int(pull["number"]), list(proposal.reviewers))
    return _update(pulls, pull, proposal, title, body, pushed, commit)


def _update(
    pulls: Pulls,
    pull: dict[str, Any],
    proposal: Proposal,
    title: str,
    body: str,
    pushed: bool,
    commit: str,
) -> Result:
    number = int(pull["number"])
    changes = {k: v for k, v in (("title", title), ("body", body)) if pull.get(k) != v}
    if changes:
        pulls.edit(number, **changes)
    have = {str(label.get("name")) for label in pull.get("labels") or ()}
    missing = [label for label in proposal.labels if label not in have]
    if missing:
        pulls.add_labels(number, missing)
    state = "updated" if changes or pushed or missing else "unchanged"
    return Result(state, number, str(pull.get("html_url") or ""), pushed, commit)

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
from dataclasses import replace
from typing import Any

from planrun.changes import forks
from planrun.changes import push as git
from planrun.changes.forks import ForkPolicy, Head
from planrun.changes.pulls import Pulls, pr_state
from planrun.changes.record import Proposal, Result, full_body, marker
from planrun.core.frozen import frozen
from planrun.trackers.http import TrackerError


@frozen
class Known:
    """What planrun recorded of a changeset before this delivery: its PR's number, and
    the commit it last delivered (the lease a rebased branch is pushed against)."""

    number: int | None = None
    commit: str | None = None


#: A changeset planrun has no record of.
NOTHING_KNOWN = Known()


def deliver(
    proposal: Proposal,
    url: str,
    environ: Mapping[str, str],
    token: str,
    redact: Callable[[str], str],
    known: Known = NOTHING_KNOWN,
    fork: ForkPolicy = forks.AUTO,
) -> Result:
    """Bring the changeset of ``proposal`` to what it says; TrackerError if GitHub or the
    remote refuse (:class:`~planrun.changes.push.Rejected`: for good). ``known`` is what
    planrun recorded of it: a PR of planrun's found without a record was opened by a
    delivery cut short, and gets its reviewers now. ``fork`` says when the branch goes
    to a fork (:mod:`planrun.changes.forks`)."""
    if not proposal.verified:
        return Result(proposal.outcome, detail=proposal.reason)
    path = proposal.path
    commit = proposal.commit or git.tip(path, f"refs/heads/{proposal.target}")
    if commit is None:
        return Result("failed", detail=f"branch {proposal.target} is gone from {path}")
    base = git.base_commit(path, proposal.remote, proposal.base)
    if proposal.task is not None:  # a task's own changeset: its landings alone, on the base
        if base is None:
            return Result("failed", detail=f"{proposal.base} is not in {path}")
        message = proposal.commit_message or proposal.title
        own = git.own_work(path, proposal.target, base, proposal.plan, proposal.task, message)
        if own is None:
            return Result("no_diff", detail=f"{proposal.task} landed nothing", base=base)
        commit = own
    if base is not None and git.same_tree(path, base, commit):
        why = f"no change against {proposal.base}"
        return Result("no_diff", commit=commit, detail=why, base=base)
    on = git.merge_base(path, base, commit) if base is not None else None  # what it is on
    if proposal.commit_message is not None and on is not None and proposal.task is None:
        commit = git.squashed(path, on, commit, proposal.commit_message)
    if proposal.published is False and proposal.task is not None:  # its branch is planrun's
        return Result("unpublished", commit=commit, detail=f"not pushed ({commit[:12]})", base=on)
    if proposal.published is False:
        kept = git.keep_branch(path, proposal.branch, commit)
        return Result("unpublished", commit=commit, detail=kept, base=on)
    value = environ.get(token)
    if not value:
        raise TrackerError(f"{token} is not set: the changeset of {proposal.repo} waits")
    pulls = Pulls(proposal.repo, url, value)
    try:
        return replace(_from_head(pulls, proposal, commit, value, redact, known, fork), base=on)
    finally:
        pulls.close()


def _from_head(
    pulls: Pulls,
    proposal: Proposal,
    commit: str,
    token: str,
    redact: Callable[[str], str],
    known: Known,
    fork: ForkPolicy,
) -> Result:
    """:func:`_publish` from the repository, or from a fork when ``fork`` says so (for
    ``auto``: planrun's PR is from a fork, else the token may not push to the repository,
    or the push was refused)."""
    forking = fork.when == "always"
    if fork.when == "auto" and known.number is not None:  # stay where the PR's head is
        forking = forks.from_fork(pulls.get(known.number), proposal.repo)
    elif fork.when == "auto":
        forking = not forks.may_push(pulls.http, proposal.repo)
    if not forking:
        try:
            return _publish(pulls, proposal, commit, redact, known, forks.upstream(proposal, token))
        except git.Forbidden:
            if fork.when != "auto":
                raise
    owner = forks.fork_owner(pulls.http, fork)
    head = Head(owner, "", {})  # the fork is found or made once no PR says it is done
    result = _publish(pulls, proposal, commit, redact, known, head, (token, fork))
    return replace(result, detail=result.detail or f"from the fork of {owner}")


def _publish(
    pulls: Pulls,
    proposal: Proposal,
    commit: str,
    redact: Callable[[str], str],
    known: Known,
    head: Head,
    forking: tuple[str, ForkPolicy] | None = None,
) -> Result:
    found = pulls.for_branch(proposal.branch, head.owner)
    pull = found[0] if found else None
    if pull is not None:
        state = pr_state(pull)
        seen = Result(state, pull["number"], str(pull.get("html_url") or ""), commit=commit)
        if state in ("merged", "closed"):  # done, or a person's no: never reopened
            return seen
        if marker(proposal.plan, proposal.project) not in str(pull.get("body") or ""):
            return Result("exists", seen.number, seen.url, detail="a PR planrun did not open")
    if forking is not None:
        token, policy = forking
        head = forks.fork_head(pulls.http, proposal.repo, head.owner, token, policy)
    there = git.remote_head(proposal.path, head.remote, proposal.branch, head.env)
    pushed = there != commit
    if pushed:
        lease = _lease(proposal, head.remote, there, commit, known.commit)
        git.push(proposal.path, head.remote, commit, proposal.branch, head.env, lease)
    title = redact(proposal.title)
    body = full_body(proposal.body, proposal.plan, proposal.project, redact)
    if pull is None:
        label = head.label(proposal.branch) if head.fork else proposal.branch
        made = pulls.open(label, proposal.base, title, body, proposal.published == "draft")
        number = int(made["number"])
        if proposal.labels:
            pulls.add_labels(number, list(proposal.labels))
        if proposal.reviewers:
            pulls.request_reviewers(number, list(proposal.reviewers))
        return Result("opened", number, str(made.get("html_url") or ""), pushed, commit)
    if proposal.reviewers and int(pull["number"]) != known.number:  # opened, then cut short
        pulls.request_reviewers(int(pull["number"]), list(proposal.reviewers))
    return _update(pulls, pull, proposal, title, body, pushed, commit)


def _lease(
    proposal: Proposal, remote: str, there: str | None, commit: str, ours: str | None
) -> str | None:
    """What the push of ``commit`` over ``there`` (the remote branch) must lease against:
    nothing when it is new or moves forward; the commit planrun pushed last when planrun
    rebased its branch; else the remote has commits planrun did not make: Rejected."""
    if there is None or git.contains(proposal.path, there, commit):
        return None
    if there == ours:
        return there
    raise git.Rejected(
        f"rejected: {remote}'s {proposal.branch} is at {there[:12]}, which planrun "
        f"did not push (it pushed {(ours or 'nothing')[:12]}): someone else's commits are "
        "there, so planrun does not replace the branch (merge or remove them)"
    )


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
    ready = proposal.published is True and bool(pull.get("draft"))
    if ready:  # draft → ready for review; never back to draft
        pulls.mark_ready(str(pull["node_id"]))
    state = "updated" if changes or pushed or missing or ready else "unchanged"
    return Result(state, number, str(pull.get("html_url") or ""), pushed, commit)

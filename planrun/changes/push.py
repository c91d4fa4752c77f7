"""Git for a changeset: the tip to propose, whether it changes anything, and the push.

Synchronous (run in a worker thread by the publisher), argv only, never a shell. The
push is never forced over a person's work: a branch on the remote with commits planrun
did not make is refused, and that changeset fails (:class:`Rejected`). A branch planrun
rebased onto a moved base is pushed ``--force-with-lease`` against the commit planrun
pushed there last, and only then. An ``https`` remote gets the changeset's token as an
HTTP header through git's environment (``GIT_CONFIG_*``), never in argv nor in the
remote's URL; other remotes (ssh, a folder) use the user's own git credentials.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

from planrun.changes.gitcall import GitFailed, run_git, url_auth_env
from planrun.trackers.http import TrackerError


class Rejected(TrackerError):
    """The remote refused the push (not a fast-forward): not worth trying again."""


class Forbidden(Rejected):
    """The remote refused the token (HTTP 403): it may not push there."""


def git(path: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """``git -C path args`` (its stdout); TrackerError when it fails."""
    try:
        return run_git(path, *args, env=env)
    except GitFailed as exc:
        error = Rejected if "[rejected]" in exc.output else TrackerError
        if "error: 403" in exc.output or "403 Forbidden" in exc.output:
            error = Forbidden
        raise error(str(exc)) from None


def tip(path: str, ref: str) -> str | None:
    """The commit ``ref`` names in the repository at ``path``, if any."""
    try:
        return git(
            path, "rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"
        ).strip()
    except TrackerError:
        return None


def base_commit(path: str, remote: str, base: str) -> str | None:
    """The base branch as last fetched from ``remote``, else the local branch."""
    return tip(path, f"refs/remotes/{remote}/{base}") or tip(path, f"refs/heads/{base}")


def same_tree(path: str, first: str, second: str) -> bool:
    """Whether the two commits hold the same files (the change would be empty)."""

    def tree(commit: str) -> str:
        return git(path, "rev-parse", "--verify", "--end-of-options", f"{commit}^{{tree}}").strip()

    return tree(first) == tree(second)


def remote_head(path: str, remote: str, branch: str, env: Mapping[str, str]) -> str | None:
    """The commit ``branch`` is at on ``remote`` (None: the remote has no such branch)."""
    out = git(
        path, "ls-remote", "--heads", "--end-of-options", remote, f"refs/heads/{branch}", env=env
    )
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def push(
    path: str,
    remote: str,
    commit: str,
    branch: str,
    env: Mapping[str, str],
    lease: str | None = None,
) -> None:
    """Push ``commit`` to ``branch`` on ``remote``. Never forced, but for a branch planrun
    rebased: with ``lease`` (the commit planrun itself pushed there last), the push is
    ``--force-with-lease`` against exactly that commit, so a person's commit pushed since
    is never clobbered (the remote refuses, and so does planrun)."""
    refspec = f"{commit}:refs/heads/{branch}"
    options = [f"--force-with-lease=refs/heads/{branch}:{lease}"] if lease else []
    try:
        git(path, "push", "--porcelain", *options, "--end-of-options", remote, refspec, env=env)
    except Forbidden:
        raise
    except Rejected:
        raise Rejected(
            f"{remote} refused the push of {branch}: the branch there has commits planrun "
            "did not make (rejected, not a fast-forward; planrun never forces a push over "
            "them: merge or remove them, or choose another branch)"
        ) from None


def merge_base(path: str, first: str, second: str) -> str | None:
    """The best common ancestor of the two commits (None: none)."""
    try:
        return git(path, "merge-base", "--end-of-options", first, second).strip() or None
    except TrackerError:
        return None


def squashed(path: str, base: str, commit: str, message: str, tree: str | None = None) -> str:
    """One commit on ``base`` with ``commit``'s files (or ``tree``) and ``message``; the
    same inputs make the same commit (its dates and identity are ``commit``'s), so an
    unchanged proposal pushes nothing."""
    fields = git(path, "show", "-s", "--format=%an%x00%ae%x00%ad%x00%cn%x00%ce%x00%cd",
                 "--date=raw", "--end-of-options", commit).rstrip("\n").split("\0")  # fmt: skip
    names = "AUTHOR_NAME AUTHOR_EMAIL AUTHOR_DATE COMMITTER_NAME COMMITTER_EMAIL COMMITTER_DATE"
    env = {f"GIT_{name}": value for name, value in zip(names.split(), fields, strict=True)}
    tree = tree or f"{commit}^{{tree}}"
    made = git(path, "commit-tree", "-p", base, "-m", message, "--end-of-options", tree, env=env)
    return made.strip()


def contains(path: str, older: str, newer: str) -> bool:
    """Whether ``older`` is ``newer`` or one of its ancestors (False: unknown here)."""
    try:
        git(path, "merge-base", "--is-ancestor", "--end-of-options", older, newer)
    except TrackerError:
        return False
    return True


def keep_branch(path: str, branch: str, commit: str) -> str:
    """Point the local ``branch`` at ``commit`` (an unpublished changeset's work, kept
    under its name): created, or moved forward; a branch with other commits is left as it
    is. What was done, for the record."""
    ref = f"refs/heads/{branch}"
    current = tip(path, ref)
    if current == commit:
        return f"kept on {branch}"
    if current is not None:
        try:
            git(path, "merge-base", "--is-ancestor", "--end-of-options", current, commit)
        except TrackerError:
            return (
                f"not kept on {branch}: that branch has other commits (the work is {commit[:12]})"
            )
    git(path, "update-ref", "-m", "planrun: unpublished changeset", ref, commit, current or "")
    return f"kept on {branch}"


def auth_env(path: str, remote: str, token: str) -> dict[str, str]:
    """git's environment for ``remote``: the token as an HTTP header when it is https."""
    url = git(path, "remote", "get-url", "--end-of-options", remote).strip()
    return url_auth_env(url, token)


#: One line per first-parent commit: its id, and its landing trailer's plan and task.
_LANDINGS = (
    "--format=%H%x1f%(trailers:key=Planrun-Plan,valueonly)%x1f"
    "%(trailers:key=Planrun-Task,valueonly)%x1e"
)


def own_work(path: str, target: str, base: str, plan: str, task: str, message: str) -> str | None:
    """One commit on ``base`` with what ``task`` of ``plan`` changed: each of its landings
    on ``target`` since ``base`` (a first-parent step: its change against its first
    parent), oldest first, merged onto the base's files in a temporary index (no
    checkout). None when the task landed nothing there; Rejected when its changes
    conflict with the base."""
    out = git(path, "log", "--first-parent", "--reverse", _LANDINGS, f"refs/heads/{target}",
              f"^{base}", "--")  # fmt: skip
    landings = []
    for row in out.split("\x1e"):
        sha, _, rest = row.strip().partition("\x1f")
        marks = [_trailer(value) for value in rest.split("\x1f")]
        if sha and marks == [plan, task]:
            landings.append(sha)
    if not landings:
        return None
    tree = git(path, "rev-parse", "--verify", "--end-of-options", f"{base}^{{tree}}").strip()
    with tempfile.TemporaryDirectory() as folder:
        env = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        for sha in landings:
            git(path, "read-tree", "-m", "-i", "--aggressive", f"{sha}^1", tree, sha, env=env)
            try:
                tree = git(path, "write-tree", env=env).strip()
            except TrackerError:
                raise Rejected(
                    f"the work of {task} ({sha[:12]}) conflicts with {base[:12]}, the base: "
                    "nothing proposed (merge the base into its project's branch, and apply)"
                ) from None
    return squashed(path, base, landings[-1], message, tree)


def _trailer(value: str) -> str:
    """A trailer's value as planrun wrote it (JSON when it is not plain text)."""
    value = value.strip()
    if value.startswith('"'):
        try:
            return str(json.loads(value))
        except ValueError:
            return value
    return value

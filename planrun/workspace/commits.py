"""Committing what a task left in its worktree (``git add -A``, hooks off), and refusing
nested repositories, which would land as gitlinks to commits the repository lacks."""

from __future__ import annotations

from collections.abc import Sequence

from planrun.errors import GitError
from planrun.workspace.git import GitRepo
from planrun.workspace.listing import Worktree


class GitlinkError(GitError):
    """Work planrun will not commit or land because git would record it as a gitlink (a
    submodule entry) to a commit this repository does not have: a nested repository an
    agent made in its worktree (``git init``, a clone), or such a gitlink the agent
    committed itself. ``paths`` are the paths in question (folders end with ``/``).

    Its message is the reason alone (no git command failed).
    """

    def __init__(self, argv: Sequence[str], paths: Sequence[str], message: str) -> None:
        self.paths = tuple(paths)
        self.message = message
        super().__init__(argv, 1, f"fatal: {message}\n", summary=message)

    def __str__(self) -> str:
        return self.message


def nested_repositories(paths: Sequence[str]) -> GitlinkError:
    """The error for nested repositories found uncommitted at ``paths`` (``sub/``)."""
    where = ", ".join(paths)
    plural = "ies" if len(paths) > 1 else "y"
    return GitlinkError(
        ("git", "add", "-A"),
        paths,
        f"nested git repositor{plural} at {where}: committing it would record only a "
        "gitlink to a commit this repository does not have, not its files; planrun lands "
        "no such gitlink (delete it, list it in .gitignore, or add it with `git submodule "
        "add <url>`)",
    )


async def commit_all(wt: Worktree, message: str, *, repo: GitRepo | None = None) -> str | None:
    """Stage everything in ``wt`` (``git add -A``) and commit it; return the sha, or None.

    None means there was nothing to commit. See :func:`commit_leftovers`.
    """
    if not await commit_leftovers(wt, message, repo=repo):
        return None
    return await GitRepo(wt.path).rev_parse("HEAD")


async def commit_leftovers(wt: Worktree, message: str, *, repo: GitRepo | None = None) -> bool:
    """Stage everything in ``wt`` (``git add -A``) and commit it; False if nothing to commit.

    Raises GitError if the worktree is not on ``wt.branch`` (a commit on a detached HEAD
    would never land), and GitlinkError if it holds an untracked nested git repository
    (``add -A`` would stage it as a gitlink to a commit the repository does not have, or
    fail when it has no commit), both before staging anything. Hooks are skipped
    (``--no-verify``): this is planrun saving leftovers, not an agent's own commit. The
    identity comes from git's config or environment; ``planrun <planrun@localhost>`` is
    used only when git has none (asked once per ``repo``, the repository's GitRepo, when
    given).

    One ``git status --porcelain=v2 --branch`` gives the branch and the changes: none, no
    ``add``; only changes that ``add -A`` surely stages (an untracked file, or a worktree
    change to a path whose index entry still equals HEAD), no ``diff --cached`` either.
    It lists untracked files one by one (``--untracked-files=all``, the walk ``add -A``
    makes anyway), so that the only untracked entries ending in ``/`` are nested
    repositories, which git does not enter.
    """
    here = GitRepo(wt.path)
    out = await here.run(
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=all",
        "--ignore-submodules=dirty",
    )
    on, changes, nested = _parse_status(out.stdout)
    if on != wt.branch:
        raise GitError(
            ("git", "commit"),
            1,
            f"fatal: {wt.path} is on {on or 'a detached HEAD'}, not {wt.branch}\n",
        )
    if nested:
        raise nested_repositories(nested)
    if changes == "none":
        return False
    await here.run("add", "-A")
    if changes == "maybe":
        staged = await here.run("diff", "--cached", "--quiet", check=False)
        if staged.returncode == 0:
            return False
        if staged.returncode != 1:
            raise GitError(staged.argv, staged.returncode, staged.stderr)
    identity = await (repo or here).identity_config()
    await here.run("commit", "-q", "--no-verify", "-m", message, config=identity)
    return True


def _parse_status(porcelain_z: str) -> tuple[str | None, str, list[str]]:
    """The branch (None when detached), ``none``/``sure``/``maybe`` and the untracked
    nested repositories (``-uall`` shows them alone as ``dir/``) from ``status -z`` v2.

    ``sure``: ``add -A`` will stage a change (an untracked path; or an ordinary entry that is
    not a submodule, whose index entry equals HEAD, so the worktree differs from HEAD).
    ``maybe``: other changes (already staged, renamed, unmerged, submodules), which ``add
    -A`` may turn back into no change at all.
    """
    branch: str | None = None
    sure = maybe = False
    nested: list[str] = []
    records = porcelain_z.split("\0")
    i = 0
    while i < len(records):
        record = records[i]
        i += 1
        if record.startswith("# branch.head "):
            head = record[len("# branch.head ") :]
            branch = None if head == "(detached)" else head
        elif not record or record.startswith("#"):
            continue
        elif record.startswith("? ") or _worktree_change_only(record):
            sure = True
            if record.startswith("? ") and record.endswith("/"):
                nested.append(record[2:])
        else:
            maybe = True
            if record.startswith("2 "):
                i += 1  # a rename's original path is the next record
    return branch, "sure" if sure else "maybe" if maybe else "none", nested


def _worktree_change_only(record: str) -> bool:
    """An ordinary v2 entry, not a submodule, changed in the worktree but not in the index."""
    return record.startswith("1 ") and record[2] == "." and record[5:9] == "N..."

"""Running git for planrun: argv only, hardened, typed errors, one lock per repository.

Every call runs ``git -c gc.auto=0 -c maintenance.auto=false -C <path> <args...>`` with
``GIT_TERMINAL_PROMPT=0`` (never wait on a credential prompt), ``LC_ALL=C`` (stable messages to
match on), ``GIT_OPTIONAL_LOCKS=0`` (``git status`` never takes ``index.lock`` behind an agent's
back), ``GIT_EDITOR=true`` (nothing ever waits on an editor), stdin closed, and without the
``GIT_DIR``-style variables that would silently point ``-C`` at another repository.

``--end-of-options`` on git 2.39 (checked by experiment, each with an option-looking operand):
accepted by ``rev-parse --verify``, ``branch``, ``worktree add/remove/lock/unlock``,
``update-ref``, ``merge-tree``, ``commit-tree``, ``merge-base``, ``rebase``, ``log``, ``diff``,
``rev-list``, ``show-ref``, ``for-each-ref``, ``symbolic-ref`` and ``cherry-pick``.
``check-ref-format`` rejects it (usage, exit 129), but it reads its operands by position, so a
name there is never taken as an option. ``cat-file --batch-check`` reads revisions on stdin,
where nothing is an option. ``update-ref`` takes any operand after
``--end-of-options`` as a ref name, even ``-d`` (it writes ``.git/-d``), so planrun passes it only
full ``refs/heads/<checked name>`` names.

:class:`GitError` carries ``argv = ("git", *args)``: the ``-c``/``-C`` options before the
subcommand are left out so that its message names the subcommand.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from planrun.core.frozen import frozen
from planrun.errors import GitError

HARDENING: tuple[str, ...] = ("-c", "gc.auto=0", "-c", "maintenance.auto=false")
LOCK_FILE_NAME = "planrun.lock"
FALLBACK_IDENTITY: tuple[str, ...] = ("user.name=planrun", "user.email=planrun@localhost")

# Variables that override where git looks; inherited from a hook they would redirect ``-C``.
_SCRUBBED_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
)
_FIXED_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_EDITOR": "true",
}

# Cross-process lock polling: first retry after 2 ms, doubling up to 50 ms.
_POLL_FIRST = 0.002
_POLL_MAX = 0.05

# Branch names that ``git check-ref-format --branch`` accepts as they are, checked without
# running git: components of [A-Za-z0-9_][A-Za-z0-9._-]*, no "..", none ending in "." or
# ".lock", not "HEAD" (every name planrun derives with names.branch_name has this shape).
# Anything else is asked of git.
_PLAIN_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")

# One trio.Lock per repository (realpath of its common dir) per trio run.
_LOCKS: trio.lowlevel.RunVar[dict[str, trio.Lock]] = trio.lowlevel.RunVar("planrun_git_locks")


@frozen
class CompletedGit:
    """What one git command printed and returned (output decoded as UTF-8, surrogateescape)."""

    argv: tuple[str, ...]
    stdout: str
    stderr: str
    returncode: int


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment planrun's git commands run with (``base`` defaults to os.environ)."""
    env = {
        k: v for k, v in (os.environ if base is None else base).items() if k not in _SCRUBBED_ENV
    }
    env.update(_FIXED_ENV)
    return env


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "surrogateescape")


class GitRepo:
    """One git repository, reached through ``path`` (its top level, or any of its worktrees).

    Two GitRepo objects whose paths belong to the same repository share one :meth:`lock`.
    One object caches, for its lifetime (a run), its common dir, the branch names git
    accepted and the identity fallback: make one per repository and reuse it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._common_dir: Path | None = None
        self._valid_refs: set[str] = set()
        self._identity: tuple[str, ...] | None = None
        self._asking = trio.Lock()  # tasks that start together ask git for a cached value once

    def __repr__(self) -> str:
        return f"GitRepo({str(self.path)!r})"

    async def run(
        self,
        *args: str,
        check: bool = True,
        input: str | bytes | None = None,
        config: Sequence[str] = (),
    ) -> CompletedGit:
        """Run ``git <args>`` in this repository; raise GitError on a non-zero exit if ``check``.

        ``config`` holds ``key=value`` settings passed as ``-c`` for this command only.
        """
        settings = [opt for item in config for opt in ("-c", item)]
        argv = ("git", *HARDENING, *settings, "-C", str(self.path), *args)
        stdin = input.encode() if isinstance(input, str) else (input or b"")
        proc = await trio.run_process(
            argv,
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=git_env(),
        )
        done = CompletedGit(
            ("git", *args), _decode(proc.stdout), _decode(proc.stderr), proc.returncode
        )
        if check and done.returncode != 0:
            raise GitError(done.argv, done.returncode, done.stderr)
        return done

    async def common_dir(self) -> Path:
        """The absolute, resolved ``--git-common-dir`` (shared by all worktrees); cached."""
        if self._common_dir is None:
            async with self._asking:
                if self._common_dir is None:
                    out = await self.run("rev-parse", "--path-format=absolute", "--git-common-dir")
                    self._common_dir = Path(await trio.Path(out.stdout.strip()).resolve())
        return self._common_dir

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Hold this repository's planrun lock: one holder across tasks and processes.

        In this process a trio.Lock per common dir queues tasks fairly; across processes an
        ``flock`` on ``<common-dir>/planrun.lock`` (released by the kernel if we die). The
        flock is polled with LOCK_NB and short, growing trio.sleep steps instead of blocking
        in a worker thread: a thread blocked in flock cannot be cancelled, and an abandoned
        one would take the lock later with nobody left to release it. Polling is cancellable
        at every step and leaks nothing; only cross-process contention pays its latency.
        Not re-entrant: a task that already holds it gets RuntimeError from trio.
        """
        common = await self.common_dir()
        async with _lock_for(str(common)):
            fd = await _flock(common / LOCK_FILE_NAME)
            try:
                yield
            finally:
                os.close(fd)  # closing the only descriptor releases the flock

    async def check_ref(self, name: str) -> None:
        """Raise GitError unless ``name`` is a valid branch name (``git check-ref-format``).

        Names starting with ``-`` and names git would expand (``@{-1}``) are refused too.
        Names of a plainly valid shape are accepted without running git; names git accepted
        are remembered (the answer depends on the name only).
        """
        if name in self._valid_refs or _plainly_valid_branch(name):
            return
        argv = ("git", "check-ref-format", "--branch", name)
        if not name or name.startswith("-"):
            raise GitError(argv, 1, f"fatal: '{name}' is not a valid branch name\n")
        # check-ref-format rejects --end-of-options; it reads ``name`` by position (see above).
        out = await self.run("check-ref-format", "--branch", name, check=False)
        if out.returncode != 0:
            raise GitError(argv, out.returncode, out.stderr)
        if out.stdout.strip() != name:
            raise GitError(argv, 1, f"fatal: '{name}' names another branch, not itself\n")
        self._valid_refs.add(name)

    async def current_branch(self, worktree_path: Path | None = None) -> str | None:
        """The branch checked out at ``worktree_path`` (default: this path); None if detached."""
        repo = self if worktree_path is None else GitRepo(worktree_path)
        out = await repo.run(
            "symbolic-ref", "-q", "--short", "--end-of-options", "HEAD", check=False
        )
        if out.returncode == 1:
            return None
        if out.returncode != 0:
            raise GitError(out.argv, out.returncode, out.stderr)
        return out.stdout.strip()

    async def rev_parse(self, ref: str) -> str | None:
        """The full sha of the commit ``ref`` names, or None if it names no commit."""
        out = await self.run(
            "rev-parse", "-q", "--verify", "--end-of-options", f"{ref}^{{commit}}", check=False
        )
        if out.returncode == 0:
            return out.stdout.strip()
        if out.returncode == 1:
            return None
        raise GitError(out.argv, out.returncode, out.stderr)

    async def resolve_commits(self, *revs: str) -> list[str | None]:
        """The full sha of the commit each of ``revs`` names (None where none), in one git call.

        ``git cat-file --batch-check`` reads ``<rev>^{commit}`` lines on stdin, so a rev is
        never taken as an option; it resolves revs as ``rev-parse --verify`` does. A rev with a
        line break names nothing (None).
        """
        wanted = [rev for rev in revs if "\n" not in rev and "\r" not in rev]
        if not wanted:
            return [None] * len(revs)
        out = await self.run(
            "cat-file", "--batch-check", input="".join(f"{rev}^{{commit}}\n" for rev in wanted)
        )
        found: dict[str, str | None] = {}
        for rev, line in zip(wanted, out.stdout.splitlines(), strict=False):
            sha, _, kind = line.partition(" ")
            found[rev] = sha if _SHA.fullmatch(sha) and kind.startswith("commit ") else None
        return [found.get(rev) for rev in revs]

    async def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether commit ``ancestor`` is reachable from ``descendant`` (or equal to it)."""
        out = await self.run(
            "merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant, check=False
        )
        if out.returncode in (0, 1):
            return out.returncode == 0
        raise GitError(out.argv, out.returncode, out.stderr)

    async def is_dirty(self, worktree_path: Path | None = None) -> bool:
        """Whether the worktree has changes: staged, unstaged or untracked (ignored don't count)."""
        repo = self if worktree_path is None else GitRepo(worktree_path)
        out = await repo.run(
            "status", "--porcelain=v1", "-z", "--untracked-files=normal", "--ignore-submodules=none"
        )
        return out.stdout != ""

    async def identity_config(self) -> tuple[str, ...]:
        """``user.*=`` settings (for ``config=``) of a fallback identity; () if git has one.

        Asked of git once per GitRepo object (two ``git var`` calls), then remembered.
        """
        if self._identity is None:
            async with self._asking:
                if self._identity is None:
                    self._identity = await self._ask_identity()
        return self._identity

    async def _ask_identity(self) -> tuple[str, ...]:
        for var in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
            if (await self.run("var", var, check=False)).returncode != 0:
                return FALLBACK_IDENTITY
        return ()


async def is_repo(path: Path) -> bool:
    """Whether ``path`` is inside the work tree of a git repository."""
    if not await trio.Path(path).is_dir():
        return False
    out = await GitRepo(path).run("rev-parse", "--is-inside-work-tree", check=False)
    return out.returncode == 0 and out.stdout.strip() == "true"


def _plainly_valid_branch(name: str) -> bool:
    """Whether ``name`` has a shape ``check-ref-format --branch`` accepts unchanged."""
    return (
        _PLAIN_BRANCH.fullmatch(name) is not None
        and ".." not in name
        and name != "HEAD"
        and not any(part.endswith((".", ".lock")) for part in name.split("/"))
    )


def _lock_for(key: str) -> trio.Lock:
    try:
        locks = _LOCKS.get()
    except LookupError:
        locks = {}
        _LOCKS.set(locks)
    return locks.setdefault(key, trio.Lock())


async def _flock(path: Path) -> int:
    """Open ``path`` (0600) and take an exclusive flock on it, polling; return the descriptor."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    delay = _POLL_FIRST
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
            await trio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
    except BaseException:
        os.close(fd)
        raise


#: planrun's own git operations in a worktree run no user hooks (see worktrees.py).
NO_HOOKS = "core.hooksPath=/dev/null"


async def rebase_onto(repo: GitRepo, here: GitRepo, onto: str) -> CompletedGit:
    """``git rebase onto`` in the worktree ``here`` (of ``repo``): no autostash, no other
    branch moved, no hooks, planrun's identity if git has none. Not checked: the caller
    reads the result (and aborts a rebase that stopped)."""
    identity = await repo.identity_config()
    return await here.run(
        "rebase",
        "--no-autostash",
        "--no-update-refs",
        "--end-of-options",
        onto,
        check=False,
        config=(*identity, NO_HOOKS),
    )

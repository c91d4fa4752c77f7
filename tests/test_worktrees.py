"""Worktrees and the repository lock, against real git (reliability matrix section G)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from planrun.core.names import branch_name
from planrun.errors import GitError
from planrun.workspace.commits import commit_all, commit_leftovers
from planrun.workspace.git import CompletedGit, GitRepo, is_repo
from planrun.workspace.listing import Worktree, list_planrun_worktrees, list_worktrees
from planrun.workspace.names import worktree_dir
from planrun.workspace.removal import remove_listed, remove_worktree
from planrun.workspace.worktrees import add_worktree, ensure_branch
from tests.gitrepo import (
    Repos,
    branches,
    commit_file,
    find,
    git,
    is_inside,
    linked_worktrees,
    make_repos,
    tip,
    write,
)

REASON = "planrun:test-run"


@pytest.fixture
def repos(clean_env: Path, tmp_path: Path) -> Repos:
    return make_repos(tmp_path)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


async def add(
    repo: GitRepo, state: Path, key: str, base: str = "main", plan: str = "p"
) -> Worktree:
    return await add_worktree(
        repo, worktree_dir(state, key), branch_name(plan, key), base, reason=REASON
    )


class RecordingRepo(GitRepo):
    """A real GitRepo that records argv and can act between a failure and its handling."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[tuple[str, ...]] = []
        self.failures: list[GitError] = []

    async def run(
        self,
        *args: str,
        check: bool = True,
        input: str | bytes | None = None,
        config: Sequence[str] = (),
    ) -> CompletedGit:
        self.calls.append(args)
        try:
            return await super().run(*args, check=check, input=input, config=config)
        except GitError as exc:
            self.failures.append(exc)
            raise


# --- basics ------------------------------------------------------------------------------


async def test_is_repo_and_branch_queries(repos: Repos, tmp_path: Path) -> None:
    repo = GitRepo(repos.clone)
    assert await is_repo(repos.clone)
    assert not await is_repo(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert not await is_repo(plain)
    assert await repo.current_branch() == "main"
    assert await repo.rev_parse("main") == tip(repos.clone, "main")
    assert await repo.rev_parse("no-such-branch") is None
    assert not await repo.is_dirty()
    write(repos.clone / "ignored" / "x", "ignored\n")
    assert not await repo.is_dirty()
    write(repos.clone / "new", "untracked\n")
    assert await repo.is_dirty()


async def test_check_ref_refuses_bad_names(repos: Repos) -> None:
    repo = GitRepo(repos.clone)
    await repo.check_ref("planrun/demo/LOG-1")
    for bad in ["-b", "--upload-pack=touch pwned", "a..b", "a b", "x.lock", "", "@{-1}", "a/"]:
        with pytest.raises(GitError):
            await repo.check_ref(bad)


async def test_check_ref_asks_git_once_per_name_and_never_for_plain_ones(repos: Repos) -> None:
    repo = RecordingRepo(repos.clone)
    for _ in range(2):
        await repo.check_ref("planrun/demo/LOG-1")  # the shape names.branch_name makes
        await repo.check_ref("feature+x/é")  # valid, but only git can say so
    assert [c[0] for c in repo.calls] == ["check-ref-format"]
    for bad in ["a..b", "x.lock", "HEAD", "a/.b"]:
        with pytest.raises(GitError):
            await repo.check_ref(bad)


async def test_git_errors_carry_argv_and_stderr(repos: Repos) -> None:
    with pytest.raises(GitError) as info:
        await GitRepo(repos.clone).run("rev-parse", "--verify", "nope")
    assert info.value.argv == ("git", "rev-parse", "--verify", "nope")
    assert info.value.returncode == 128
    assert str(info.value).startswith("git rev-parse --verify nope failed (128)")


# --- G1: parallel creation ---------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
async def test_eight_concurrent_adds_all_succeed(repos: Repos, state: Path, round_: int) -> None:
    git(repos.clone, "config", "branch.autoSetupMerge", "always")
    repo = GitRepo(repos.clone)
    made: list[Worktree] = []

    async def one(i: int) -> None:
        made.append(await add(repo, state, f"T-{i}", base="origin/main", plan=f"r{round_}"))

    async with trio.open_nursery() as nursery:
        for i in range(8):
            nursery.start_soon(one, i)

    assert len(made) == 8
    assert len(linked_worktrees(repos.clone)) == 8
    assert len(branches(repos.clone, "refs/heads/planrun/")) == 8
    assert git(repos.clone, "config", "--get-regexp", r"^branch\.planrun/", check=False) == ""
    base = tip(repos.clone, "origin/main")
    for wt in made:
        assert wt.base_commit == base
        assert (wt.path / "README").read_text() == "hello\n"
        assert (await GitRepo(wt.path).current_branch()) == wt.branch
    assert sorted(w.branch for w in await list_planrun_worktrees(repo, f"r{round_}")) == sorted(
        w.branch for w in made
    )
    assert await list_planrun_worktrees(repo, "other") == []


async def test_eight_concurrent_adds_check_out_in_parallel_outside_the_lock(
    repos: Repos, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        write(repos.clone / "src" / f"f{i}.txt", f"file {i}\n")
    git(repos.clone, "add", "-A")
    git(repos.clone, "commit", "-q", "-m", "more files")
    repo = GitRepo(repos.clone)
    real_run = GitRepo.run
    waiting = 0
    everyone_in_checkout = trio.Event()
    lock_was_free = False

    async def run(self: GitRepo, *args: str, **kwargs: Any) -> CompletedGit:
        nonlocal waiting, lock_was_free
        if args[:1] == ("checkout",):
            # every checkout waits until all eight have begun: had one held the repository
            # lock, the others could not register their worktrees and this would hang
            waiting += 1
            if waiting == 8:
                with trio.fail_after(5):
                    async with repo.lock():  # free while eight checkouts are under way
                        lock_was_free = True
                everyone_in_checkout.set()
            await everyone_in_checkout.wait()
        return await real_run(self, *args, **kwargs)

    monkeypatch.setattr(GitRepo, "run", run)
    made: list[Worktree] = []

    async def one(i: int) -> None:
        made.append(await add(repo, state, f"P-{i}"))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(one, i)

    assert lock_was_free
    assert len(made) == 8
    base = tip(repos.clone, "main")
    for wt in made:
        assert wt.base_commit == base
        assert (wt.path / "README").read_text() == "hello\n"
        assert sorted(p.name for p in (wt.path / "src").iterdir()) == sorted(
            f"f{i}.txt" for i in range(20)
        )
        assert git(wt.path, "status", "--porcelain", "--untracked-files=all") == ""
        assert git(wt.path, "diff-files", "--name-only") == ""  # stat info written: clean
        assert git(wt.path, "diff-index", "--cached", "--name-only", "HEAD") == ""
        assert git(wt.path, "symbolic-ref", "--short", "HEAD") == wt.branch
    assert sorted(e.locked or "" for e in (await list_worktrees(repo))[1:]) == [REASON] * 8


async def test_worktrees_are_locked_with_the_reason(repos: Repos, state: Path) -> None:
    repo = GitRepo(repos.clone)
    wt = await add(repo, state, "LOG-1")
    (entry,) = [e for e in await list_worktrees(repo) if e.branch == wt.branch]
    assert entry.locked == REASON
    git(repos.clone, "worktree", "prune")  # a side process pruning must not take it
    assert wt.path.is_dir()
    assert [e.path for e in await list_worktrees(repo) if e.branch == wt.branch] == [entry.path]


# --- G2: contention ----------------------------------------------------------------------


async def test_ref_lock_contention_is_retried(repos: Repos, state: Path) -> None:
    branch = branch_name("p", "K")
    ref_lock = repos.clone / ".git" / "refs" / "heads" / "planrun" / "p" / "K.lock"
    write(ref_lock, "")  # another git process is updating that ref

    class ReleasingRepo(RecordingRepo):
        async def run(
            self,
            *args: str,
            check: bool = True,
            input: str | bytes | None = None,
            config: Sequence[str] = (),
        ) -> CompletedGit:
            try:
                return await super().run(*args, check=check, input=input, config=config)
            except GitError:
                if args[:2] == ("worktree", "add"):
                    ref_lock.unlink(missing_ok=True)  # ... which then finishes
                raise

    repo = ReleasingRepo(repos.clone)
    wt = await add_worktree(repo, worktree_dir(state, "K"), branch, "main", reason=REASON)
    adds = [c for c in repo.calls if c[:2] == ("worktree", "add")]
    assert len(adds) == 2
    assert "File exists" in repo.failures[0].stderr
    assert branches(repos.clone, "refs/heads/planrun/") == [branch]
    assert linked_worktrees(repos.clone) == [wt.path]


async def test_a_lock_that_stays_is_reported_by_name(repos: Repos, state: Path) -> None:
    ref_lock = repos.clone / ".git" / "refs" / "heads" / "planrun" / "p" / "K.lock"
    write(ref_lock, "")
    repo = RecordingRepo(repos.clone)
    with pytest.raises(GitError, match=r"gave up after 5 tries: .*K\.lock': File exists"):
        await add(repo, state, "K")
    assert len([c for c in repo.calls if c[:2] == ("worktree", "add")]) == 5
    assert ref_lock.exists()  # git's lock files are reported, never deleted
    assert branches(repos.clone, "refs/heads/planrun/") == []
    assert linked_worktrees(repos.clone) == []


async def test_a_branch_left_by_a_failed_try_is_deleted_before_retrying(
    repos: Repos, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # git creates the branch, checks the files out, then reports a held lock: the first try
    # leaves a branch and a registered, checked-out worktree behind, as git does under
    # contention. (planrun's checkouts run no hooks, so a hook cannot play that part.)
    real_run = GitRepo.run
    failed: list[bool] = []

    async def run(self: GitRepo, *args: str, **kwargs: Any) -> CompletedGit:
        done = await real_run(self, *args, **kwargs)
        if args[:1] == ("checkout",) and not failed:
            failed.append(True)
            stderr = "fatal: Unable to create '/x/index.lock': File exists.\n"
            raise GitError(("git", *args), 128, stderr)
        return done

    monkeypatch.setattr(GitRepo, "run", run)
    repo = RecordingRepo(repos.clone)
    wt = await add(repo, state, "K")
    adds = [c for c in repo.calls if c[:2] == ("worktree", "add")]
    assert len(adds) == 2
    assert "-b" in adds[1]  # the first try's branch was deleted, so it was created afresh
    assert branches(repos.clone, "refs/heads/planrun/") == [wt.branch]
    assert linked_worktrees(repos.clone) == [wt.path]


async def test_a_held_config_lock_does_not_block_adds(repos: Repos, state: Path) -> None:
    git(repos.clone, "config", "branch.autoSetupMerge", "always")
    write(repos.clone / ".git" / "config.lock", "")
    wt = await add(GitRepo(repos.clone), state, "K", base="origin/main")
    assert linked_worktrees(repos.clone) == [wt.path]


async def test_other_failures_are_not_retried(repos: Repos, state: Path) -> None:
    repo = RecordingRepo(repos.clone)
    with pytest.raises(GitError, match="not a commit"):
        await add(repo, state, "K", base="no-such-base")
    other = await add(repo, state, "A")
    repo.calls.clear()
    with pytest.raises(GitError):  # the branch is checked out in another worktree
        await add_worktree(repo, state / "worktrees" / "B", other.branch, "main", reason=REASON)
    assert len([c for c in repo.calls if c[:2] == ("worktree", "add")]) == 1
    assert not (state / "worktrees" / "B").exists()


def fail_checkout(
    monkeypatch: pytest.MonkeyPatch, stderr: str, times: int = 1
) -> list[tuple[str, ...]]:
    """Make the next ``times`` checkouts fail with ``stderr`` after a partial write."""
    real_run = GitRepo.run
    calls: list[tuple[str, ...]] = []

    async def run(self: GitRepo, *args: str, **kwargs: Any) -> CompletedGit:
        calls.append(args)
        if args[:1] == ("checkout",) and len([c for c in calls if c[:1] == args[:1]]) <= times:
            write(self.path / "README", "half writt")  # what a killed checkout leaves
            raise GitError(("git", *args), 128, stderr)
        return await real_run(self, *args, **kwargs)

    monkeypatch.setattr(GitRepo, "run", run)
    return calls


async def test_a_checkout_that_failed_leaves_nothing_behind(
    repos: Repos, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_checkout(monkeypatch, "fatal: cannot create directory: No space left on device\n")
    with pytest.raises(GitError, match="No space left"):
        await add(GitRepo(repos.clone), state, "K")
    # like worktree add on failure: the half-made worktree and the new branch are gone
    assert linked_worktrees(repos.clone) == []
    assert branches(repos.clone, "refs/heads/planrun/") == []
    assert not worktree_dir(state, "K").exists()


async def test_a_checkout_under_lock_contention_is_retried(
    repos: Repos, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fail_checkout(
        monkeypatch, "fatal: Unable to create '/x/index.lock': File exists.\n", times=2
    )
    wt = await add(GitRepo(repos.clone), state, "K")
    adds = [c for c in calls if c[:2] == ("worktree", "add")]
    assert len(adds) == 3
    assert all("-b" in c for c in adds)  # the branch was deleted after each failed try
    assert (wt.path / "README").read_text() == "hello\n"
    assert git(wt.path, "status", "--porcelain") == ""
    assert linked_worktrees(repos.clone) == [wt.path]


async def test_a_cancelled_checkout_leaves_nothing_behind(
    repos: Repos, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = GitRepo.run
    in_checkout = trio.Event()

    async def run(self: GitRepo, *args: str, **kwargs: Any) -> CompletedGit:
        if args[:1] == ("checkout",):
            write(self.path / "README", "half writt")
            in_checkout.set()
            await trio.sleep_forever()
        return await real_run(self, *args, **kwargs)

    monkeypatch.setattr(GitRepo, "run", run)
    repo = GitRepo(repos.clone)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(add, repo, state, "K")
        await in_checkout.wait()
        nursery.cancel_scope.cancel()
    assert linked_worktrees(repos.clone) == []
    assert branches(repos.clone, "refs/heads/planrun/") == []
    assert not worktree_dir(state, "K").exists()


async def test_a_worktree_whose_checkout_was_killed_is_quarantined_and_made_again(
    repos: Repos, state: Path
) -> None:
    repo = GitRepo(repos.clone)
    path = worktree_dir(state, "K")
    branch = branch_name("p", "K")
    # what a run killed (SIGKILL) between worktree add --no-checkout and the checkout leaves
    git(repos.clone, "worktree", "add", "-q", "--no-checkout", "--lock", "--reason", REASON,
        "-b", branch, str(path), "main")  # fmt: skip
    write(path / "README", "half writt")
    with pytest.raises(GitError, match="checkout never finished"):
        await add(repo, state, "K")
    assert (path / "README").read_text() == "half writt"

    quarantine = state / "quarantine"
    wt = await add_worktree(repo, path, branch, "main", reason=REASON, quarantine_dir=quarantine)
    assert wt.fresh  # checked out anew: the project's setup must run in it
    assert (wt.path / "README").read_text() == "hello\n"
    assert git(wt.path, "status", "--porcelain") == ""
    (moved,) = quarantine.iterdir()
    assert (moved / "README").read_text() == "half writt"
    assert linked_worktrees(repos.clone) == [wt.path]


# --- G4: resume --------------------------------------------------------------------------


async def test_resume_reuses_the_worktree_and_keeps_its_work(repos: Repos, state: Path) -> None:
    repo = GitRepo(repos.clone)
    first = await add(repo, state, "LOG-1")
    commit_file(first.path, "done.txt", "step 1\n", "step 1")
    write(first.path / "wip.txt", "uncommitted\n")
    head = tip(first.path, "HEAD")
    git(repos.clone, "worktree", "unlock", str(first.path))

    again = await add(repo, state, "LOG-1")
    assert first.fresh
    assert not again.fresh  # reused: setup already ran in it
    assert again.path == first.path
    assert again.branch == first.branch
    assert again.base_commit == first.base_commit
    assert tip(again.path, "HEAD") == head
    assert (again.path / "wip.txt").read_text() == "uncommitted\n"
    assert linked_worktrees(repos.clone) == [first.path]
    (entry,) = [e for e in await list_worktrees(repo) if e.branch == first.branch]
    assert entry.locked == REASON  # locked again


async def test_existing_branch_is_attached_not_reset(repos: Repos, state: Path) -> None:
    repo = GitRepo(repos.clone)
    first = await add(repo, state, "LOG-1")
    work = commit_file(first.path, "a.txt", "a\n", "work")
    assert await remove_worktree(repo, first)
    commit_file(repos.clone, "main.txt", "main moved\n", "main moved")

    again = await add(repo, state, "LOG-1")
    assert tip(repos.clone, again.branch) == work
    assert (again.path / "a.txt").read_text() == "a\n"
    assert again.base_commit == first.base_commit


async def test_entry_whose_folder_vanished_is_replaced_alone(repos: Repos, state: Path) -> None:
    repo = GitRepo(repos.clone)
    gone = await add(repo, state, "GONE")
    kept = await add(repo, state, "KEPT")
    other = await add(repo, state, "OTHER")
    shutil.rmtree(gone.path)
    shutil.rmtree(other.path)  # another task's stale entry: must stay registered

    again = await add(repo, state, "GONE")
    assert again.path.is_dir()
    paths = {e.path for e in await list_worktrees(repo)}
    assert {gone.path, kept.path, other.path} <= paths


async def test_unregistered_folder_is_quarantined_never_deleted(repos: Repos, state: Path) -> None:
    repo = GitRepo(repos.clone)
    path = worktree_dir(state, "K")
    write(path / "left-by-a-kill.txt", "precious\n")
    with pytest.raises(GitError, match="not a registered worktree"):
        await add(repo, state, "K")
    assert (path / "left-by-a-kill.txt").read_text() == "precious\n"

    quarantine = state / "quarantine"
    wt = await add_worktree(
        repo, path, branch_name("p", "K"), "main", reason=REASON, quarantine_dir=quarantine
    )
    assert (wt.path / "README").exists()
    assert wt.fresh
    (moved,) = quarantine.iterdir()
    assert (moved / "left-by-a-kill.txt").read_text() == "precious\n"


# --- G5: removal never destroys work -------------------------------------------------------


async def test_dirty_worktrees_are_never_removed(repos: Repos, state: Path) -> None:
    repo = GitRepo(repos.clone)
    untracked = await add(repo, state, "U")
    write(untracked.path / "new.txt", "new\n")
    modified = await add(repo, state, "M")
    write(modified.path / "README", "changed\n")
    staged = await add(repo, state, "S")
    write(staged.path / "s.txt", "s\n")
    git(staged.path, "add", "s.txt")

    for wt in (untracked, modified, staged):
        assert not await remove_worktree(repo, wt, delete_branch=True)
        assert wt.path.is_dir()
        assert tip(repos.clone, wt.branch) is not None
    assert (untracked.path / "new.txt").read_text() == "new\n"
    assert (modified.path / "README").read_text() == "changed\n"
    assert len(linked_worktrees(repos.clone)) == 3
    assert all(e.locked == REASON for e in (await list_worktrees(repo))[1:])


async def test_untracked_files_count_even_where_status_hides_them(
    repos: Repos, state: Path
) -> None:
    repo = GitRepo(repos.clone)
    wt = await add(repo, state, "U")
    write(wt.path / "new.txt", "precious\n")
    git(repos.clone, "config", "status.showUntrackedFiles", "no")  # git 2.39 alone loses it
    assert not await remove_worktree(repo, wt, delete_branch=True)
    assert (wt.path / "new.txt").read_text() == "precious\n"
    assert tip(repos.clone, wt.branch) is not None
    (entry,) = [e for e in await list_worktrees(repo) if e.branch == wt.branch]
    assert entry.locked == REASON  # locked again after git refused


async def test_a_branch_that_moved_is_kept(repos: Repos, state: Path) -> None:
    repo = GitRepo(repos.clone)
    wt = await add(repo, state, "M")
    seen = tip(repos.clone, wt.branch)
    commit_file(wt.path, "later.txt", "later\n", "after the landing")
    async with repo.lock():
        entries = await list_worktrees(repo)
        assert await remove_listed(repo, entries, wt, delete_branch=True, branch_tip=seen)
    assert not wt.path.exists()
    assert tip(repos.clone, wt.branch) != seen  # kept, with its new commit


async def test_clean_worktrees_are_removed_and_branches_kept_or_deleted(
    repos: Repos, state: Path
) -> None:
    repo = GitRepo(repos.clone)
    keep = await add(repo, state, "KEEP")
    commit_file(keep.path, "k.txt", "k\n", "k")
    write(keep.path / "ignored" / "cache", "ignored files do not make it dirty\n")
    drop = await add(repo, state, "DROP")
    assert await remove_worktree(repo, keep)
    assert await remove_worktree(repo, drop, delete_branch=True)
    assert not keep.path.exists()
    assert not drop.path.exists()
    assert branches(repos.clone, "refs/heads/planrun/") == [keep.branch]
    assert linked_worktrees(repos.clone) == []
    assert await remove_worktree(repo, keep)  # already gone: nothing to refuse


async def test_foreign_locks_and_unregistered_folders_are_refused(
    repos: Repos, state: Path
) -> None:
    repo = GitRepo(repos.clone)
    wt = await add(repo, state, "W")
    git(repos.clone, "worktree", "unlock", str(wt.path))
    git(repos.clone, "worktree", "lock", "--reason", "other tool", str(wt.path))
    assert not await remove_worktree(repo, wt)
    assert wt.path.is_dir()
    assert next(e for e in await list_worktrees(repo) if e.branch == wt.branch).locked == (
        "other tool"
    )
    stray = Worktree(state / "worktrees" / "stray", "planrun/p/stray", None)
    write(stray.path / "f", "x\n")
    assert not await remove_worktree(repo, stray)
    assert (stray.path / "f").exists()


async def test_discarding_changes_needs_an_explicit_request(repos: Repos, state: Path) -> None:
    repo = GitRepo(repos.clone)
    wt = await add(repo, state, "W")
    write(wt.path / "junk", "x\n")
    assert await remove_worktree(repo, wt, force_clean_only=False)
    assert not wt.path.exists()


# --- committing --------------------------------------------------------------------------


async def test_commit_all(repos: Repos, state: Path) -> None:
    wt = await add(GitRepo(repos.clone), state, "C")
    assert await commit_all(wt, "nothing") is None
    write(wt.path / "README", "changed\n")
    write(wt.path / "sub" / "new.txt", "new\n")
    write(wt.path / "ignored" / "x", "not committed\n")
    sha = await commit_all(wt, "planrun: leftovers")
    assert sha == tip(wt.path, "HEAD") == tip(repos.clone, wt.branch)
    assert git(wt.path, "log", "-1", "--format=%s|%an|%ae") == (
        "planrun: leftovers|planrun tests|tests@planrun.invalid"
    )
    assert git(wt.path, "show", "--name-only", "--format=", "HEAD").splitlines() == [
        "README",
        "sub/new.txt",
    ]
    assert not await GitRepo(wt.path).is_dirty()


async def test_commit_all_when_staging_undoes_a_change(repos: Repos, state: Path) -> None:
    wt = await add(GitRepo(repos.clone), state, "C")
    write(wt.path / "README", "changed\n")
    git(wt.path, "add", "README")
    write(wt.path / "README", "hello\n")  # staged, then changed back
    assert await commit_all(wt, "nothing after all") is None
    assert tip(wt.path, "HEAD") == wt.base_commit
    git(wt.path, "mv", "README", "README.md")  # a staged rename
    assert await commit_leftovers(wt, "renamed")
    assert git(wt.path, "log", "-1", "--format=%s") == "renamed"
    assert git(wt.path, "status", "--porcelain") == ""


async def test_commit_all_falls_back_to_planrun_identity(
    repos: Repos, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt = await add(GitRepo(repos.clone), state, "C")
    for var in ("NAME", "EMAIL"):
        monkeypatch.delenv(f"GIT_AUTHOR_{var}")
        monkeypatch.delenv(f"GIT_COMMITTER_{var}")
    git(repos.clone, "config", "user.useConfigOnly", "true")  # no guessing from the host
    write(wt.path / "f", "x\n")
    assert await commit_all(wt, "m") is not None
    assert git(wt.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == (
        "planrun <planrun@localhost>|planrun <planrun@localhost>"
    )


async def test_commit_all_refuses_a_detached_head(repos: Repos, state: Path) -> None:
    wt = await add(GitRepo(repos.clone), state, "C")
    git(wt.path, "checkout", "-q", "--detach")
    write(wt.path / "f", "x\n")
    with pytest.raises(GitError, match="detached"):
        await commit_all(wt, "m")


async def test_ensure_branch_creates_but_never_moves(repos: Repos) -> None:
    repo = GitRepo(repos.clone)
    first = tip(repos.clone, "main")
    assert await ensure_branch(repo, "integration", "main") == first
    commit_file(repos.clone, "x", "x\n", "moved main")
    assert await ensure_branch(repo, "integration", "main") == first
    assert tip(repos.clone, "integration") == first
    with pytest.raises(GitError):
        await ensure_branch(repo, "other", "no-such-start")


# --- G6: hostile names -------------------------------------------------------------------

HOSTILE_KEYS = [
    "--upload-pack=touch pwned",
    "--output=pwned",
    "-b",
    "..",
    "a b",
    "ünï",
    "x.lock",
    "../../escape",
]


async def test_hostile_keys_cannot_inject_options_or_escape(
    repos: Repos, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    repo = GitRepo(repos.clone)
    made = [await add(repo, state, key, plan="--exec=touch pwned") for key in HOSTILE_KEYS]
    assert len({w.path for w in made}) == len(HOSTILE_KEYS)
    for wt in made:
        assert wt.path.parent == state / "worktrees"
        assert is_inside(wt.path, state)
        assert (wt.path / "README").exists()
    assert len(branches(repos.clone, "refs/heads/planrun/")) == len(HOSTILE_KEYS)
    assert find(tmp_path, "pwned") == []


async def test_hostile_refs_reach_git_only_as_operands(
    repos: Repos, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    repo = GitRepo(repos.clone)
    for ref in ["--output=pwned", "--upload-pack=touch pwned", "-b"]:
        assert await repo.rev_parse(ref) is None
        with pytest.raises(GitError):
            await repo.check_ref(ref)
        with pytest.raises(GitError):
            await ensure_branch(repo, ref, "main")
        with pytest.raises(GitError):
            await ensure_branch(repo, "fine", ref)
        with pytest.raises(GitError):
            await add_worktree(repo, state / "worktrees" / "x", ref, "main", reason=REASON)
        with pytest.raises(GitError):
            await add_worktree(repo, state / "worktrees" / "x", "fine2", ref, reason=REASON)
    assert find(tmp_path, "pwned") == []
    assert branches(repos.clone, "refs/heads/planrun/") == []
    assert not (state / "worktrees" / "x").exists()


# --- the repository lock -----------------------------------------------------------------


async def test_lock_is_shared_by_every_path_of_one_repository(repos: Repos, state: Path) -> None:
    wt = await add(GitRepo(repos.clone), state, "W")
    other = GitRepo(repos.clone)
    await other.common_dir()  # cached: lock() below blocks on the lock, not on git
    order: list[str] = []

    async def second() -> None:
        async with other.lock():
            order.append("second")

    async with trio.open_nursery() as nursery, GitRepo(wt.path).lock():
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert order == []
        order.append("first")
    assert order == ["first", "second"]
    assert (await GitRepo(wt.path).common_dir()) == (repos.clone / ".git").resolve()


CHILD = r"""
import os, sys, trio
from pathlib import Path
from planrun.workspace.git import GitRepo

repo, log, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
inside = log.with_name("inside")

def note(what):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{name} {what}\n".encode())
    os.close(fd)

async def main():
    print("waiting", flush=True)
    async with GitRepo(repo).lock():
        note("enter")
        os.close(os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # fails on overlap
        await GitRepo(repo).run("rev-parse", "HEAD")
        await GitRepo(repo).run("status")
        os.unlink(inside)
        note("exit")

trio.run(main)
"""


async def read_until(stream: trio.abc.ReceiveStream, marker: bytes) -> None:
    data = b""
    while marker not in data:
        chunk = await stream.receive_some()
        assert chunk, f"stream ended before {marker!r}: {data!r}"
        data += chunk


async def test_separate_processes_serialise_on_the_lock(repos: Repos, tmp_path: Path) -> None:
    log = trio.Path(tmp_path / "lock.log")
    children = ["A", "B", "C"]
    async with trio.open_nursery() as nursery, GitRepo(repos.clone).lock():
        for name in children:
            argv = [sys.executable, "-c", CHILD, str(repos.clone), str(log), name]
            run = partial(trio.run_process, argv, stdout=subprocess.PIPE, check=True)
            proc: trio.Process = await nursery.start(run)
            assert proc.stdout is not None
            with trio.fail_after(15):
                await read_until(proc.stdout, b"waiting\n")  # it is about to take the lock
        await log.write_text("parent release\n")

    events = (await log.read_text()).splitlines()
    assert events[0] == "parent release"
    pairs = events[1:]
    assert len(pairs) == 2 * len(children)
    for enter, leave in zip(pairs[::2], pairs[1::2], strict=True):
        who = enter.split()[0]
        assert (enter, leave) == (f"{who} enter", f"{who} exit")
    assert sorted(e.split()[0] for e in pairs[::2]) == children

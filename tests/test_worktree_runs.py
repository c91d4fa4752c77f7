"""Worktrees through ``planrun apply``: review and approve, clean, several repositories."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from planrun.cli import main
from tests.runs import state_of


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    git(path, "symbolic-ref", "HEAD", "refs/heads/main")
    for name, text in files.items():
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def apply(plan: Path) -> int:
    return main(["apply", str(plan), "--progress", "none"])


def test_review_holds_dependents_until_approve_lands_the_work(
    tmp_path: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
version: 1
name: rv
projects: {{app: {{path: {repo}, base_branch: main}}}}
defaults: {{project: app}}
tasks:
  R: {{run: [sh, -c, "echo reviewed > r.txt"], review: true}}
  AFTER: {{run: [sh, -c, "cp r.txt after.txt"], needs: [R]}}
""")
    assert apply(plan) == 4  # R waits in review; AFTER waits for it
    assert "r.txt" not in git(repo, "ls-tree", "--name-only", "planrun-rv")
    assert git(repo, "show", "planrun/rv/R:r.txt") == "reviewed\n"  # committed on its branch
    assert apply(plan) == 4  # still in review: a second apply does not run R again
    assert main(["approve", str(plan), "R"]) == 0
    assert "approved R: landed" in capsys.readouterr().out
    assert apply(plan) == 0
    assert git(repo, "show", "planrun-rv:after.txt") == "reviewed\n"
    assert main(["approve", str(plan), "R"]) == 2  # done now, not in review


def test_clean_removes_what_finished_and_never_a_dirty_worktree(
    tmp_path: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
version: 1
name: cl
projects: {{app: {{path: {repo}, base_branch: main}}}}
defaults: {{project: app}}
tasks:
  OK: {{run: [sh, -c, "echo ok > ok.txt"]}}
  BROKEN: {{run: [sh, -c, "echo half > half.txt; exit 1"]}}
  DIRTY: {{run: [sh, -c, "echo wip > wip.txt; exit 1"]}}
""")
    assert apply(plan) == 1
    worktrees = state_of(plan) / "worktrees"
    assert sorted(p.name for p in worktrees.iterdir()) == ["BROKEN", "DIRTY"]  # kept to inspect
    capsys.readouterr()
    assert main(["clean", str(plan)]) == 0  # default: failed work stays
    assert (worktrees / "BROKEN").exists()
    # BROKEN's leftovers are committed by hand (inspected, kept); DIRTY keeps uncommitted work
    git(worktrees / "BROKEN", "add", "-A")
    git(worktrees / "BROKEN", "commit", "-q", "-m", "inspected")
    assert main(["clean", str(plan), "--failed"]) == 1  # it kept something it was asked for
    err = capsys.readouterr().err
    assert f"kept worktree {worktrees / 'DIRTY'} of task DIRTY" in err
    assert "it has uncommitted changes" in err
    assert not (worktrees / "BROKEN").exists()
    assert (worktrees / "DIRTY" / "wip.txt").read_text() == "wip\n"
    assert main(["clean", str(plan), "--all"]) == 1
    assert (worktrees / "DIRTY" / "wip.txt").exists()  # never, not even with --all
    branches = git(repo, "branch", "--format=%(refname:short)").split()
    assert "main" in branches
    assert "planrun-cl" in branches  # the integration branch is never cleaned
    assert "planrun/cl/DIRTY" in branches


def test_one_run_lands_in_several_repositories(tmp_path: Path, clean_env: Path) -> None:
    api = make_repo(tmp_path / "api", {"api.py": "x = 1\n"})
    web = make_repo(tmp_path / "web", {"web.js": "let x = 1\n"})
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
version: 1
name: multi
projects:
  api: {{path: {api}, base_branch: main, integrate: squash}}
  web: {{path: {web}, base_branch: main, integrate: rebase}}
tasks:
  API: {{project: api, run: [sh, -c, "echo 'x = 2' > api.py"]}}
  WEB: {{project: web, run: [sh, -c, "echo 'let x = 2' > web.js"], needs: [API]}}
""")
    assert apply(plan) == 0
    assert git(api, "show", "planrun-multi:api.py") == "x = 2\n"
    assert git(web, "show", "planrun-multi:web.js") == "let x = 2\n"
    assert git(api, "show", "main:api.py") == "x = 1\n"  # base branches untouched
    assert git(web, "show", "main:web.js") == "let x = 1\n"
    # squash: one new commit with one parent; rebase: linear history
    assert len(git(api, "rev-list", "--parents", "-n1", "planrun-multi").split()) == 2
    assert git(web, "rev-list", "--merges", "planrun-multi") == ""


def test_approve_first_replays_what_a_killed_apply_journaled(
    tmp_path: Path, clean_env: Path
) -> None:
    """A record a killed apply wrote to its journal file, but not yet to the store, goes in
    before approve's own writes (applied after them, it could undo the approval)."""
    from planrun.state.journalfile import JOURNAL_DIR
    from planrun.state.sqlite import Store
    from planrun.state.store import utc_now

    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
version: 1
name: rj
projects: {{app: {{path: {repo}, base_branch: main}}}}
defaults: {{project: app}}
tasks:
  R: {{run: [sh, -c, "echo reviewed > r.txt"], review: true}}
""")
    assert apply(plan) == 4  # R waits in review
    state_dir = state_of(plan)
    with Store.open(state_dir / "state.db", readonly=True) as store:
        run = store.last_run("rj")
        assert run is not None
        seq = store.journal_seq(run.id)
    record = {
        "seq": seq + 1,
        "op": "task_updated",
        "args": {
            "key": "R",
            "status": "in_review",
            "at": utc_now(),
            "reason": "left by a killed apply",
            "fingerprint": None,
            "data": None,
            "branch": None,
            "base_commit": None,
            "landed_commit": None,
            "diffstat": None,
        },
    }
    journal = state_dir / JOURNAL_DIR / f"{run.id}.jsonl"
    journal.parent.mkdir(exist_ok=True)
    journal.write_text(json.dumps(record) + "\n")
    assert main(["approve", str(plan), "R"]) == 0
    assert not journal.exists()
    with Store.open(state_dir / "state.db", readonly=True) as store:
        kinds = [(e.kind, e.data.get("reason")) for e in store.events(run.id)][-2:]
        assert kinds == [("task_status", "left by a killed apply"), ("task_done", None)]
        assert store.task_states("rj")["R"].status.value == "done"


def test_setup_runs_in_a_worktree_made_again_after_a_leftover_was_quarantined(
    tmp_path: Path, clean_env: Path
) -> None:
    """A folder left where the worktree goes (a kill mid-checkout) is moved aside and the
    worktree made anew: a new checkout needs the project's setup like any other."""
    from planrun.workspace.names import worktree_dir

    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    setup_log = tmp_path / "setup.log"
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
version: 1
name: sq
projects:
  app:
    path: {repo}
    base_branch: main
    setup: [[sh, -c, "echo ran >> {setup_log}"]]
defaults: {{project: app}}
tasks:
  T: {{run: [sh, -c, "echo t > t.txt"]}}
""")
    leftover = worktree_dir(state_of(plan), "T")
    leftover.mkdir(parents=True)
    (leftover / "half-checked-out.txt").write_text("left by a kill\n")
    assert apply(plan) == 0
    assert setup_log.read_text() == "ran\n"
    (moved,) = (state_of(plan) / "quarantine").iterdir()
    assert (moved / "half-checked-out.txt").read_text() == "left by a kill\n"
    assert git(repo, "show", "planrun-sq:t.txt") == "t\n"

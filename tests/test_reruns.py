"""The second run (SPEC §4-§5): fresh bases, exactly-once landing, verified targets.

Every test applies a plan to a real git repository, does what a user, an agent or a crash
does in between, and applies again: what the second apply runs, on which base, and what
lands (counted by the trailer each landing commit carries) is asserted, not assumed.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import runs
from tests.gitrepo import branches, git, make_repos, tip
from tests.runs import State, state_of, write_plan


def plan_text(repo: Path, tasks: str, name: str = "re") -> str:
    """A plan of ``tasks`` in ``repo``; a task commits with ``$COMMIT`` (tasks get no git
    identity from the test's environment)."""
    return f"""\
version: 1
name: {name}
projects: {{app: {{path: {repo}, base_branch: main}}}}
defaults: {{project: app, env: {{COMMIT: "git -c user.name=t -c user.email=t@t commit"}}}}
tasks:
{tasks}"""


def landings(repo: Path, ref: str, key: str) -> list[str]:
    """The commits on ``ref``'s first-parent history whose trailer names task ``key``."""
    if tip(repo, ref) is None:
        return []
    out = git(repo, "log", "--first-parent", "--format=%H%x00%B%x1e", ref)
    found = []
    for record in out.split("\x1e"):
        sha, _, body = record.strip().partition("\0")
        if f"Planrun-Task: {key}\n" in body + "\n":
            found.append(sha)
    return found


def preview(plan: Path, *args: str) -> dict[str, tuple[str, str]]:
    out = runs.planrun("plan", str(plan), "--json", *args, cwd=plan.parent)
    assert out.returncode == 0, out.stderr
    return {t["key"]: (t["action"], t["why"]) for t in json.loads(out.stdout)["tasks"]}


CHECK = """\
  A: {run: [sh, -c, "echo TEXT > A.txt"]}
  C: {run: [sh, -c, "cat A.txt >> $OUT/seen.log"], needs: [A], env: {OUT: DIR}}
"""


def check_plan(tmp_path: Path, text: str) -> tuple[Path, Path]:
    repos = make_repos(tmp_path)
    tasks = CHECK.replace("TEXT", text).replace("DIR", str(tmp_path))
    return write_plan(tmp_path, plan_text(repos.clone, tasks)), repos.clone


def test_a_check_task_sees_its_need_changed_work_on_the_second_run(
    tmp_path: Path, clean_env: Path
) -> None:
    plan, repo = check_plan(tmp_path, "one")
    assert runs.apply(plan).returncode == 0
    plan.write_text(plan.read_text().replace("echo one", "echo two"))
    assert preview(plan)["C"][0] == "wait"
    assert runs.apply(plan).returncode == 0
    assert (tmp_path / "seen.log").read_text() == "one\ntwo\n"  # never the stale text
    assert git(repo, "show", "planrun-re:A.txt") == "two"
    assert len(landings(repo, "planrun-re", "A")) == 2


def test_a_branch_with_no_commits_of_its_own_is_cut_again_from_the_new_tip(
    tmp_path: Path, clean_env: Path
) -> None:
    """C failed and kept its branch; A then changed and landed again: C's retry runs on
    the new tip, not on the branch the first run left."""
    repos = make_repos(tmp_path)
    tasks = (
        '  A: {run: [sh, -c, "echo one > A.txt"]}\n'
        '  C: {run: [sh, -c, "grep -q two A.txt"], needs: [A]}\n'
    )
    plan = write_plan(tmp_path, plan_text(repos.clone, tasks))
    assert runs.apply(plan).returncode == 1
    assert "planrun/re/C" in branches(repos.clone)  # kept for inspection
    plan.write_text(plan.read_text().replace("echo one", "echo two"))
    assert runs.apply(plan, "--rerun-failed").returncode == 0


WAIT_FOR_S = "until git show planrun-re:f.txt | grep -q sibling; do sleep 0.05; done"


def test_a_conflict_lands_on_rerun_failed_from_a_fresh_base(
    tmp_path: Path, clean_env: Path
) -> None:
    repos = make_repos(tmp_path, {"f.txt": "base\n"})
    tasks = (
        '  S: {run: [sh, -c, "echo sibling > f.txt"]}\n'
        # T starts before S lands (both run at once) and writes only after it landed
        f'  T: {{run: [sh, -c, "{WAIT_FOR_S}; echo task > f.txt; $COMMIT -qam task"]}}\n'
    )
    plan = write_plan(tmp_path, plan_text(repos.clone, tasks))
    first = runs.apply(plan)
    assert first.returncode == 1
    assert "conflict: f.txt" in first.stderr + first.stdout
    assert preview(plan)["T"][0] == "fail"
    assert preview(plan, "--rerun-failed")["T"][0] == "run"
    second = runs.apply(plan, "--rerun-failed")
    assert second.returncode == 0, second.stderr
    assert git(repos.clone, "show", "planrun-re:f.txt") == "task"
    assert len(landings(repos.clone, "planrun-re", "T")) == 1
    (kept,) = [b for b in branches(repos.clone) if b.startswith("planrun-kept/re/T/")]
    assert git(repos.clone, "show", f"{kept}:f.txt") == "task"  # the old attempt, kept
    assert f"T: its earlier commits are kept on branch {kept}" in second.stderr


def test_failed_work_is_continued_on_the_moved_target(tmp_path: Path, clean_env: Path) -> None:
    """A failed task's own commits are rebased onto the new tip: the retry continues them
    and sees what landed meanwhile."""
    repos = make_repos(tmp_path)
    script = (
        "if [ ! -e $OUT/again ]; then echo one > t.txt; git add t.txt; $COMMIT -qm one; "
        "exit 1; fi; test -e t.txt && test -e m.txt"
    )
    tasks = f'  T: {{run: [sh, -c, "{script}"], env: {{OUT: {tmp_path}}}}}\n'
    plan = write_plan(tmp_path, plan_text(repos.clone, tasks))
    assert runs.apply(plan).returncode == 1
    git(repos.clone, "switch", "-q", "planrun-re")  # the target moves on meanwhile
    (repos.clone / "m.txt").write_text("moved\n")
    git(repos.clone, "add", "m.txt")
    git(repos.clone, "commit", "-qm", "moved")
    git(repos.clone, "switch", "-q", "main")
    (tmp_path / "again").touch()
    result = runs.apply(plan, "--rerun-failed")
    assert result.returncode == 0, result.stderr
    assert git(repos.clone, "show", "planrun-re:t.txt") == "one"
    assert not [b for b in branches(repos.clone) if b.startswith("planrun-kept/")]


def test_changed_work_starts_over_and_keeps_the_old_commits_under_a_named_branch(
    tmp_path: Path, clean_env: Path
) -> None:
    repos = make_repos(tmp_path, {"f.txt": "base\n"})
    tasks = '  T: {run: [sh, -c, "echo $PLANRUN_ATTEMPT > f.txt; $COMMIT -qam mine; exit 1"]}\n'
    plan = write_plan(tmp_path, plan_text(repos.clone, tasks))
    assert runs.apply(plan).returncode == 1
    old = tip(repos.clone, "planrun/re/T")
    plan.write_text(plan.read_text().replace("; exit 1", ""))
    second = runs.apply(plan)
    assert second.returncode == 0, second.stderr
    (kept,) = [b for b in branches(repos.clone) if b.startswith("planrun-kept/re/T/")]
    assert tip(repos.clone, kept) == old  # the first run's commit, kept whole
    report = json.loads((runs.last_run_folder(plan) / "report.json").read_text())
    (task,) = report["tasks"]
    assert task["kept_branches"] == [kept]


def killed_at(folder: Path, k: int) -> bool:
    """Apply a fresh plan in ``folder`` killed at write ``k``, then apply again; check that
    each task's work is on the target once and the check saw the landed text. False if
    ``k`` passed the last write (the first apply succeeded)."""
    folder.mkdir()
    plan, repo = check_plan(folder, "one")
    crashed = runs.apply(plan, fault=k)
    if crashed.returncode == 0:
        return False
    assert crashed.returncode == -9, (k, crashed.stderr)
    again = runs.apply(plan)
    assert again.returncode == 0, (k, again.stderr)
    assert len(landings(repo, "planrun-re", "A")) == 1, k
    assert (folder / "seen.log").read_text().splitlines()[-1] == "one", k
    return True


def test_killed_at_every_write_each_task_lands_once(tmp_path: Path, clean_env: Path) -> None:
    """Sweep a SIGKILL over every durable write of a run; after each crash, apply again:
    every task's work is on the target exactly once, and the check saw the landed text.
    Two write indexes at a time (each in its own folder): planrun mostly waits on its
    children, and the second core is otherwise idle."""
    k = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        while True:
            pair = [pool.submit(killed_at, tmp_path / f"k{k + i}", k + i) for i in (1, 2)]
            crashed = [future.result() for future in pair]
            if not all(crashed):
                assert crashed != [False, True], k  # a later write cannot crash an earlier
                break  # k passed the last write: the sweep is complete
            k += 2
    assert k > 5


def test_killed_between_landing_and_recording_it_is_adopted_not_run_again(
    tmp_path: Path, clean_env: Path
) -> None:
    plan, repo = check_plan(tmp_path, "one")
    crashed = runs.apply(plan, env={"PLANRUN_FAULT_AFTER_LANDING": "A"})
    assert crashed.returncode == -9
    assert len(landings(repo, "planrun-re", "A")) == 1
    action, why = preview(plan)["A"]
    assert action == "up to date"
    assert "planrun died before recording it" in why
    again = runs.apply(plan)
    assert again.returncode == 0, again.stderr
    assert "planrun died before recording it" in again.stderr
    assert len(landings(repo, "planrun-re", "A")) == 1
    assert State(state_of(plan)).task_states("re")["A"].status.value == "done"
    assert (tmp_path / "seen.log").read_text() == "one\n"  # C ran once, on the landed work
    assert runs.apply(plan).returncode == 0  # and then everything is simply up to date
    assert len(landings(repo, "planrun-re", "A")) == 1


def test_a_deleted_or_reset_target_runs_the_lost_work_again(
    tmp_path: Path, clean_env: Path
) -> None:
    plan, repo = check_plan(tmp_path, "one")
    assert runs.apply(plan).returncode == 0
    git(repo, "branch", "-D", "planrun-re")
    rows = preview(plan)
    assert rows["A"] == ("run", "landed work gone: branch planrun-re no longer exists")
    assert rows["C"][0] == "wait"
    assert runs.apply(plan).returncode == 0
    assert git(repo, "show", "planrun-re:A.txt") == "one"
    git(repo, "branch", "-f", "planrun-re", "main")  # reset: A's landing is gone again
    assert preview(plan)["A"][0] == "run"
    assert "reset or rewritten" in preview(plan)["A"][1]
    assert runs.apply(plan).returncode == 0
    assert git(repo, "show", "planrun-re:A.txt") == "one"
    assert (tmp_path / "seen.log").read_text() == "one\none\none\n"


def test_a_target_branch_planrun_did_not_make_is_refused(tmp_path: Path, clean_env: Path) -> None:
    plan, repo = check_plan(tmp_path, "one")
    git(repo, "switch", "-q", "--orphan", "planrun-re")
    (repo / "other.txt").write_text("unrelated\n")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-qm", "unrelated history")
    git(repo, "switch", "-q", "main")
    for command in ("plan", "apply"):
        result = runs.planrun(command, str(plan), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "branch planrun-re exists but shares no history with main" in result.stderr
    assert not (tmp_path / "seen.log").exists()


def test_two_plan_files_of_one_name_never_share_a_repository(
    tmp_path: Path, clean_env: Path
) -> None:
    repos = make_repos(tmp_path)
    tasks = '  A: {run: [sh, -c, "echo a > a.txt"]}\n'
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = write_plan(tmp_path / "one", plan_text(repos.clone, tasks, "plan"))
    second = write_plan(tmp_path / "two", plan_text(repos.clone, tasks, "plan"))
    assert runs.apply(first).returncode == 0
    refused = runs.apply(second)
    assert refused.returncode == 2
    assert "already used in repository" in refused.stderr
    assert "give plan.yaml its own `name:`" in refused.stderr
    assert runs.planrun("plan", str(second), cwd=second.parent).returncode == 2
    renamed = plan_text(repos.clone, tasks, "plan-two")
    second.write_text(renamed)
    assert runs.apply(second).returncode == 0
    assert tip(repos.clone, "planrun-plan-two") is not None


@pytest.fixture
def folder_of_two(tmp_path: Path) -> tuple[Path, Path]:
    repos = make_repos(tmp_path)
    tasks = '  A: {run: [sh, -c, "echo a > a.txt"]}\n'
    one = write_plan(tmp_path, plan_text(repos.clone, tasks, "one"), "one.yaml")
    two = write_plan(tmp_path, plan_text(repos.clone, tasks, "two"), "two.yaml")
    return one, two


def test_two_plans_in_one_folder_each_have_their_own_state(
    folder_of_two: tuple[Path, Path], clean_env: Path
) -> None:
    one, two = folder_of_two
    assert runs.apply(one).returncode == 0
    assert runs.apply(two).returncode == 0
    assert state_of(one) != state_of(two)
    assert (state_of(one) / "state.db").exists()
    assert (state_of(two) / "state.db").exists()
    again = runs.apply(one)
    assert again.returncode == 0
    assert "up to date" in again.stderr + again.stdout


def test_clean_keeps_a_live_tmux_task_planrun_left_running(
    tmp_path: Path, clean_env: Path, tmux_socket: str
) -> None:
    repos = make_repos(tmp_path)
    waits = f"touch {tmp_path}/started; until [ -e {tmp_path}/go ]; do sleep 0.02; done"
    plan = write_plan(
        tmp_path,
        f"""\
version: 1
name: tm
settings: {{tmux_socket: {tmux_socket}}}
projects: {{app: {{path: {repos.clone}, base_branch: main}}}}
tasks:
  T: {{project: app, backend: tmux, run: [sh, -c, "{waits}; echo done > out.txt"]}}
""",
    )
    apply = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    try:
        runs.wait_for(lambda: (tmp_path / "started").exists(), what="the pane to start")
        runs.kill9(apply)
        cleaned = runs.planrun("clean", str(plan), "--all", cwd=tmp_path)
        assert cleaned.returncode == 1
        assert "never closed" in cleaned.stderr
        assert (state_of(plan) / "worktrees" / "T").is_dir()
        assert "planrun/tm/T" in branches(repos.clone)
        (tmp_path / "go").touch()
        again = runs.apply(plan)  # re-attaches to the pane that went on meanwhile
        assert again.returncode == 0, again.stderr
    finally:
        runs.stop(apply)
    assert git(repos.clone, "show", "planrun-tm:out.txt") == "done"


def test_approve_of_work_whose_branch_is_gone_fails_and_says_how_to_redo_it(
    tmp_path: Path, clean_env: Path
) -> None:
    repos = make_repos(tmp_path)
    tasks = '  R: {run: [sh, -c, "echo r > r.txt"], review: true}\n'
    plan = write_plan(tmp_path, plan_text(repos.clone, tasks))
    assert runs.apply(plan).returncode == 4
    assert preview(plan)["R"][0] == "in review"
    worktree = state_of(plan) / "worktrees" / "R"
    git(repos.clone, "worktree", "remove", "--force", "--force", str(worktree))
    approved = runs.planrun("approve", str(plan), "R", cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr  # the branch alone is enough
    assert git(repos.clone, "show", "planrun-re:r.txt") == "r"
    tasks2 = '  S: {run: [sh, -c, "echo s > s.txt"], review: true}\n'
    plan.write_text(plan_text(repos.clone, tasks + tasks2))
    assert runs.apply(plan).returncode == 4
    git(
        repos.clone,
        "worktree",
        "remove",
        "--force",
        "--force",
        str(state_of(plan) / "worktrees" / "S"),
    )
    git(repos.clone, "branch", "-D", "planrun/re/S")
    gone = runs.planrun("approve", str(plan), "S", cwd=tmp_path)
    assert gone.returncode == 1
    assert "branch planrun/re/S no longer exists" in gone.stderr
    assert "planrun apply --force S" in gone.stderr


SECRET = "sk-live-0123456789abcdef"


def test_approve_masks_a_secret_that_git_quotes(tmp_path: Path, clean_env: Path) -> None:
    """A conflict names the file, and the file's name holds a declared secret: approve
    (which runs outside an apply) masks it, as apply does. (clean masks what it prints the
    same way, but nothing it prints can quote a file name, so no test can show it.)"""
    repos = make_repos(tmp_path)
    write = 'echo {0} > "tok-$TOKEN.txt"'
    plan = write_plan(
        tmp_path,
        plan_text(
            repos.clone,
            f"  S: {{run: [sh, -c, '{write.format('s')}'], secrets: [TOKEN]}}\n"
            f"  R: {{run: [sh, -c, '{write.format('r')}'], secrets: [TOKEN], review: true}}\n",
        ).replace("tasks:", "settings: {secrets: [TOKEN]}\ntasks:"),
    )
    env = {"TOKEN": SECRET}
    assert runs.apply(plan, env=env).returncode == 4  # S done, R in review
    approved = runs.planrun("approve", str(plan), "R", cwd=tmp_path, env=env)
    assert approved.returncode == 1
    assert "conflicts on tok-***.txt" in approved.stdout
    assert SECRET not in approved.stdout + approved.stderr


def test_two_tasks_of_one_run_cut_short_the_landed_one_is_adopted(
    tmp_path: Path, clean_env: Path
) -> None:
    """A lands and planrun dies before recording it while B (same run, also its attempt 1)
    still runs: A is recognised by task and attempt, not by the attempt's name alone."""
    repos = make_repos(tmp_path)
    gate = tmp_path / "go"
    tasks = (
        '  A: {run: [sh, -c, "echo a > A.txt && git add A.txt && $COMMIT -qm a"]}\n'
        f'  B: {{run: [sh, -c, "until [ -e {gate} ]; do sleep 0.05; done; echo b > B.txt'
        ' && git add B.txt && { git diff --cached --quiet || $COMMIT -qm b; }"]}\n'
    )
    plan = write_plan(tmp_path, plan_text(repos.clone, tasks))
    crashed = runs.apply(plan, env={"PLANRUN_FAULT_AFTER_LANDING": "A"})
    assert crashed.returncode == -9
    assert len(landings(repos.clone, "planrun-re", "A")) == 1
    assert preview(plan)["A"][0] == "up to date"
    gate.touch()  # B's first attempt, left running by the crash, may commit before it ends
    again = runs.apply(plan)
    assert again.returncode == 0, again.stderr
    assert len(landings(repos.clone, "planrun-re", "A")) == 1
    assert len(landings(repos.clone, "planrun-re", "B")) == 1

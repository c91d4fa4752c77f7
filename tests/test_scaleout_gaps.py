"""Issue 17's remaining gaps, for real (separate planrun processes, each with its own
clone of one bare repository, a real PostgreSQL): run-wide budgets count every machine,
a task in review is approved from any machine, fingerprints hold across clones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitrepo import git
from tests.runs import PLANRUN, environment
from tests.scaleout import (
    TARGET,
    TIMING,
    Machine,
    landings,
    machines,
    machines_sharing,
    shared_tasks,
)
from tests.test_scaleout import plan_of

pytestmark = pytest.mark.postgres

#: an "agent" that writes its task's file and reports a turn's usage as Claude Code does
SPENDER = r"""
import json, sys
key = sys.argv[-1].split()[0]
open(key + ".txt", "w").write(key + "\n")
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "ok",
                  "total_cost_usd": 0.6, "usage": {"input_tokens": 10, "output_tokens": 5}}))
"""


def spending_plan(root: Path, budget: str) -> str:
    (root / "spender.py").write_text(SPENDER)
    return f"""\
version: 1
name: so
settings: {{max_concurrent: 2, budget: {budget}, env: {{inherit: [PATH]}}}}
projects: {{app: {{path: repo, base_branch: main}}}}
providers:
  spender: {{command: ["{sys.executable}", "{root / "spender.py"}"], prompt_via: argv,
             usage: claude-json}}
defaults: {{project: app, provider: spender}}
tasks:
  A: {{prompt: "A"}}
  B: {{prompt: "B"}}
  C: {{prompt: "C", needs: [A, B]}}
"""


def run_one(machine: Machine, url: str, run_id: str, *extra: str) -> tuple[int, str]:
    machine.start(url, run_id, *extra)
    try:
        return machine.wait()
    finally:
        machine.stop()


def test_a_run_budget_counts_what_every_machine_spent(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    """A spends $0.60 on one machine, B $0.60 on another: the run's $1 is used up, so C
    (which either machine alone would start: each spent $0.60) starts nowhere."""
    _, (m1, m2) = machines(tmp_path, spending_plan(tmp_path, "{cost_usd: 1.0}"), 2)
    code1, err1 = run_one(m1, pg_url, "b1", "--only", "A")
    assert code1 == 0, err1
    code2, err2 = run_one(m2, pg_url, "b1")
    assert code2 == 1, err2
    rows = shared_tasks(pg_url, "b1")
    assert (rows["A"]["status"], rows["B"]["status"]) == ("done", "done")
    assert rows["C"]["status"] == "failed"
    assert "run budget of $1 reached ($1.2000 spent)" in rows["C"]["reason"]
    assert not (m2.repo / "C.txt").exists()
    status = subprocess.run(
        [*PLANRUN, "status", "plan.yaml", "--store", pg_url],
        cwd=m1.folder,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "spent: 30 tokens, $1.2000 (every machine)" in status.stdout, status.stdout


def test_a_run_wall_time_budget_counts_from_the_shared_runs_start(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    """A machine that joins a shared run after its wall time ran out starts nothing."""
    _, (m1, m2) = machines(tmp_path, spending_plan(tmp_path, "{wall_time: 2s}"), 2)
    code1, err1 = run_one(m1, pg_url, "b2", "--only", "A")
    assert code1 == 0, err1
    import psycopg

    with psycopg.connect(pg_url) as con:  # as if the run had opened a minute ago
        con.execute("UPDATE scale_runs SET opened_at = now() - interval '60 s' WHERE id = 'b2'")
    code2, err2 = run_one(m2, pg_url, "b2")
    assert code2 == 1, err2
    rows = shared_tasks(pg_url, "b2")
    assert rows["A"]["status"] == "done"
    assert rows["B"]["status"] == "failed"
    assert "run wall time budget of 2s reached" in rows["B"]["reason"]


REVIEWED = {
    "R": '{run: [sh, -c, "echo R > R.txt"], review: true}',
    "AFTER": '{run: [sh, -c, "cp R.txt AFTER.txt"], needs: [R]}',
}


def approve_on(machine: Machine, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*PLANRUN, "approve", "plan.yaml", "R", "--store", url],
        cwd=machine.folder,
        env=environment(**TIMING),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_task_in_review_is_approved_from_any_machine_and_lands_once(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    origin, (m1, m2, m3) = machines(tmp_path, plan_of(REVIEWED), 3)
    code1, err1 = run_one(m1, pg_url, "v1", "--only", "R")
    assert code1 == 4, err1  # R waits for review; its branch is on the remote
    assert git(origin, "branch", "--list", "planrun/so/R").strip() == "planrun/so/R"
    code2, err2 = run_one(m2, pg_url, "v1")
    assert code2 == 4, err2  # AFTER waits for R, in review on m1
    kept = clean_on(m2, pg_url)  # a branch in review stays on the remote
    assert kept.returncode == 0, kept.stderr
    assert git(origin, "branch", "--list", "planrun/so/R").strip() == "planrun/so/R"
    # approved at once on the machine that ran it and on one that never saw it: once
    approvals = [approve_on(m, pg_url) for m in (m1, m3)]
    ends = [(p.wait(timeout=60), *p.communicate()) for p in approvals]
    assert [code for code, _, _ in ends] == [0, 0], ends
    # each says it landed R (the second then found it landed: "meanwhile elsewhere"), or,
    # when it looked after the first had finished, that R is done already
    said = {out.split(":")[0] for _, out, _ in ends}
    assert said <= {"approved R", "R is done already (approved, or landed)\n"}, ends
    assert "approved R" in said, ends
    assert landings(origin) == ["R"]
    assert git(origin, "branch", "--list", "planrun/so/R") == ""  # the review branch is gone
    rows = shared_tasks(pg_url, "v1")
    assert (rows["R"]["status"], rows["R"]["reason"]) == ("done", "approved")
    again = subprocess.run(
        [*PLANRUN, "approve", "plan.yaml", "R", "--store", pg_url],
        cwd=m2.folder,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "R is done already (approved, or landed)",
    )
    # a machine whose own record says R is in review (it saw it so) runs what waited for it
    code3, err3 = run_one(m2, pg_url, "v1")
    assert code3 == 0, err3
    code4, err4 = run_one(m1, pg_url, "v1")  # and the one that ran R has nothing left to do
    assert code4 == 0, err4
    rows = shared_tasks(pg_url, "v1")
    assert {k: r["status"] for k, r in rows.items()} == {"R": "done", "AFTER": "done"}
    assert landings(origin) == ["R", "AFTER"]
    assert git(origin, "show", f"{TARGET}:AFTER.txt").strip() == "R"
    # a review branch left on the remote (its deletion failed, say) goes with clean --store
    git(m1.repo, "push", "-q", "origin", f"{TARGET}:refs/heads/planrun/so/AFTER")
    cleaned = clean_on(m3, pg_url)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "deleted remote branch planrun/so/AFTER (origin)" in cleaned.stdout
    assert git(origin, "branch", "--list", "planrun/so/*") == ""


def clean_on(machine: Machine, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PLANRUN, "clean", "plan.yaml", "--store", url],
        cwd=machine.folder,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_new_shared_run_of_a_changed_plan_runs_only_what_changed(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    """Convergence across shared runs by fingerprint (portable across clones): after A
    changed, a new shared run on another machine (its clone at another path) runs A and B,
    which needs it, and carries C over."""
    tasks = {
        "A": '{run: [sh, -c, "echo A1 > A.txt"]}',
        "B": '{run: [sh, -c, "cp A.txt B.txt"], needs: [A]}',
        "C": '{run: [sh, -c, "echo C > C.txt"]}',
    }
    origin, (m1,) = machines(tmp_path, plan_of(tasks), 1)
    code1, err1 = run_one(m1, pg_url, "c1")
    assert code1 == 0, err1
    tasks["A"] = tasks["A"].replace("A1", "A2")
    m2 = machines_sharing(origin, tmp_path / "elsewhere", plan_of(tasks))
    code2, err2 = run_one(m2, pg_url, "c2")
    assert code2 == 0, err2
    rows = shared_tasks(pg_url, "c2")
    assert {k: (r["status"], r["claims"]) for k, r in rows.items()} == {
        "A": ("done", 1),
        "B": ("done", 1),
        "C": ("done", 0),
    }
    assert rows["C"]["reason"] == "done in shared run c1"
    assert sorted(landings(origin)) == ["A", "A", "B", "B", "C"]  # C landed once
    assert git(origin, "show", f"{TARGET}:B.txt").strip() == "A2"

"""Several machines share one run through PostgreSQL (SPEC §5, issue 17), for real: each
"machine" is a planrun process with its own clone of one bare repository and its own
state folder; the shared store is the session's PostgreSQL server.

Every scenario asserts the same invariants: every task done exactly once in the shared
store, and its change landed on the shared target exactly once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.gitrepo import git
from tests.scaleout import TARGET, Machine, landings, machines, shared_tasks

pytestmark = pytest.mark.postgres

PLAN = """\
version: 1
name: so
settings: {{max_concurrent: 2}}
projects: {{app: {{path: repo, base_branch: main}}}}
defaults: {{project: app}}
tasks:
{tasks}
"""


def plan_of(tasks: dict[str, str]) -> str:
    return PLAN.format(tasks="\n".join(f"  {k}: {v}" for k, v in tasks.items()))


def writes(name: str, then: str = "") -> str:
    """A task that writes ``name`` (its change), then runs ``then``."""
    script = f"echo {name} > {name}.txt{'; ' + then if then else ''}"
    return '{run: [sh, -c, "' + script + '"]}'


def check_invariants(url: str, run_id: str, origin: Path, keys: list[str]) -> None:
    rows = shared_tasks(url, run_id)
    assert {k: r["status"] for k, r in rows.items()} == dict.fromkeys(keys, "done")
    assert Counter(landings(origin)) == Counter(keys)  # each change landed once
    files = git(origin, "ls-tree", "--name-only", TARGET).split()
    assert {f"{k}.txt" for k in keys} <= set(files)
    for key in keys:
        assert rows[key]["landed_commit"] is not None


def stop_all(found: list[Machine]) -> None:
    for machine in found:
        machine.stop()


def test_two_machines_share_a_run_and_a_dependent_builds_on_work_landed_elsewhere(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    tasks = {k: writes(k) for k in ("A", "B", "C", "D")}
    tasks["E"] = '{run: [sh, -c, "cat A.txt B.txt C.txt D.txt > E.txt"], needs: [A, B, C, D]}'
    origin, found = machines(tmp_path, plan_of(tasks), 2)
    try:
        for machine in found:
            machine.start(pg_url, "r1")
        ends = [machine.wait() for machine in found]
    finally:
        stop_all(found)
    assert [code for code, _ in ends] == [0, 0], "\n".join(err for _, err in ends)
    check_invariants(pg_url, "r1", origin, list(tasks))
    assert git(origin, "show", f"{TARGET}:E.txt").split() == ["A", "B", "C", "D"]
    owners = {row["owner"].rsplit("/", 1)[0] for row in shared_tasks(pg_url, "r1").values()}
    assert all(row["claims"] == 1 for row in shared_tasks(pg_url, "r1").values())
    assert len(owners) >= 1

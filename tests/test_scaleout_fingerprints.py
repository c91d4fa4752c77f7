"""Fingerprints portable across clones (issue 17): a project inside the plan's folder is
hashed by its path relative to that folder, so clones at other paths (the machines of a
shared run) and a folder moved agree; a store written by the old algorithm (the absolute
path hashed), by the planrun of before, re-runs nothing after the upgrade. Real applies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from planrun.core.fingerprint import fingerprint, legacy_fingerprint
from planrun.plan.load import load_plan
from tests import runs
from tests.gitrepo import make_repos

#: planrun as it was before fingerprints were portable (issue 17's merge)
OLD = "e3397f4c7b2b674a47d7615242cabab73bc9074e"
ROOT = Path(__file__).resolve().parent.parent

PLAN = """\
version: 1
name: fp
projects: {app: {path: clone, base_branch: main}}
defaults: {project: app}
tasks:
  A: {run: [sh, -c, "echo A > A.txt"]}
  B: {run: [sh, -c, "cat A.txt > B.txt"], needs: [A]}
  LOOSE: {run: [sh, -c, "true"], project: null}
"""


def folder(root: Path) -> Path:
    root.mkdir(parents=True)
    make_repos(root)
    return runs.write_plan(root, PLAN)


def actions(plan: Path) -> dict[str, str]:
    out = runs.planrun("plan", str(plan), "--json", cwd=plan.parent)
    assert out.returncode == 0, out.stderr
    return {t["key"]: t["action"] for t in json.loads(out.stdout)["tasks"]}


def ran(plan: Path) -> dict[str, int]:
    """How many attempts each task had in the last apply."""
    report = json.loads((runs.last_run_folder(plan) / "report.json").read_text())
    return {t["key"]: len(t["attempts"]) for t in report["tasks"]}


def test_two_clones_at_other_paths_have_the_same_fingerprints(tmp_path: Path) -> None:
    one, two = folder(tmp_path / "m1"), folder(tmp_path / "elsewhere" / "m2")
    p1, p2 = load_plan(one), load_plan(two)
    for key in ("A", "B", "LOOSE"):
        assert fingerprint(p1, p1.tasks[key]) == fingerprint(p2, p2.tasks[key]), key
    assert legacy_fingerprint(p1, p1.tasks["A"]) != legacy_fingerprint(p2, p2.tasks["A"])


def test_a_plan_folder_moved_with_its_repository_reruns_nothing(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = folder(tmp_path / "before")
    assert runs.apply(plan).returncode == 0
    moved = tmp_path / "after"
    shutil.move(tmp_path / "before", moved)
    plan = moved / "plan.yaml"
    assert set(actions(plan).values()) == {"up to date"}
    assert runs.apply(plan).returncode == 0
    assert ran(plan) == {"A": 0, "B": 0, "LOOSE": 0}


def old_planrun(tmp_path: Path) -> Path:
    """The package as it was at OLD, unpacked (skipped without this repository's history)."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "archive", OLD, "planrun"], capture_output=True, check=False
    )
    if found.returncode != 0:
        pytest.skip(f"planrun's git history (commit {OLD[:12]}) is not available here")
    old = tmp_path / "old"
    with tarfile.open(fileobj=BytesIO(found.stdout)) as archive:
        archive.extractall(old, filter="data")
    return old


def test_a_store_written_by_the_old_algorithm_reruns_nothing_after_the_upgrade(
    tmp_path: Path, clean_env: Path
) -> None:
    old = old_planrun(tmp_path)
    plan = folder(tmp_path / "project")
    # -S: no site, so not this checkout's editable install; the dependencies by path
    env = runs.environment(PYTHONPATH=f"{old}{os.pathsep}{sysconfig.get_paths()['purelib']}")
    python = [sys.executable, "-S"]
    where = subprocess.run(
        [*python, "-c", "import planrun; print(planrun.__file__)"],
        cwd=plan.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(old)), where.stdout  # the old code, not this one
    first = subprocess.run(
        [*python, "-m", "planrun", "apply", str(plan), "--progress", "none"],
        cwd=plan.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    compiled = load_plan(plan)
    stored = legacy_fingerprint(compiled, compiled.tasks["A"])
    assert stored != fingerprint(compiled, compiled.tasks["A"])[0]  # it did change
    # after the upgrade: planrun plan and apply agree that nothing is to run
    assert set(actions(plan).values()) == {"up to date"}
    assert runs.apply(plan).returncode == 0
    assert ran(plan) == {"A": 0, "B": 0, "LOOSE": 0}
    # a definition changed since is still seen as changed (only the path form is forgiven)
    runs.write_plan(plan.parent, PLAN.replace("echo A >", "echo AA >"))
    assert actions(plan)["A"] == "run"

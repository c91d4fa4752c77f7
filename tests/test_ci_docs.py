"""docs/ci.md and .pre-commit-hooks.yaml work as written (issue 15).

The GitHub Actions workflow's own steps run here, on the starter plan and on a plan whose
task waits for review (exit 4, which the step turns into a notice); every ``planrun``
command on the page parses with planrun's parser; the pre-commit hook's ``files:``
pattern is the one the page documents, and its entry validates the repository's plans.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from planrun.cli import build_parser
from planrun.commands import spread_lists
from planrun.commands.starter import STARTER_PLAN
from tests.gitrepo import make_repos

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", PAGE, re.S)
BIN = Path(sys.executable).parent


def _yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)


WORKFLOW, GITLAB, PRE_COMMIT = (_yaml(block) for block in BLOCKS)
HOOKS = _yaml((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))


def _commands(script: str) -> list[list[str]]:
    """The ``planrun`` command lines of a shell script, continuation lines joined."""
    joined = script.replace("\\\n", " ")
    return [
        shlex.split(line) for line in joined.splitlines() if line.strip().startswith("planrun ")
    ]


def _scripts() -> list[str]:
    steps = WORKFLOW["jobs"]["planrun"]["steps"]
    gitlab = [" ".join(job["script"]) for job in GITLAB.values() if "script" in job]
    return [step["run"] for step in steps if "run" in step] + gitlab


def test_every_planrun_command_on_the_page_parses() -> None:
    parser = build_parser()
    commands = [c for script in _scripts() for c in _commands(script)]
    assert {c[1] for c in commands} == {"validate", "apply"}
    for command in commands:
        args = parser.parse_args(spread_lists(parser.commands, command[1:]))
        assert args.handler is not None


def test_the_pages_artifacts_are_what_apply_writes() -> None:
    apply = next(c for s in _scripts() for c in _commands(s) if c[1] == "apply")
    upload = next(s for s in WORKFLOW["jobs"]["planrun"]["steps"] if "upload-artifact" in str(s))
    paths = upload["with"]["path"].split()
    assert {apply[apply.index(flag) + 1] for flag in ("--report", "--junit")} <= set(paths)
    job = GITLAB["apply"]
    assert job["artifacts"]["reports"]["junit"] == "planrun-junit.xml"
    assert job["allow_failure"] == {"exit_codes": [4]}
    assert job["artifacts"]["when"] == "always"


def _step(name: str) -> str:
    steps = WORKFLOW["jobs"]["planrun"]["steps"]
    return next(step["run"] for step in steps if step.get("name", "").startswith(name))


def _run_steps(folder: Path, *names: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **WORKFLOW["env"],
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(folder / "summary.md"),
    }
    script = "set -e\n" + "\n".join(f"( {_step(name)} )" for name in names)
    return subprocess.run(
        ["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.skipif(not (BIN / "planrun").exists(), reason="planrun is not installed here")
def test_the_github_steps_validate_apply_and_leave_the_artifacts(
    tmp_path: Path, clean_env: Path
) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / WORKFLOW["env"]["PLAN"]).write_text(STARTER_PLAN)
    done = _run_steps(tmp_path, "Validate", "Apply")
    assert done.returncode == 0, done.stdout + done.stderr
    for path in ("planrun-report.json", "planrun-junit.xml", "summary.md"):
        assert (tmp_path / path).stat().st_size > 0, path
    assert list((tmp_path / "planrun-state" / "runs").glob("*/report.json"))


@pytest.mark.skipif(not (BIN / "planrun").exists(), reason="planrun is not installed here")
def test_the_github_apply_step_passes_a_run_that_waits_for_review(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = make_repos(tmp_path).clone
    (repo / "plans").mkdir()
    (repo / WORKFLOW["env"]["PLAN"]).write_text(
        "version: 1\nname: nightly\nprojects: {app: {path: .., base_branch: main}}\n"
        'tasks:\n  R: {project: app, run: [sh, -c, "echo r > r.txt"], review: true}\n'
    )
    done = _run_steps(repo, "Apply")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "::notice::planrun: tasks wait for review or input" in done.stdout


def test_the_pre_commit_hook_matches_what_the_page_says() -> None:
    (hook,) = HOOKS
    assert hook["id"] == "planrun-validate" == PRE_COMMIT["repos"][0]["hooks"][0]["id"]
    assert f"`{hook['files']}`" in PAGE
    files = re.compile(hook["files"])
    for path in ("plan.yaml", "plans.yml", "plans/nightly.yaml", "ops/plans/a/b.yml"):
        assert files.search(path), path
    for path in (".github/workflows/ci.yml", "myplan.yaml", "plans/notes.md"):
        assert not files.search(path), path
    assert re.compile(PRE_COMMIT["repos"][0]["hooks"][0]["files"]).search("ops/plans/x.yaml")


@pytest.mark.skipif(not (BIN / "planrun").exists(), reason="planrun is not installed here")
def test_the_pre_commit_entry_validates_the_repositorys_plans(tmp_path: Path) -> None:
    (hook,) = HOOKS
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    plans = [path for path in tracked if re.search(hook["files"], path)]
    assert "plans/demo.yaml" in plans
    entry = [str(BIN / "planrun"), *shlex.split(hook["entry"])[1:]]
    done = subprocess.run([*entry, *plans], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # --quiet: nothing but problems
    (tmp_path / "plan.yaml").write_text("version: 1\ntasks: {a: {run: [true]}}\n")
    bad = subprocess.run([*entry, str(tmp_path / "plan.yaml")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "plan.yaml:2:19: tasks.a.run[0]: expected text" in bad.stderr

"""Folders a plan names that planrun must not work in: a bare repository (or a git
directory) as a project's path, and a state folder inside git's own data or a system folder.
Both are refused at validation, located at the value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import runs
from tests.gitrepo import git, make_repos
from tests.plan.helpers import compile_text, errors_of


def project_plan(path: str) -> str:
    return f"""
        version: 1
        projects:
          api: {{path: {path}}}
        tasks:
          A: {{project: api, run: [echo]}}
        """


def test_a_bare_repository_as_a_project_path_is_refused(tmp_path: Path, clean_env: Path) -> None:
    repos = make_repos(tmp_path)
    assert errors_of(project_plan("origin.git"), tmp_path) == [
        f"4:15: projects.api.path: {repos.origin} is a bare git repository, which has no "
        "work tree for tasks to run in; point path at a clone of it"
    ]


@pytest.mark.parametrize("inside", ["clone/.git", "clone/.git/refs", "origin.git/refs/heads"])
def test_a_folder_of_gits_own_data_as_a_project_path_is_refused(
    tmp_path: Path, clean_env: Path, inside: str
) -> None:
    make_repos(tmp_path)
    git_dir = "clone/.git" if inside.startswith("clone") else "origin.git"
    [error] = errors_of(project_plan(inside), tmp_path)
    assert error.startswith("4:15: projects.api.path: ")
    assert f"is inside the git directory {tmp_path / git_dir}" in error or "is a bare" in error


@pytest.mark.parametrize("path", ["clone", "clone/src", "plain", "missing"])
def test_work_trees_plain_and_missing_folders_are_accepted(
    tmp_path: Path, clean_env: Path, path: str
) -> None:
    repos = make_repos(tmp_path)
    (repos.clone / "src").mkdir()
    (tmp_path / "plain").mkdir()
    compile_text(project_plan(path), tmp_path)


def test_apply_never_runs_a_task_in_a_bare_repository(tmp_path: Path, clean_env: Path) -> None:
    make_repos(tmp_path)
    plan = runs.write_plan(
        tmp_path,
        """\
version: 1
projects:
  api: {path: origin.git}
tasks:
  A: {project: api, run: [sh, -c, "touch ran-here"]}
""",
    )
    out = subprocess.run(
        [sys.executable, "-m", "planrun", "apply", str(plan), "--progress", "plain"],
        cwd=tmp_path,
        env=runs.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert f"{plan}:3:15: projects.api.path: " in out.stderr
    assert not (tmp_path / "origin.git" / "ran-here").exists()
    assert not (tmp_path / ".planrun").exists()


def state_plan(state_dir: str) -> str:
    return f"""
        version: 1
        settings: {{state_dir: "{state_dir}"}}
        tasks:
          A: {{run: [echo]}}
        """


@pytest.mark.parametrize("state_dir", [".git", ".git/planrun", "sub/.git/x"])
def test_a_state_folder_inside_git_data_is_refused(
    tmp_path: Path, clean_env: Path, state_dir: str
) -> None:
    git(tmp_path, "init", "-q")
    [error] = errors_of(state_plan(state_dir), tmp_path)
    assert error.startswith("3:23: settings.state_dir: "), error
    assert "git" in error


def test_a_state_folder_in_a_projects_git_directory_is_refused(
    tmp_path: Path, clean_env: Path
) -> None:
    repos = make_repos(tmp_path)
    [error] = errors_of(state_plan(f"{repos.clone}/.git/planrun"), tmp_path)
    assert error == (
        f"3:23: settings.state_dir: {repos.clone}/.git/planrun is inside the git directory "
        f"{repos.clone}/.git, where git keeps its own data; choose a folder outside it, "
        "such as .planrun next to the plan"
    )


@pytest.mark.parametrize(
    "state_dir", ["/", "/etc", "/usr", "/bin", "/proc", "/proc/self", "/sys/x", "/dev", "/dev/null"]
)
def test_a_system_folder_as_the_state_folder_is_refused(
    tmp_path: Path, clean_env: Path, state_dir: str
) -> None:
    [error] = errors_of(state_plan(state_dir), tmp_path)
    assert error.startswith(f"3:23: settings.state_dir: {Path(state_dir).resolve()} is "), error
    assert "system folder" in error


def test_the_home_folder_itself_is_refused(tmp_path: Path, clean_env: Path) -> None:
    assert errors_of(state_plan(str(clean_env)), tmp_path) == [
        f"3:23: settings.state_dir: {clean_env} is your home folder; choose a folder of its "
        "own, such as .planrun next to the plan"
    ]


@pytest.mark.parametrize(
    "state_dir", [".planrun", "/usr/src/app/.planrun", "/dev/shm/planrun", "home/.planrun"]
)
def test_ordinary_state_folders_are_accepted(
    tmp_path: Path, clean_env: Path, state_dir: str
) -> None:
    git(tmp_path, "init", "-q")
    compile_text(state_plan(state_dir), tmp_path)


def test_a_state_dir_given_on_the_command_line_is_held_to_the_same_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from planrun.cli import main

    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\ntasks:\n  A: {run: [echo, a]}\n")
    assert main(["apply", str(plan), "--state-dir", "/etc", "--progress", "none"]) == 2
    assert "--state-dir /etc:" in capsys.readouterr().err
    assert not (tmp_path / ".planrun").exists()

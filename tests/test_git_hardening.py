"""Matrix G8: git never waits on a prompt and never starts housekeeping under planrun.

A ``git`` shim first on ``PATH`` records the argv and the relevant environment of every git
process that planrun starts for a worktree run (prepare, commit, land), then execs the
real git. Every one of them must carry ``GIT_TERMINAL_PROMPT=0`` (a credential prompt
would hang an unattended run) and ``-c gc.auto=0 -c maintenance.auto=false`` (an automatic
gc or maintenance in the middle of ``worktree add`` can take minutes on a big repository
and races other worktrees).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests import runs

#: Records its GIT_TERMINAL_PROMPT and argv (each field ends with NUL, which no argument
#: can hold; one printf, so one write per call), then execs the real git. A shell script,
#: not Python: planrun makes ~50 git calls here, and an interpreter's start-up in each
#: cost ~4 s in all.
SHIM = """#!/bin/sh
printf '%s\\000' "${{GIT_TERMINAL_PROMPT-<unset>}}" "$@" {end} >> {log}
exec {git} "$@"
"""
END = "<end-of-git-call>"


def recorded(log: Path) -> list[dict[str, Any]]:
    """The shim's records: ``{"argv": [...], "prompt": GIT_TERMINAL_PROMPT or None}``."""
    fields = log.read_text().split("\0")
    assert fields.pop() == "", "a record was cut short"
    calls: list[dict[str, Any]] = []
    while fields:
        prompt = fields.pop(0)
        argv = []
        while (field := fields.pop(0)) != END:
            argv.append(field)
        calls.append({"argv": argv, "prompt": None if prompt == "<unset>" else prompt})
    return calls


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def subcommand(argv: list[str]) -> str:
    """The git command in ``argv``, past the ``-c NAME=VALUE`` and ``-C PATH`` options."""
    i = 0
    while argv[i] in ("-c", "-C"):
        i += 2
    return argv[i]


def test_every_git_call_of_a_worktree_run_is_hardened(tmp_path: Path, clean_env: Path) -> None:
    real_git = shutil.which("git")
    assert real_git is not None
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")

    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log = tmp_path / "git-calls.log"
    shim = shim_dir / "git"
    shim.write_text(
        SHIM.format(log=shlex.quote(str(log)), git=shlex.quote(real_git), end=shlex.quote(END))
    )
    shim.chmod(0o755)

    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: hardened
projects: {{app: {{path: {repo}, base_branch: main}}}}
defaults: {{project: app}}
tasks:
  A: {{run: [sh, -c, "echo a > from-a.txt"]}}
  B: {{run: [sh, -c, "echo b > from-b.txt"], needs: [A]}}
""",
    )
    env = runs.environment(PATH=f"{shim_dir}:{os.environ['PATH']}")
    done = subprocess.run(
        [*runs.PLANRUN, "apply", str(plan), "--progress", "plain"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert git(repo, "show", "planrun-hardened:from-b.txt") == "b\n"  # the run really landed

    calls = recorded(log)
    subcommands = {subcommand(c["argv"]) for c in calls}
    assert {"worktree", "commit"} <= subcommands, subcommands  # prepare and land went through
    for call in calls:
        argv = call["argv"]
        assert call["prompt"] == "0", argv
        assert argv[:4] == ["-c", "gc.auto=0", "-c", "maintenance.auto=false"], argv

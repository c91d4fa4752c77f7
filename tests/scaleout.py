"""Helpers of the scale-out tests: "machines" are separate planrun processes, each with
its own clone of one shared bare repository and its own state folder, sharing one run
through the session's PostgreSQL server."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.gitrepo import git, make_repos
from tests.runs import PLANRUN, environment

#: short leases for the tests: a lease of 3 s, renewed every second; a safety poll of 1 s
TIMING = {"PLANRUN_LEASE": "3", "PLANRUN_POLL": "1"}
TARGET = "planrun-so"


@dataclass
class Machine:
    folder: Path
    proc: subprocess.Popen[str] | None = None

    @property
    def plan(self) -> Path:
        return self.folder / "plan.yaml"

    @property
    def repo(self) -> Path:
        return self.folder / "repo"

    def start(self, url: str, run_id: str, *extra: str, **env: str) -> None:
        args = ["apply", "plan.yaml", "--progress", "plain", "--store", url, "--run-id", run_id]
        self.proc = subprocess.Popen(
            [*PLANRUN, *args, *extra],
            cwd=self.folder,
            env=environment(**{**TIMING, **env}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a process group of its own: a machine dies whole
        )

    def wait(self, timeout: float = 90) -> tuple[int, str]:
        assert self.proc is not None
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def signal_group(self, signum: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signum)

    def stop(self) -> None:
        """End a machine a failing test left running (its whole group)."""
        if self.proc is not None and self.proc.poll() is None:
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGKILL)
            self.proc.communicate(timeout=30)


def machines(root: Path, plan_text: str, count: int) -> tuple[Path, list[Machine]]:
    """The shared bare repository and ``count`` machines, each with its clone and the same
    plan file (``path: repo``: the same content, so the same plan on every machine)."""
    (root / "shared").mkdir()
    origin = make_repos(root / "shared").origin
    found = []
    for n in range(1, count + 1):
        folder = root / f"m{n}"
        folder.mkdir()
        git(root, "clone", "-q", str(origin), str(folder / "repo"))
        (folder / "plan.yaml").write_text(plan_text, encoding="utf-8")
        found.append(Machine(folder))
    return origin, found


def machines_sharing(origin: Path, folder: Path, plan_text: str) -> Machine:
    """One more machine: a fresh clone of ``origin`` in ``folder``."""
    folder.mkdir()
    git(folder, "clone", "-q", str(origin), str(folder / "repo"))
    (folder / "plan.yaml").write_text(plan_text, encoding="utf-8")
    return Machine(folder)


def shared_tasks(url: str, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's rows of scale_tasks, by key."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as con:
        if con.execute("SELECT to_regclass('scale_tasks') AS t").fetchone()["t"] is None:  # type: ignore[index]
            return {}  # no machine made the tables yet
        rows = con.execute(
            "SELECT key, status, owner, claims, reason, landed_commit, tail_json,"
            " lease_expires_at FROM scale_tasks WHERE run_id = %s ORDER BY key",
            (run_id,),
        ).fetchall()
    return {row["key"]: row for row in rows}


def landings(origin: Path, target: str = TARGET) -> list[str]:
    """The task of each landing commit on the shared target, first-parent, oldest first."""
    out = git(
        origin,
        "log",
        "--first-parent",
        "--reverse",
        "--format=%(trailers:key=Planrun-Task,valueonly)",
        target,
    )
    return [line.strip() for line in out.splitlines() if line.strip()]

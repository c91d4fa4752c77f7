"""Running ``planrun`` as a real process and reading what it left, for the durable-state tests.

A planrun started here (:func:`spawn`, a fault seam, ``child=True``) is ``python -m planrun``
with ``CI=true`` and the repository on ``PYTHONPATH``, so that it can be killed with SIGKILL
like the real thing; a short command that needs no process of its own runs in this one,
with the same environment and folder (:data:`IN_PROCESS`). Waiting is always on a
condition with a deadline (:func:`wait_for`), never a bare sleep.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from planrun.state.locate import locate
from planrun.state.queries import catch_up
from planrun.state.sqlite import Store
from planrun.state.store import EventRow, RunRow, TaskRow, TaskStateRow

ROOT = Path(__file__).resolve().parent.parent
PLANRUN = [sys.executable, "-m", "planrun"]


def environment(**extra: str) -> dict[str, str]:
    """os.environ for a planrun child: CI, the repository importable, no fault seam."""
    env = {k: v for k, v in os.environ.items() if k != "PLANRUN_FAULT_AT"}
    env.update({"CI": "true", "PYTHONPATH": str(ROOT), **extra})
    return env


def write_plan(folder: Path, text: str, name: str = "plan.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


#: Commands that :func:`planrun` runs in this process (:func:`planrun.cli.main`) when
#: nothing needs a process of its own: no fault seam (it ends the process with SIGKILL) and
#: the main thread (trio's signal handling, os.environ and the working folder are the
#: process's). A new interpreter costs ~0.2-0.4 s of start-up and imports a call; the
#: commands' code is the same. Tests of the entry point itself, signals, kill -9, locks
#: held by another process or a terminal use :func:`spawn`, ``PLANRUN``, ``fault`` or
#: ``child=True``. ``PLANRUN_TESTS_CHILD=1`` runs every call in a child, as before.
IN_PROCESS = frozenset({"apply", "plan", "status", "validate", "report", "logs", "clean"})
ALWAYS_A_CHILD = "PLANRUN_TESTS_CHILD"


def planrun(
    *args: str,
    cwd: Path,
    fault: int | None = None,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    child: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``planrun ARGS`` to its end (``fault``: PLANRUN_FAULT_AT; ``env``: more;
    ``child``: in a new process even where this one would do, see IN_PROCESS)."""
    extra = {} if fault is None else {"PLANRUN_FAULT_AT": str(fault)}
    extra.update(env or {})
    if not child and _in_process_allowed(args, extra):
        return _in_process(args, cwd, environment(**extra))
    return subprocess.run(
        [*PLANRUN, *args],
        cwd=cwd,
        env=environment(**extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _in_process_allowed(args: tuple[str, ...], extra: dict[str, str]) -> bool:
    return (
        bool(args)
        and not os.environ.get(ALWAYS_A_CHILD)
        and args[0] in IN_PROCESS
        and not any(key.startswith("PLANRUN_FAULT") for key in extra)
        and threading.current_thread() is threading.main_thread()
        and not _in_trio()
        and not _orphans()
    )


def _in_trio() -> bool:
    """Whether this is a trio test's run (main's trio.run cannot run inside it)."""
    import trio

    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _orphans() -> bool:
    """Whether processes that outlived a planrun killed earlier in the test are children of
    this process (the subreaper): a planrun in this process would count them as its own."""
    from tests import pg, procs

    table = procs.table()
    return bool(set(procs.descendants(os.getpid(), table)) - pg.running_processes(table))


def _in_process(
    args: tuple[str, ...], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """:func:`planrun.cli.main` with the environment and working folder a child would
    have, and its stdout and stderr captured; both are restored after."""
    from planrun.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args), out=out)
            except SystemExit as e:  # --help, --version
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess([*PLANRUN, *args], code, out.getvalue(), err.getvalue())


def apply(
    plan: Path,
    *args: str,
    fault: int | None = None,
    env: dict[str, str] | None = None,
    child: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``planrun apply PLAN --progress plain ARGS`` to its end (see :func:`planrun`)."""
    words = ("apply", str(plan), "--progress", "plain", *args)
    return planrun(*words, cwd=plan.parent, fault=fault, env=env, child=child)


def spawn(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start ``planrun ARGS`` in the background (stdout and stderr piped)."""
    return subprocess.Popen(
        [*PLANRUN, *args],
        cwd=cwd,
        env=environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill9(proc: subprocess.Popen[str]) -> None:
    """SIGKILL planrun itself (not its tasks, which keep running) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def stop(proc: subprocess.Popen[str]) -> None:
    """End a background planrun that a failing test left running (twice SIGTERM: kill now)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "it") -> None:
    """Poll ``condition`` every 20 ms until it is true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def effects(path: Path) -> Counter[str]:
    """How many times each task left its side effect (one line per execution)."""
    if not path.exists():
        return Counter()
    return Counter(path.read_text().split())


class State:
    """The state store of a plan folder, read-only, for assertions."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir

    @property
    def path(self) -> Path:
        """The store: in ``state_dir``, or in the one plan folder inside it (as ``status``
        finds it: ``.planrun/<plan name>/``)."""
        return locate(None, self.folder).db_path

    def _open(self) -> Store:
        catch_up(self.path.parent)  # as status does: a killed run's journal first
        return Store.open(self.path, readonly=True)

    def runs(self, plan: str) -> list[RunRow]:
        with self._open() as store:
            return store.runs(plan)

    def tasks(self, run_id: str) -> dict[str, TaskRow]:
        with self._open() as store:
            return {t.key: t for t in store.tasks(run_id)}

    def events(self, run_id: str | None = None, plan: str | None = None) -> list[EventRow]:
        with self._open() as store:
            ids = [run_id] if run_id else [r.id for r in store.runs(plan or "")]
            return [e for r in ids for e in store.events(r)]

    def task_states(self, plan: str) -> dict[str, TaskStateRow]:
        with self._open() as store:
            return store.task_states(plan)

    def decisions(self, run_id: str) -> dict[str, str]:
        """What apply decided for each work task of the run (the run_plan event)."""
        for event in self.events(run_id):
            if event.kind == "run_plan":
                return {t["key"]: t["why"] for t in event.data["tasks"] if "why" in t}
        raise AssertionError(f"run {run_id} has no run_plan event")


def state_of(plan: Path) -> Path:
    """The plan's state folder, as apply uses it (``.planrun/<plan name>`` by default)."""
    return locate(str(plan), None).state_dir


def last_run_folder(plan: Path) -> Path:
    """``<state_dir>/runs/<run id>/`` of the plan's last run: the run the state store began
    last. Not the folder whose name sorts last: run ids are a time to the second and a
    random suffix, so two runs begun in the same second sort at random."""
    located = locate(str(plan), None)
    assert located.plan_name, plan
    known = State(located.state_dir).runs(located.plan_name)
    assert known, f"{plan}: no run in {located.state_dir}"
    return located.state_dir / "runs" / known[-1].id


def reaped_signal(pid: int, timeout: float = 20.0) -> int:
    """Wait until ``pid`` (an orphan re-parented to this test process, the subreaper) has
    exited and reap it; returns the signal that killed it (0 if it exited)."""
    result: list[int] = []

    def reaped() -> bool:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return False  # not (yet) our child: its parent has not died
        if done == 0:
            return False
        result.append(os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0)
        return True

    wait_for(reaped, timeout, f"process {pid} to end")
    return result[0]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie is dead)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rindex(")") + 2] not in "ZX"


def marked(marker: str) -> list[int]:
    """Live processes whose environment contains ``marker`` (e.g. ``PLANRUN_PLAN=/x``)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if needle in env and alive(int(entry)):
                found.append(int(entry))
    return found

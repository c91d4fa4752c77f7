"""Crash and resume (reliability matrix C): planrun killed with SIGKILL, then applied again.

A task's side effect is one line in ``effects.log`` per execution, so "never ran twice" is
counted, not assumed. Every planrun here is a real ``python -m planrun`` process.
"""

from __future__ import annotations

import errno
import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from planrun.core.outcomes import Outcome, Status
from tests import runs
from tests.runs import State, effects, write_plan

LONG = """\
version: 1
name: crash
tasks:
  A: {run: [sh, -c, "echo A >> effects.log"]}
  T:
    needs: [A]
    retry: {attempts: 2}
    run:
      shell: echo T >> effects.log; [ -e calm ] && exit 0; sleep 60 & echo $! > sleep.pid; wait
"""


@pytest.fixture
def spawned() -> Iterator[list[runs.subprocess.Popen[str]]]:
    """Background planruns; a failing test must not leave them running."""
    procs: list[runs.subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        runs.stop(proc)


def start_and_kill(plan: Path, spawned: list[runs.subprocess.Popen[str]], old: int | None) -> int:
    """Start apply, wait until T's grandchild runs, SIGKILL planrun; returns that pid."""
    pid_file = plan.parent / "sleep.pid"

    def new_sleeper() -> bool:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        return bool(text) and int(text) != old and runs.alive(int(text))

    proc = runs.spawn("apply", str(plan), "--progress", "plain", cwd=plan.parent)
    spawned.append(proc)
    runs.wait_for(new_sleeper, what="T's sleep to start")
    runs.kill9(proc)
    return int(pid_file.read_text())


def test_kill9_twice_kills_leftovers_and_charges_no_attempt(
    tmp_path: Path, clean_env: Path, spawned: list[runs.subprocess.Popen[str]]
) -> None:
    plan = write_plan(tmp_path, LONG)
    state = State(tmp_path / ".planrun")
    first = start_and_kill(plan, spawned, None)
    assert runs.alive(first), "the task must outlive planrun, or this test proves nothing"

    second = start_and_kill(plan, spawned, first)  # recovery must kill `first` before T runs
    assert runs.reaped_signal(first) == signal.SIGKILL
    events = state.events(plan="crash")
    recovered = [e for e in events if e.kind == "recovered"]
    assert len(recovered) == 1
    assert any("killed" in n for n in recovered[0].data["notes"])
    rerun = [e for e in events if e.kind == "attempt_started" and e.run_id == recovered[0].run_id]
    assert [e.key for e in rerun] == ["T"]
    assert recovered[0].seq < rerun[0].seq
    assert runs.alive(second)

    preview = runs.planrun("plan", str(plan), "--json", cwd=tmp_path)
    rows = {t["key"]: t for t in json.loads(preview.stdout)["tasks"]}
    assert (rows["T"]["action"], rows["T"]["why"]) == ("run", "not done: interrupted last time")
    (tmp_path / "calm").touch()  # T no longer hangs: the third apply runs it to its end
    done = runs.apply(plan)
    assert done.returncode == 0, done.stderr  # two crashes of planrun used up nothing
    assert runs.reaped_signal(second) == signal.SIGKILL
    assert effects(tmp_path / "effects.log") == {"A": 1, "T": 3}
    assert [r.status for r in state.runs("crash")] == ["interrupted", "interrupted", "succeeded"]
    started = [e.key for e in state.events(plan="crash") if e.kind == "attempt_started"]
    assert started == ["A", "T", "T", "T"]


ONCE = """\
version: 1
name: once
tasks:
  T:
    run:
      shell: |
        echo T >> effects.log
        if [ ! -e crashed-once ]; then
          touch crashed-once; sleep 60 & echo $! > sleep.pid; wait
        fi
"""


def test_a_task_cut_short_by_one_crash_runs_again_with_the_default_single_attempt(
    tmp_path: Path, clean_env: Path, spawned: list[runs.subprocess.Popen[str]]
) -> None:
    """Resume runs what was not durably done: an attempt ended by planrun's own death is
    not charged (up to three in a row: see test_convergence for the fourth)."""
    plan = write_plan(tmp_path, ONCE)
    start_and_kill(plan, spawned, None)
    done = runs.apply(plan)
    assert done.returncode == 0, done.stderr
    assert effects(tmp_path / "effects.log") == {"T": 2}
    state = State(tmp_path / ".planrun")
    started = [e.data["n"] for e in state.events(plan="once") if e.kind == "attempt_started"]
    assert started == [1, 2]  # numbering goes on; only the budget forgives


def test_status_and_report_of_a_killed_run(
    tmp_path: Path, clean_env: Path, spawned: list[runs.subprocess.Popen[str]]
) -> None:
    import json

    plan = write_plan(tmp_path, LONG)
    sleeper = start_and_kill(plan, spawned, None)
    status = runs.planrun("status", str(plan), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["run"]["status"] == "interrupted"
    assert shown["lock_holder"] is None
    tasks = {t["key"]: t for t in shown["tasks"]}
    assert tasks["A"]["status"] == "done"
    assert tasks["T"]["status"] == "cancelled"
    assert "interrupted" in tasks["T"]["reason"]
    report = runs.planrun("report", str(plan), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    regenerated = json.loads(report.stdout)
    assert regenerated["status"] == "interrupted"
    assert regenerated["exit_code"] == 130
    t = {x["key"]: x for x in regenerated["tasks"]}["T"]
    assert [a["outcome"] for a in t["attempts"]] == ["interrupted"]
    os.killpg(os.getpgid(sleeper), signal.SIGKILL)  # nobody resumes this one
    runs.wait_for(lambda: not runs.alive(sleeper), what="the leftover task to die")


def test_a_corrupt_store_is_refused_and_left_as_it_is(tmp_path: Path, clean_env: Path) -> None:
    plan = write_plan(tmp_path, "version: 1\ntasks:\n  A: {run: [touch, ran]}\n")
    db = runs.state_of(plan) / "state.db"
    db.parent.mkdir(parents=True)
    garbage = os.urandom(8192)
    db.write_bytes(garbage)
    result = runs.apply(plan)
    assert result.returncode == 2
    assert str(db) in result.stderr
    assert "move it aside" in result.stderr
    assert db.read_bytes() == garbage
    assert not (tmp_path / "ran").exists()


def test_a_second_plan_file_with_the_same_name_is_refused(tmp_path: Path, clean_env: Path) -> None:
    text = "version: 1\nname: shared\ntasks:\n  A: {run: [sh, -c, 'echo A >> effects.log']}\n"
    first = write_plan(tmp_path, text, "one.yaml")
    second = write_plan(tmp_path, text, "two.yaml")
    assert runs.apply(first).returncode == 0
    result = runs.apply(second)
    assert result.returncode == 2
    assert "already holds the state of plan 'shared'" in result.stderr
    assert "two.yaml another `name:`" in result.stderr
    assert effects(tmp_path / "effects.log") == {"A": 1}


def test_an_attempt_is_recorded_before_its_process_starts(tmp_path: Path, clean_env: Path) -> None:
    """Killed right after attempt_started committed: the task never ran, but the attempt
    counts, and the next apply closes it as interrupted and runs the task."""
    plan = write_plan(
        tmp_path,
        "version: 1\nname: early\ntasks:\n"
        "  A: {retry: {attempts: 2}, run: [sh, -c, 'echo A >> effects.log']}\n",
    )
    killed = runs.apply(plan, fault=3)  # run_started, run_plan, attempt_started
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "effects.log").exists()
    assert runs.apply(plan).returncode == 0
    assert effects(tmp_path / "effects.log") == {"A": 1}
    state = State(tmp_path / ".planrun")
    interrupted = [e for e in state.events(plan="early") if e.kind == "attempt_interrupted"]
    assert [(e.key, e.data["n"]) for e in interrupted] == [("A", 1)]
    assert state.task_states("early")["A"].status is Status.DONE
    assert Outcome.INTERRUPTED.value == "interrupted"


def test_a_cancelled_task_gets_a_fresh_attempt_budget(
    tmp_path: Path, clean_env: Path, spawned: list[runs.subprocess.Popen[str]]
) -> None:
    """Ctrl-C is not the task's fault: with retry.attempts 1 it still runs next time."""
    plan = write_plan(
        tmp_path,
        """\
version: 1
name: calm
tasks:
  C: {run: [sh, -c, "echo C >> effects.log; test -e quick || { touch up; sleep 60; }"]}
""",
    )
    proc = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    spawned.append(proc)
    runs.wait_for((tmp_path / "up").exists, what="C to start")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    (tmp_path / "quick").touch()
    again = runs.apply(plan)
    assert again.returncode == 0, again.stderr
    assert effects(tmp_path / "effects.log") == {"C": 2}
    state = State(tmp_path / ".planrun")
    assert state.decisions(state.runs("calm")[-1].id)["C"] == "not done: cancelled last time"


def test_recovery_leaves_a_tmux_task_running_for_re_attach(
    tmp_path: Path,
    clean_env: Path,
    tmux_socket: str,
    spawned: list[runs.subprocess.Popen[str]],
) -> None:
    """A tmux session outlives planrun on purpose: the next apply re-attaches to it, so
    recovery must not kill it (the task then runs once, not twice)."""
    plan = write_plan(
        tmp_path,
        f"""\
version: 1
name: tm
settings: {{tmux_socket: {tmux_socket}}}
tasks:
  T:
    backend: tmux
    retry: {{attempts: 2}}
    run: [sh, -c, "echo $$ > pane.pid; until [ -e stop ]; do sleep 0.02; done; echo T >> fx"]
""",
    )
    pane = tmp_path / "pane.pid"
    first = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    spawned.append(first)
    runs.wait_for(lambda: pane.exists() and pane.read_text().strip(), what="the pane to run")
    pid = int(pane.read_text())
    runs.kill9(first)
    second = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    spawned.append(second)
    state = State(tmp_path / ".planrun")

    def re_attached() -> bool:
        events = state.events(plan="tm")
        return any(e.kind == "attempt_process" and e.data["n"] == 2 for e in events)

    runs.wait_for(re_attached, what="the second apply to re-attach")
    assert runs.alive(pid)
    (tmp_path / "stop").touch()
    _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    assert effects(tmp_path / "fx") == {"T": 1}
    notes = [e.data["notes"] for e in state.events(plan="tm") if e.kind == "recovered"]
    assert any("tmux session running" in n for n in notes[0])


# ---------------------------------------------------------------- the fault-seam sweep

SWEEP = """\
version: 1
name: sweep
settings: {{max_concurrent: 2}}
defaults:
  retry: {{attempts: 3, backoff: {{initial: 10ms, factor: 1, max: 10ms, jitter: 0}}}}
projects:
  repo: {{path: clone, base_branch: main}}
tasks:
  A: {{run: [sh, -c, "echo A >> {fx}"], retry: {{attempts: 1}}}}  # a crash is never charged
  F:
    needs: [A]
    run: [sh, -c, "if [ -e {dir}/flaky ]; then echo F >> {fx}; else touch {dir}/flaky; exit 1; fi"]
  G: {{project: repo, run: [sh, -c, "echo G >> {fx}; echo g > g.txt"]}}
  D: {{needs: [F, G], run: [sh, -c, "echo D >> {fx}"]}}
"""
SWEEP_KEYS = {"A", "F", "G", "D"}


def sweep_plan(folder: Path) -> Path:
    from tests.gitrepo import make_repos

    folder.mkdir(parents=True)
    make_repos(folder)
    text = SWEEP.format(fx=folder / "effects.log", dir=folder)
    return write_plan(folder, text).resolve()


@dataclass(frozen=True)
class Crashed:
    """A sweep folder after its faulted apply."""

    k: int | None
    plan: Path
    writes: int  # journal writes the faulted apply committed
    durable: set[str]  # tasks whose task_done was committed before planrun died


def crash(folder: Path, k: int | None) -> Crashed:
    """A fresh plan folder applied by a real planrun with the fault seam at ``k``."""
    plan = sweep_plan(folder)
    state = State(folder / ".planrun")
    first = runs.apply(plan, fault=k)
    writes = len(state.events(plan="sweep"))
    if k is None or writes < k:
        assert first.returncode == 0, f"k={k}: {first.stderr}"
    else:
        assert first.returncode == -signal.SIGKILL, f"k={k}: {first.stderr}"
        # the journal commits what is queued as one batch, so the seam fires at the end of
        # the batch that holds the k-th write: every write up to k is durable
        assert writes >= k, f"the seam fired after {writes} writes, before the {k}th"
    durable = {str(e.key) for e in state.events(plan="sweep") if e.kind == "task_done"}
    return Crashed(k, plan, writes, durable)


def resume(crashed: Crashed) -> dict[str, object]:
    """Apply again (in this process: nothing crashes now) until it succeeds, then check
    that no task whose success was durable ran again and that nothing the dead planrun
    started lives on. Returns what every sweep must agree on."""
    from planrun.cli import main
    from tests.gitrepo import git

    k, folder = crashed.k, crashed.plan.parent
    resumes = 0
    while main(["apply", str(crashed.plan), "--progress", "none"]) != 0:
        resumes += 1
        assert resumes < 3, f"k={k}: no success after {resumes} resumes"
    ran = effects(folder / "effects.log")
    assert set(ran) == SWEEP_KEYS, f"k={k}: {ran}"
    twice = {key for key, count in ran.items() if count > 1}
    assert not twice & crashed.durable, f"k={k}: {twice & crashed.durable} ran twice"
    assert all(count <= 2 for count in ran.values()), f"k={k}: {ran}"
    marker = f"PLANRUN_PLAN={crashed.plan}"
    runs.wait_for(lambda: not runs.marked(marker), 10, f"k={k}: leftovers to go")
    states = State(folder / ".planrun").task_states("sweep")
    return {
        "states": {key: row.status for key, row in states.items()},
        "tree": git(folder / "clone", "rev-parse", "planrun-sweep^{tree}"),
    }


@pytest.mark.slow
def test_fault_seam_sweep_over_every_journal_write(tmp_path: Path, clean_env: Path) -> None:
    """PLANRUN_FAULT_AT=k for every write k of a clean run: each sweep converges to the
    same state, and no durably done task runs twice."""
    clean = crash(tmp_path / "clean", None)
    expected = resume(clean)
    assert clean.writes > 15
    assert clean.durable == SWEEP_KEYS
    assert set(expected["states"].values()) == {Status.DONE}  # type: ignore[attr-defined]
    with ThreadPoolExecutor(max_workers=2) as pool:  # crashes in parallel, resumes here
        crashes = [pool.submit(crash, tmp_path / f"k{k}", k) for k in range(1, clean.writes + 1)]
        for future in crashes:
            crashed = future.result()
            assert resume(crashed) == expected, f"k={crashed.k}"


# ---------------------------------------------------------------- a journal that fails


class _FullDisk:
    """planrun.state.journalfile's view of ``os``: the disk fills up when the first attempt's end is
    written (matrix C9: the journal's os.write raises ENOSPC from then on)."""

    def __init__(self) -> None:
        self.full = False

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        if b'"op":"attempt_finished"' in data:
            self.full = True
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)


def test_a_journal_write_that_fails_stops_the_run_and_nothing_unrecorded_runs(
    tmp_path: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import planrun.state.journalfile
    from planrun.cli import main

    plan = write_plan(
        tmp_path,
        "version: 1\nname: full\nsettings: {max_concurrent: 2}\ntasks:\n"
        "  A: {run: [sh, -c, 'echo A >> effects.log']}\n"
        "  B: {run: [sh, -c, 'until [ -e go ]; do sleep 0.02; done; echo B >> effects.log']}\n"
        "  C: {needs: [A], run: [sh, -c, 'echo C >> effects.log']}\n",
    )
    disk = _FullDisk()
    monkeypatch.setattr(planrun.state.journalfile, "os", disk)
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    assert disk.full
    stderr = capsys.readouterr().err
    assert "journal write failed (No space left on device)" in stderr
    assert effects(tmp_path / "effects.log") == {"A": 1}  # B was killed, C never started
    (report_path,) = (runs.state_of(plan) / "runs").glob("*/report.json")
    report = json.loads(report_path.read_text())
    assert report["status"] == "failed"
    statuses = {t["key"]: (t["status"], t["reason"]) for t in report["tasks"]}
    assert statuses["B"] == ("cancelled", "cancelled: the journal failed")
    assert statuses["C"][0] == "cancelled"

    monkeypatch.undo()  # space again: the next apply converges; A's success was never
    (tmp_path / "go").touch()  # and B, killed while it waited, now ends at once
    assert main(["apply", str(plan), "--progress", "none"]) == 0  # recorded, so it runs again
    assert effects(tmp_path / "effects.log") == {"A": 2, "B": 1, "C": 1}


FULL_PLAN = (
    "version: 1\nname: full\nsettings: {max_concurrent: 2}\ntasks:\n"
    "  A: {run: [sh, -c, 'echo A >> effects.log']}\n"
    "  B: {run: [sh, -c, 'until [ -e go ]; do sleep 0.02; done; echo B >> effects.log']}\n"
)


def _fill_the_store_too(monkeypatch: pytest.MonkeyPatch, disk: _FullDisk) -> None:
    """Once ``disk`` is full, every write transaction of the store fails as SQLite's do on
    a full disk ("database or disk is full"), through the store's own error path."""
    import contextlib
    import sqlite3

    from planrun.state.sqlite import Store

    original = Store._transaction

    @contextlib.contextmanager
    def transaction(self: Store, *, counted: bool = True) -> Iterator[sqlite3.Connection]:
        with original(self, counted=counted) as con:
            if disk.full:
                raise sqlite3.OperationalError("database or disk is full")
            yield con

    monkeypatch.setattr(Store, "_transaction", transaction)


@pytest.mark.parametrize("store_full", [False, True], ids=["journal-file", "journal-and-store"])
def test_recovery_after_a_journal_failure_says_the_run_stopped_not_that_planrun_died(
    tmp_path: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    store_full: bool,
) -> None:
    import planrun.state.journalfile
    from planrun.cli import main

    plan = write_plan(tmp_path, FULL_PLAN)
    disk = _FullDisk()
    monkeypatch.setattr(planrun.state.journalfile, "os", disk)
    if store_full:  # the run's end cannot be recorded either
        _fill_the_store_too(monkeypatch, disk)
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    (run,) = State(tmp_path / ".planrun").runs("full")
    assert (run.ended_at is None) is store_full
    capsys.readouterr()

    monkeypatch.undo()  # space again
    (tmp_path / "go").touch()
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    notes = [
        line.removeprefix("planrun: recovered: ")
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("planrun: recovered: ")
    ]
    assert notes, "recovery said nothing"
    assert not [note for note in notes if "died" in note or note.endswith("was interrupted")]
    unrecorded = f"attempt 1 of A (run {run.id}) ended unrecorded: the run's journal failed"
    assert f"{unrecorded}; marked interrupted" in notes
    if store_full:
        assert (
            f"run {run.id} stopped because its journal could not be written "
            "(journal write failed (No space left on device)): marked failed"
        ) in notes
    (first, _) = State(tmp_path / ".planrun").runs("full")
    assert first.status == "failed"  # as that apply reported it (exit 1)
    assert not list((runs.state_of(plan) / "journal").glob("*.stopped"))


def test_a_corrupt_journal_is_refused_with_exit_2_and_left_as_it_is(
    tmp_path: Path, clean_env: Path
) -> None:
    """Matrix C3 (b) through apply: the line is named, nothing runs, nothing is deleted."""
    plan = write_plan(
        tmp_path, "version: 1\nname: torn\ntasks:\n  A: {run: [sh, -c, 'echo A >> effects.log']}\n"
    )
    assert runs.apply(plan).returncode == 0
    (run,) = State(tmp_path / ".planrun").runs("torn")
    journal = runs.state_of(plan) / "journal" / f"{run.id}.jsonl"
    journal.write_bytes(b"not a record\n" + b'{"seq": 9, "op": "task_done", "args": {}}\n')
    before = journal.read_bytes()
    refused = runs.apply(plan, "--force", "A")
    assert refused.returncode == 2
    assert f"{journal}: line 1 is not a journal record" in refused.stderr
    assert "move the file aside" in refused.stderr
    assert journal.read_bytes() == before
    assert effects(tmp_path / "effects.log") == {"A": 1}


def test_a_success_cut_off_before_it_was_recorded_runs_again_without_charge(
    tmp_path: Path, clean_env: Path
) -> None:
    """Killed after the attempt's end was journaled (outcome succeeded) but before the task
    was recorded done (the landing, say): not the task's fault, so with a single attempt
    it still runs again, like an interrupted one (found by a kill -9 soak)."""
    plan = write_plan(
        tmp_path, "version: 1\nname: cut\ntasks:\n  A: {run: [sh, -c, 'echo A >> effects.log']}\n"
    )
    # writes: run started, run_plan, attempt_started, attempt_process, attempt_finished
    killed = runs.apply(plan, fault=5)
    assert killed.returncode == -signal.SIGKILL
    state = State(tmp_path / ".planrun")
    kinds = [e.kind for e in state.events(plan="cut")]
    assert kinds[-1] == "attempt_finished"
    assert "task_done" not in kinds
    resumed = runs.apply(plan)
    assert resumed.returncode == 0, resumed.stderr
    assert effects(tmp_path / "effects.log") == {"A": 2}
    assert state.task_states("cut")["A"].status is Status.DONE


def test_a_stop_mark_without_its_problem_still_reads_and_marking_never_raises(
    tmp_path: Path,
) -> None:
    from planrun.state.stops import clear_stops, mark_stopped, read_stops

    journal = tmp_path / "journal"
    mark_stopped(journal, "r1", "journal write failed")  # no folder: nothing, no error
    assert read_stops(journal) == {}
    journal.mkdir()
    (journal / "r2.stopped").touch()  # the disk took the file but not the text
    mark_stopped(journal, "r3", "journal write failed\n(No space left on device)")
    assert read_stops(journal) == {"r2": "", "r3": "journal write failed (No space left on device)"}
    clear_stops(journal, ["r2", "r3", "r4"])
    assert read_stops(journal) == {}

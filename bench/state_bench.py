"""What durable state costs a run, and how fast ``planrun status`` answers. Prints; asserts nothing.

(a) The scheduler runs N trivial tasks (``true``, real processes, PlainWorkspace) three ways:
    with ``StoreJournal`` over the durable SQLite store (synchronous=FULL, planrun's setting),
    over the same store with synchronous=NORMAL (survives a crash of planrun, not of the
    machine), over ``MemoryStore`` (same SQL, no disk), and with no journal at all. Rounds
    alternate between the variants; the median of each is reported. Target: durable at most
    15% slower than in-memory.
(b) A 10,000-task run is written straight into a store with the Store API (9,000 done,
    8 running, the rest pending, as if an apply were going), then ``planrun status`` is timed
    as a user runs it (a new process, wall clock, with and without PLAN, text and --json)
    and in-process (the command's own work, without interpreter start and imports).
    Target: under 1 s.
(c) Matrix L4, the journal at scale: a planrun killed with N tasks' records in its journal
    file and none in the store (N = 500 … 4,000): the file's size per record (linear in N),
    the time to append a record, and the next apply's replay of the whole file into the
    store. Then a real 2,000-task plan run to the end and applied again: that apply finds
    everything up to date and runs nothing (target: under 2 s).

    python bench/state_bench.py [--tasks 1000] [--rounds 3] [--status-tasks 10000]
                                [--dir /path/on/the/disk/to/measure] [--skip-a] [--skip-b]
                                [--skip-c]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

from planrun.core.fingerprint import fingerprint
from planrun.core.outcomes import Outcome
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from planrun.run.scheduler import Journal, NullJournal, RunSettings, Scheduler
from planrun.sessions.subprocess import SubprocessSession
from planrun.state.folder import RUN_PLAN_FORMAT
from planrun.state.journal import StoreJournal
from planrun.state.memory import MemoryStore
from planrun.state.records import AttemptEnd, AttemptProcess, AttemptStart, TaskDone
from planrun.state.sqlite import Store
from planrun.state.store import RUN_PLAN_EVENT, RunRow, StoreProtocol, utc_now

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- (a) scheduler + journal


def trivial_plan(folder: Path, tasks: int) -> CompiledPlan:
    """``tasks`` independent ``true`` tasks, 4 at a time (planrun's default cap)."""
    lines = ["version: 1", "name: bench", "tasks:"]
    lines += [f'  T{i:05d}: {{run: ["true"]}}' for i in range(tasks)]
    path = folder / "plan.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_plan(path)


def run_once(plan: CompiledPlan, folder: Path, variant: str) -> float:
    """Seconds for one scheduler run of ``plan`` with the journal ``variant``."""
    run_id = f"bench-{variant}-{time.monotonic_ns()}"
    store: StoreProtocol | None = None
    journal: Journal = NullJournal()
    if variant != "none":
        if variant == "memory":
            store = MemoryStore()
        else:
            sync = "NORMAL" if variant == "normal" else "FULL"
            store = Store.open(folder / f"{run_id}.db", synchronous=sync)
        store.run_started(
            RunRow(run_id, plan.name, str(plan.path), plan.sha256, "0", utc_now(), "running")
        )
        fps = {k: fingerprint(plan, plan.tasks[k]) for k in plan.work}
        journal_dir = None if variant == "memory" else folder / "journal"
        journal = StoreJournal(
            store, run_id, plan.name, fps, journal_dir=journal_dir, write_behind=variant != "sync"
        )
    settings = RunSettings(run_id=run_id, state_dir=folder / "state")
    scheduler = Scheduler(
        plan, settings, sessions={"subprocess": SubprocessSession()}, journal=journal
    )
    start = time.perf_counter()
    trio.run(scheduler.run)
    seconds = time.perf_counter() - start
    if isinstance(journal, StoreJournal):
        journal.close()  # the writes still queued become durable: part of the run's cost
        seconds = time.perf_counter() - start
    if store is not None:
        store.run_ended(run_id, scheduler.status, utc_now())
        store.close()
    assert scheduler.state.succeeded, "the benchmark run failed"
    return seconds


def bench_scheduler(folder: Path, tasks: int, rounds: int) -> None:
    start = time.perf_counter()
    plan = trivial_plan(folder, tasks)
    print(f"    (plan of {tasks} tasks loaded in {time.perf_counter() - start:.1f} s)")
    variants = ["durable", "sync", "normal", "memory", "none"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    run_once(plan, folder, "memory")  # warm up: imports, page cache
    for _ in range(rounds):
        for variant in variants:
            times[variant].append(run_once(plan, folder, variant))
    memory = statistics.median(times["memory"])
    print(f"(a) {tasks} trivial tasks, cap 4, median of {rounds} rounds (all rounds in s)")
    labels = {
        "durable": "SQLite FULL (planrun)",
        "sync": "FULL, no write-behind",
        "normal": "SQLite NORMAL",
        "memory": "MemoryStore",
        "none": "no journal",
    }
    for variant in variants:
        med = statistics.median(times[variant])
        rel = (med / memory - 1) * 100
        runs = ", ".join(f"{t:.2f}" for t in times[variant])
        print(f"    {labels[variant]:<22} {med:7.3f} s  {rel:+6.1f}% vs memory   [{runs}]")
    print("    planrun: records appended to the run's journal file, applied to SQLite by a")
    print("    writer thread in group commits; 'no write-behind' commits each record in turn")


# ---------------------------------------------------------------- (b) planrun status


def big_run(folder: Path, tasks: int) -> Path:
    """A state folder whose last run has ``tasks`` tasks, most done, some running."""
    state_dir = folder / ".planrun"
    store = Store.open(state_dir / "state.db", synchronous="NORMAL")  # fast to build
    run_id = "20261121T060000Z-bench0"
    plan_path = folder / "plan.yaml"
    store.run_started(
        RunRow(
            run_id,
            "big",
            str(plan_path),
            "00" * 32,
            "0",
            utc_now(),
            "running",
            pid=os.getpid(),
            host=socket.gethostname(),
        )
    )
    keys = [f"T{i:05d}" for i in range(tasks)]
    planned = [
        {
            "key": k,
            "kind": "work",
            "title": f"Task {k}",
            "provider": "shell",
            "run": True,
            "why": "new: never ran",
            **({"waits_for": [keys[i - 1]]} if i % 10 else {}),
        }
        for i, k in enumerate(keys)
    ]
    store.happened(run_id, RUN_PLAN_EVENT, None, {"format": RUN_PLAN_FORMAT, "tasks": planned})
    done, running = int(tasks * 0.9), 8
    for i, key in enumerate(keys[: done + running]):
        log = str(state_dir / "logs" / run_id / key / "attempt-1.log")
        store.attempt_started(run_id, AttemptStart(key, 1, utc_now(), "f" * 64, log))
        store.attempt_process(run_id, AttemptProcess(key, 1, 100000 + i, 100000 + i, 1))
        if i < done:
            tail = [f"line {n}" for n in range(20)]
            end = AttemptEnd(
                key, 1, Outcome.SUCCEEDED, utc_now(), exit_code=0, reason="exit code 0", tail=tail
            )
            store.attempt_finished(run_id, end)
            data = {"title": f"Task {key}"}
            store.task_done(
                run_id, TaskDone(plan_name="big", key=key, fingerprint="f" * 64, data=data)
            )
    store.close()
    lines = ["version: 1", "name: big", "tasks:"]
    lines += [f'  {k}: {{run: ["true"]}}' for k in keys]
    plan_path.write_text("\n".join(lines) + "\n")
    return plan_path


def wall(argv: list[str], cwd: Path, rounds: int) -> tuple[float, int]:
    """Median wall-clock seconds of a command, and its output size."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times, size = [], 0
    for _ in range(rounds):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
        size = len(done.stdout)
    return statistics.median(times), size


def in_process(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_status(folder: Path, tasks: int, rounds: int) -> None:
    from planrun.cli import main
    from planrun.state.lock import StateLock

    start = time.perf_counter()
    plan = big_run(folder, tasks)
    lock = StateLock.acquire(folder / ".planrun")  # this process plays the live apply
    print(
        f"(b) planrun status on a {tasks}-task run (built in {time.perf_counter() - start:.1f} s)"
        f", median of {rounds}"
    )
    python = [sys.executable, "-m", "planrun", "status"]
    cases = [
        ("status (no PLAN)", python),
        ("status PLAN", [*python, str(plan)]),
        ("status PLAN --json", [*python, str(plan), "--json"]),
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("planrun --version", [sys.executable, "-m", "planrun", "--version"]),
    ]
    for label, argv in cases:
        seconds, size = wall(argv, folder, rounds)
        print(f"    {label:<22} {seconds:7.3f} s wall   ({size / 1024:.0f} KiB out)")
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        for label, args in [
            ("in-process text", [str(plan)]),
            ("in-process --json", [str(plan), "--json"]),
        ]:
            argv = ["status", *args]
            seconds = in_process(lambda: main(argv, out=io.StringIO()), rounds)  # noqa: B023
            print(f"    {label:<22} {seconds:7.3f} s")
    finally:
        os.chdir(cwd)
        lock.release()


# ---------------------------------------------------------------- (c) journal at scale

KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from planrun.state.journal import StoreJournal
from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo
from planrun.state.store import RunRow, utc_now
from planrun.state.sqlite import Store

folder, tasks = Path(sys.argv[1]), int(sys.argv[2])
store = Store.open(folder / "state.db")
store.run_started(RunRow("r1", "p", "/p.yaml", "00", "0", utc_now(), "running"))
fps = {f"T{i:05d}": ("f" * 64, {"run": "1" * 16}) for i in range(tasks)}
j = StoreJournal(store, "r1", "p", fps, journal_dir=folder / "journal", window=3600)
start = time.perf_counter()
for key in fps:
    j.attempt_started(key, 1, folder / "logs" / f"{key}.log")
    j.attempt_process(key, 1, ProcessInfo(pid=10, pgid=10, start_time=5))
    j.attempt_finished(key, AttemptReport(number=1, started_at=utc_now(), outcome="succeeded"))
    j.task_finished(key, TaskReport(key=key, title=key, status="done"))
print((time.perf_counter() - start) / (4 * tasks))
os._exit(0)  # killed: nothing applied to the store, the journal file left behind
"""


def bench_journal(folder: Path, sizes: list[int], resume_tasks: int) -> None:
    from planrun.state.journal import replay

    print("(c) the journal at scale: a killed run's file, replayed by the next apply")
    print("    tasks  records  file MB  bytes/record  append µs/record  replay s")
    for tasks in sizes:
        work = folder / f"j{tasks}"
        work.mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", KILLED_WRITER, str(work), str(tasks)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        per_record = float(done.stdout)
        (journal,) = (work / "journal").glob("*.jsonl")
        size = journal.stat().st_size
        store = Store.open(work / "state.db")
        start = time.perf_counter()
        notes = replay(store, work / "journal")
        seconds = time.perf_counter() - start
        store.close()
        assert f"replayed {4 * tasks} journal record(s) of run r1" in notes, notes
        print(
            f"    {tasks:5d}  {4 * tasks:7d}  {size / 1e6:7.2f}  {size / (4 * tasks):12.0f}"
            f"  {per_record * 1e6:16.1f}  {seconds:8.3f}"
        )
    plan = folder / "resume" / "plan.yaml"
    plan.parent.mkdir()
    lines = ["version: 1", "name: resume", "tasks:"]
    lines += [f'  T{i:05d}: {{run: ["true"]}}' for i in range(resume_tasks)]
    plan.write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", "planrun", "apply", str(plan), "--progress", "none"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr
    start = time.perf_counter()
    again = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    assert again.returncode == 0, again.stderr
    print(f"    apply again of a finished {resume_tasks}-task plan (runs nothing): {seconds:.2f} s")
    print("    (target under 2 s; a new process, interpreter start and imports included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--status-tasks", type=int, default=10000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--skip-a", action="store_true")
    parser.add_argument("--skip-b", action="store_true")
    parser.add_argument("--skip-c", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="planrun-state-bench-") as tmp:
        folder = Path(tmp)
        print(f"folder: {folder}")
        if not args.skip_a:
            (folder / "a").mkdir()
            bench_scheduler(folder / "a", args.tasks, args.rounds)
        if not args.skip_b:
            (folder / "b").mkdir()
            bench_status(folder / "b", args.status_tasks, args.rounds)
        if not args.skip_c:
            (folder / "c").mkdir()
            bench_journal(folder / "c", [500, 1000, 2000, 4000], 2000)


if __name__ == "__main__":
    main()

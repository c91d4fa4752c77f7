"""Micro-benchmark of the state store: what durability costs per task.

Each task does what the scheduler does for a one-attempt success: attempt_started,
attempt_process, attempt_finished, task_done and 3 more events (7 transactions). The same
workload runs against the SQLite file with synchronous=FULL (planrun's setting) and NORMAL,
and against the in-memory store. Also times opening an existing store (with quick_check)
and a read-only open. Prints figures; asserts nothing.

    python bench/store_bench.py [--tasks 1000] [--dir /path/on/the/disk/to/measure]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from planrun.core.outcomes import Outcome
from planrun.state.memory import MemoryStore
from planrun.state.records import AttemptEnd, AttemptProcess, AttemptStart, TaskDone
from planrun.state.sqlite import Store
from planrun.state.store import RunRow, StoreProtocol, utc_now

WRITES_PER_TASK = 7


def workload(store: StoreProtocol, tasks: int) -> float:
    """Run the per-task writes ``tasks`` times; return the seconds they took."""
    store.run_started(RunRow("bench", "bench", "/bench.yaml", "00" * 32, "0", utc_now(), "running"))
    start = time.perf_counter()
    for i in range(tasks):
        key = f"T{i:05d}"
        store.attempt_started("bench", AttemptStart(key, 1, utc_now(), "fp", f"/logs/{key}.log"))
        store.attempt_process("bench", AttemptProcess(key, 1, 1000 + i, 1000 + i, 123456))
        store.happened("bench", "output", key, {"line": "working..."})
        store.happened("bench", "hook_ran", key, {"hook": "on_task_success", "exit": 0})
        end = AttemptEnd(key, 1, Outcome.SUCCEEDED, utc_now(), exit_code=0, tail=["ok"] * 20)
        store.attempt_finished("bench", end)
        store.happened("bench", "landed", key, {"commit": "c0ffee"})
        done = TaskDone(plan_name="bench", key=key, fingerprint="fp", landed_commit="c0ffee")
        store.task_done("bench", done)
    return time.perf_counter() - start


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def report(label: str, seconds: float, tasks: int) -> None:
    per_task = seconds / tasks * 1000
    per_write = per_task / WRITES_PER_TASK
    print(f"{label:<22} {seconds:8.3f} s   {per_task:7.3f} ms/task   {per_write:6.3f} ms/write")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="where the file stores go")
    args = parser.parse_args()
    tasks: int = args.tasks

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="planrun-store-bench-") as tmp:
        print(f"{tasks} tasks x {WRITES_PER_TASK} transactions; files in {tmp}")
        for level in ("FULL", "NORMAL"):
            path = Path(tmp) / level / "state.db"
            store = Store.open(path, synchronous=level)
            try:
                report(f"sqlite file, {level}", workload(store, tasks), tasks)
            finally:
                store.close()
        memory = MemoryStore()
        try:
            report("memory", workload(memory, tasks), tasks)
        finally:
            memory.close()

        path = Path(tmp) / "FULL" / "state.db"
        size_kib = path.stat().st_size / 1024
        reopen = timed(lambda: Store.open(path).close())
        ro = timed(lambda: Store.open(path, readonly=True).close())
        print(f"open {size_kib:.0f} KiB store, read-write (quick_check): {reopen * 1000:7.1f} ms")
        print(f"open {size_kib:.0f} KiB store, read-only:                {ro * 1000:7.1f} ms")


if __name__ == "__main__":
    main()

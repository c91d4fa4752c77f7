"""Benchmark: validate + compile (``load_plan``) plans of 1,000, 10,000 and 100,000 tasks.

Each plan has about two needs per task (on earlier tasks, so it is acyclic), a priority, a
title and an argv command with a template. Every load runs in a fresh interpreter (so one
size's memory does not colour the next and every load is cold), ``--runs`` times per size;
the best wall and CPU times are kept (CPU time is the steadier figure on a shared machine),
with the largest peak resident memory (``ru_maxrss`` of the child: it includes the
interpreter and imports, whose share is shown too). ``order s`` is the time the dispatch
order takes on first use after loading (``plan.work``; ``apply`` and ``plan`` need it,
``validate`` does not).

    python bench/plan_bench.py                 # 1k, 10k, 100k
    python bench/plan_bench.py --sizes 10000   # one size
    python bench/plan_bench.py --profile 10000 # cProfile of one load, top 25 by cumulative time

Targets (issue): 10,000 tasks under 2 s and 200 MB; 100,000 within 12x of the 10,000 time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_plan(path: Path, n: int, seed: int = 7) -> None:
    """A plan of ``n`` shell tasks; task i needs up to two of the tasks before it."""
    rng = random.Random(seed)
    lines = [
        "version: 1",
        f"name: bench-{n}",
        "defaults:",
        "  timeout: 10m",
        "  retry: {attempts: 2, backoff: {initial: 1s}}",
        "tasks:",
    ]
    for i in range(n):
        lines.append(f"  t{i:06d}:")
        lines.append(f"    title: Step {i}")
        if i:
            picks = sorted({rng.randrange(max(0, i - 50), i) for _ in range(2)})
            lines.append(f"    needs: [{', '.join(f't{p:06d}' for p in picks)}]")
        lines.append(f"    priority: {i % 5}")
        lines.append('    run: [echo, "{{ task.key }}"]')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def measure(plan: Path, repeat: int = 1) -> dict[str, float]:
    """Run in the child: import, note the baseline, then time load_plan ``repeat`` times."""
    sys.path.insert(0, str(ROOT))
    from planrun.plan.load import load_plan

    load_plan  # noqa: B018 (imported before the baseline is taken)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best = best_cpu = order = float("inf")
    tasks = 0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        plan_obj = load_plan(plan)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        start = time.perf_counter()
        tasks = len(plan_obj.work)  # the dispatch order is worked out on first use
        order = min(order, time.perf_counter() - start)
        del plan_obj
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "tasks": tasks,
        "seconds": best,
        "cpu_seconds": best_cpu,
        "order_seconds": order,
        "peak_mb": peak_kb / 1024,
        "base_mb": base_kb / 1024,
    }


def run_child(plan: Path) -> dict[str, float]:
    """One cold load of ``plan`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(plan)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def best_of(plan: Path, runs: int) -> dict[str, float]:
    """The fastest of ``runs`` cold loads (wall and CPU each), and the largest peak memory."""
    results = [run_child(plan) for _ in range(runs)]
    best = dict(results[0])
    for name in ("seconds", "cpu_seconds", "order_seconds", "base_mb"):
        best[name] = min(r[name] for r in results)
    best["peak_mb"] = max(r["peak_mb"] for r in results)
    return best


def profile(plan: Path) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT))
    from planrun.plan.load import load_plan

    profiler = cProfile.Profile()
    profiler.enable()
    load_plan(plan)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3, help="cold loads per size; best is kept")
    parser.add_argument("--profile", type=int, metavar="N", help="profile one load of N tasks")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    with tempfile.TemporaryDirectory(prefix="planrun-bench-") as tmp:
        if args.profile:
            plan = Path(tmp) / f"plan-{args.profile}.yaml"
            write_plan(plan, args.profile)
            profile(plan)
            return
        results: dict[int, dict[str, float]] = {}
        print(
            f"{'tasks':>8} {'file MB':>8} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} "
            f"{'imports MB':>11} {'order s':>8}"
        )
        for n in args.sizes:
            plan = Path(tmp) / f"plan-{n}.yaml"
            write_plan(plan, n)
            r = results[n] = best_of(plan, args.runs)
            size_mb = os.path.getsize(plan) / 1e6
            print(
                f"{n:>8,} {size_mb:>8.1f} {r['seconds']:>8.2f} {r['cpu_seconds']:>8.2f} "
                f"{r['peak_mb']:>12.0f} {r['base_mb']:>11.0f} {r['order_seconds']:>8.2f}"
            )
        if 10_000 in results and 100_000 in results:
            wall = results[100_000]["seconds"] / results[10_000]["seconds"]
            cpu = results[100_000]["cpu_seconds"] / results[10_000]["cpu_seconds"]
            print(f"100k/10k ratio: {wall:.1f}x wall, {cpu:.1f}x CPU (target: within 12x)")


if __name__ == "__main__":
    main()

"""A run shared through PostgreSQL (issue 17): what it costs and how fast it recovers.

Three measures, on a private PostgreSQL server this script starts from the machine's
binaries (tests/pg.py, durable defaults: fsync and synchronous_commit on):

1. Per-task overhead of the shared store on one machine: ``planrun apply`` of N trivial
   tasks (``run: [true]``, no git project) alone (SQLite state folder only) and with
   ``--store`` (the same, plus a claim, a lease and a fenced finish per task); the
   difference per task and the ratio of the wall times.
2. Throughput with 1, 2 and 4 machines (planrun processes on this host) on N trivial
   tasks, and the raw claim cycle (claim + renew + fenced finish, straight SQL) of 4
   processes: claims per second.
3. Takeover after ``kill -9`` of a machine's process group, for two leases: the time from
   the kill to the task being claimed again by the machine that waits.

Prints a Markdown table per measure; asserts nothing. Rounds alternate between contenders;
medians are printed.

    python bench/scaleout_bench.py [--tasks 200] [--rounds 3] [--leases 2,4]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import pg  # noqa: E402
from tests.runs import PLANRUN, environment  # noqa: E402
from tests.scaleout import machines, shared_tasks  # noqa: E402


def trivial_plan(n: int, concurrent: int, command: str = '["true"]') -> str:
    tasks = "\n".join(f"  T{i:04d}: {{run: {command}}}" for i in range(n))
    return f"version: 1\nname: bench\nsettings: {{max_concurrent: {concurrent}}}\ntasks:\n{tasks}\n"


def apply_all(folders: list[Path], store: str | None, run_id: str) -> float:
    """Wall seconds of one apply per folder, started together, to the last one's end."""
    extra = [] if store is None else ["--store", store, "--run-id", run_id]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*PLANRUN, "apply", "plan.yaml", "--progress", "none", *extra],
            cwd=folder,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in folders
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"apply failed ({proc.returncode}): {err}")
    return time.perf_counter() - start


def folders_with(root: Path, text: str, count: int) -> list[Path]:
    found = []
    for n in range(count):
        folder = root / f"m{n}"
        folder.mkdir(parents=True)
        (folder / "plan.yaml").write_text(text, encoding="utf-8")
        found.append(folder)
    return found


def overhead(server: pg.Server, root: Path, n: int, rounds: int) -> None:
    alone: list[float] = []
    shared: list[float] = []
    for r in range(rounds):
        alone.append(apply_all(folders_with(root / f"alone{r}", trivial_plan(n, 4), 1), None, ""))
        url = server.create_database()
        shared.append(
            apply_all(folders_with(root / f"shared{r}", trivial_plan(n, 4), 1), url, f"o{r}")
        )
    a, s = statistics.median(alone), statistics.median(shared)
    print(f"\n### 1. Per-task overhead, one machine, {n} trivial tasks, -j 4\n")
    print("| store | wall s (median) | ms per task |")
    print("| --- | --- | --- |")
    print(f"| SQLite state folder only | {a:.2f} | {1000 * a / n:.2f} |")
    print(f"| + --store postgresql:// | {s:.2f} | {1000 * s / n:.2f} |")
    print(f"\nshared / SQLite: **{s / a:.2f}**; overhead {1000 * (s - a) / n:.2f} ms per task")


def throughput(server: pg.Server, root: Path, n: int, rounds: int) -> None:
    print(f"\n### 2. {n} short tasks on 1, 2 and 4 machines (-j 4 each, all on this host)\n")
    print("| task | machines | wall s (median) | tasks/s |")
    print("| --- | --- | --- | --- |")
    for command, what in (('["true"]', "true"), ("[sleep, '0.2']", "sleep 0.2")):
        for count in (1, 2, 4):
            walls = []
            for r in range(rounds):
                url = server.create_database()
                text = trivial_plan(n, 4, command)
                folders = folders_with(root / f"tp{what[:2]}{count}-{r}", text, count)
                walls.append(apply_all(folders, url, f"t{count}-{r}"))
            wall = statistics.median(walls)
            print(f"| `{what}` | {count} | {wall:.2f} | {n / wall:.0f} |")
    raw_claims(server, n * 5)


def _claimer(url: str, run_id: str, keys: list[str], out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from planrun.state.postgres import scale
    from planrun.state.postgres.opening import connect

    con = connect(url, url)
    caps = scale.Caps({}, {})
    machine = f"m{os.getpid()}"
    done = 0
    start = time.perf_counter()
    for key in keys:
        verdict = scale.claim(con, run_id, machine, scale.TaskSpec(key, "p", None), caps, 60)
        if verdict.token is None:
            continue
        scale.renew(con, run_id, machine, [verdict.token], 60)
        scale.finish(con, run_id, key, verdict.token, scale.Finish("done"))
        done += 1
    out.put((done, time.perf_counter() - start))
    con.close()


def raw_claims(server: pg.Server, n: int) -> None:
    """4 processes race through the same n keys: each key is claimed by one of them."""
    from planrun.state.open import open_store
    from planrun.state.postgres import scale
    from planrun.state.postgres.opening import connect

    url = server.create_database()
    open_store(url).close()
    con = connect(url, url)
    scale.create_tables(con)
    scale.join_run(con, "raw", "bench", "00", "raw")
    keys = [f"K{i:06d}" for i in range(n)]
    scale.seed_tasks(con, "raw", [scale.TaskSpec(k, "p", None) for k in keys])
    con.close()
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    start = time.perf_counter()
    workers = [
        multiprocessing.Process(target=_claimer, args=(url, "raw", keys, out)) for _ in range(4)
    ]
    for w in workers:
        w.start()
    results = [out.get() for _ in workers]
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    total = sum(done for done, _ in results)
    print(f"\nraw claim + renew + fenced finish, 4 processes, {n} keys: {total} done once each,")
    print(f"**{total / wall:.0f} claims/s** ({wall:.2f} s, including process start)")


def takeover(server: pg.Server, root: Path, leases: list[float], rounds: int) -> None:
    print("\n### 3. Takeover after kill -9 of a machine's process group\n")
    print("| lease s | heartbeat s | kill -> claimed again, s (each round) | median |")
    print("| --- | --- | --- | --- |")
    for lease in leases:
        times = [one_takeover(server, root / f"to{lease}-{r}", lease) for r in range(rounds)]
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(f"| {lease:g} | {lease / 3:.2f} | {shown} | {statistics.median(times):.2f} |")


def one_takeover(server: pg.Server, root: Path, lease: float) -> float:
    root.mkdir(parents=True)
    url = server.create_database()
    first = root / "first"
    pid = root / "pid"
    script = (
        f"if [ -e {first} ]; then echo x > x.txt;"
        f" else echo $$ > {pid}; touch {first}; exec sleep 60; fi"
    )
    text = (
        "version: 1\nname: so\nprojects: {app: {path: repo, base_branch: main}}\n"
        f'defaults: {{project: app}}\ntasks:\n  SLOW: {{run: [sh, -c, "{script}"]}}\n'
    )
    _, (m1, m2) = machines(root, text, 2)
    env = {"PLANRUN_LEASE": str(lease), "PLANRUN_POLL": "10"}
    try:
        m1.start(url, "t", **env)
        _wait(first.exists, 30)
        m2.start(url, "t", **env)
        _wait(lambda: shared_tasks(url, "t")["SLOW"]["owner"] is not None, 30)
        killed = time.perf_counter()
        m1.signal_group(signal.SIGKILL)
        _wait(lambda: shared_tasks(url, "t")["SLOW"]["claims"] == 2, lease * 3, 0.01)
        taken = time.perf_counter() - killed
        m1.wait()
        m2.wait()
    finally:
        m1.stop()
        m2.stop()
        if pid.exists():  # the dead machine's task, in a process group of its own
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid.read_text()), signal.SIGKILL)
    return taken


def _wait(condition: object, timeout: float, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--leases", default="2,4")
    args = parser.parse_args()
    for name in ("GIT_AUTHOR", "GIT_COMMITTER"):  # the clones' landing commits
        os.environ.setdefault(f"{name}_NAME", "bench")
        os.environ.setdefault(f"{name}_EMAIL", "bench@example.invalid")
    with tempfile.TemporaryDirectory(prefix="scaleout-bench-") as tmp:
        root = Path(tmp)
        server = pg.start_server(root / "pg", pg.DURABLE)
        try:
            overhead(server, root / "overhead", args.tasks, args.rounds)
            throughput(server, root / "throughput", args.tasks, args.rounds)
            leases = [float(x) for x in args.leases.split(",")]
            takeover(server, root / "takeover", leases, args.rounds)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

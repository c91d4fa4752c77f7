"""What one attempt's writes cost in the PostgreSQL store, against the SQLite store.

One attempt of a task that succeeds writes ``attempt_started``, ``attempt_finished`` and
``task_done``. Each store does N attempts two ways: three transactions (as a direct write,
or ``attempt_started`` alone, which a task waits for), and one ``batch()`` of the three
(the journal's writer commits what it has queued as one transaction). Rounds alternate
between the stores; the median per attempt of each is printed, with the ratio to SQLite
FULL. Prints; asserts nothing.

Stores: SQLite with synchronous=FULL (planrun's setting) and NORMAL; PostgreSQL on a
private server this script starts from the machine's binaries (tests/pg.py: 127.0.0.1,
as the postgres user when run as root) with its durable defaults (fsync and
synchronous_commit on), and the same server with synchronous_commit=off (a commit no
longer waits for the WAL flush). Or ``--url`` to measure a server of your own (an empty
database that planrun may fill).

    python bench/store_pg_bench.py [--attempts 500] [--rounds 3] [--url postgresql://...]
                                   [--dir /path/on/the/disk/to/measure]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planrun.core.outcomes import Outcome  # noqa: E402
from planrun.state.open import open_store  # noqa: E402
from planrun.state.records import AttemptEnd, AttemptStart, TaskDone  # noqa: E402
from planrun.state.sqlite import Store  # noqa: E402
from planrun.state.store import RunRow, StoreProtocol, utc_now  # noqa: E402
from tests import pg  # noqa: E402


def attempts(store: StoreProtocol, run_id: str, n: int, *, batched: bool) -> float:
    """Seconds per attempt over ``n`` attempts of new tasks."""
    store.run_started(RunRow(run_id, "bench", "/bench.yaml", "00" * 32, "0", utc_now(), "running"))
    start = time.perf_counter()
    for i in range(n):
        key = f"T{i:05d}"
        if batched:
            with store.batch():
                one_attempt(store, run_id, key)
        else:
            one_attempt(store, run_id, key)
    return (time.perf_counter() - start) / n


def one_attempt(store: StoreProtocol, run_id: str, key: str) -> None:
    store.attempt_started(run_id, AttemptStart(key, 1, utc_now(), "fp", f"/logs/{key}.log"))
    end = AttemptEnd(key, 1, Outcome.SUCCEEDED, utc_now(), exit_code=0, tail=["ok"] * 20)
    store.attempt_finished(run_id, end)
    done = TaskDone(plan_name="bench", key=key, fingerprint="fp", landed_commit="c0ffee")
    store.task_done(run_id, done)


@contextmanager
def servers(url: str | None, folder: Path) -> Iterator[dict[str, str]]:
    """The PostgreSQL contenders: name -> URL of an empty database."""
    if url is not None:
        yield {"postgresql (--url)": url}
        return
    durable = pg.start_server(folder / "durable", pg.DURABLE)
    relaxed = pg.start_server(folder / "async", pg.DURABLE + " -c synchronous_commit=off")
    try:
        yield {
            "postgresql, durable": durable.create_database(),
            "postgresql, sync_commit=off": relaxed.create_database(),
        }
    finally:
        durable.stop()
        relaxed.stop()


def contenders(folder: Path, urls: dict[str, str]) -> dict[str, Callable[[], StoreProtocol]]:
    made: dict[str, Callable[[], StoreProtocol]] = {
        "sqlite, FULL": lambda: Store.open(folder / "full" / "state.db", synchronous="FULL"),
        "sqlite, NORMAL": lambda: Store.open(folder / "normal" / "state.db", synchronous="NORMAL"),
    }
    for name, url in urls.items():
        made[name] = opener(url)
    return made


def opener(url: str) -> Callable[[], StoreProtocol]:
    return lambda: open_store(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default=None, help="an empty database of your own server")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(dir=args.dir, prefix="planrun-pg-bench-") as tmp,
        servers(args.url, Path(tmp)) as urls,
    ):
        stores = {name: make() for name, make in contenders(Path(tmp), urls).items()}
        times: dict[tuple[str, bool], list[float]] = {}
        try:
            for r in range(args.rounds):
                for batched in (False, True):
                    for name, store in stores.items():
                        run_id = f"r{r}-{int(batched)}"
                        per = attempts(store, run_id, args.attempts, batched=batched)
                        times.setdefault((name, batched), []).append(per)
        finally:
            for store in stores.values():
                store.close()
    report(times, args.attempts, args.rounds)


def report(times: dict[tuple[str, bool], list[float]], n: int, rounds: int) -> None:
    print(f"{n} attempts x {rounds} rounds; ms per attempt (median), ratio to sqlite FULL")
    for batched in (False, True):
        how = "one batch of 3 writes" if batched else "3 transactions"
        base = statistics.median(times[("sqlite, FULL", batched)])
        for (name, b), values in times.items():
            if b == batched:
                median = statistics.median(values)
                runs = ", ".join(f"{v * 1000:.2f}" for v in values)
                print(
                    f"  {how:<22} {name:<28} {median * 1000:7.2f} ms  x{median / base:5.2f}"
                    f"   ({runs})"
                )


if __name__ == "__main__":
    main()

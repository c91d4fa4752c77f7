"""``planrun logs PLAN KEY [--attempt N] [--run ID] [--follow]``: print an attempt's log.

Which attempt: by default the latest attempt of the latest run of PLAN that ran KEY.
``--attempt N`` picks attempt N (numbers count across runs until the task is done or
forced, so the newest run that has an attempt N of KEY wins); ``--run ID`` looks in that
run only. The log is printed as it was written (secrets were redacted when it was written).

``--follow`` keeps printing new output until that attempt finishes: it polls the store
(read-only) for the attempt's end and the file for growth, and exits once the attempt has
ended and the file is drained. If KEY has not started yet in a live run, it waits for its
first attempt. If the apply running it dies, it says so and exits 1. Ctrl-C exits 130.

Exit codes: 0 printed (whatever the attempt's outcome; the outcome goes to stderr when
following); 1 nothing to print (KEY never ran, or its apply died while following); 2 usage
(an unknown KEY gets a "did you mean"). Never takes the state lock.
"""

from __future__ import annotations

import argparse
import codecs
import sys
import time
from pathlib import Path
from typing import TextIO

from planrun.commands.state import (
    Located,
    locate,
    open_readonly,
    planned_tasks,
    run_liveness,
    select_run,
)
from planrun.errors import UsageError
from planrun.store.base import AttemptRow, RunRow, StoreProtocol

POLL_S = 0.1  # how often --follow looks for new output and the attempt's end
_CHUNK = 1 << 16


class NothingYet(Exception):
    """KEY is a task of the plan but has no attempt recorded (yet)."""


def run_logs(args: argparse.Namespace, out: TextIO) -> int:
    """Print (and with --follow, keep printing) one attempt's log."""
    located = locate(args.plan, args.state_dir)
    store = open_readonly(located)
    try:
        try:
            run, attempt = find_attempt(store, located, args.key, args.attempt, args.run)
        except NothingYet as exc:
            if not args.follow:
                print(f"planrun: {exc}", file=sys.stderr)
                return 1
            found = _wait_for_first(store, located, args.key, str(exc))
            if found is None:
                return 1
            run, attempt = found
        if not args.follow:
            _copy(Path(attempt.log_path), 0, _decoder(), out, final=True)
            return 0
        return follow(store, located, run, attempt, out)
    finally:
        store.close()


def find_attempt(
    store: StoreProtocol,
    located: Located,
    key: str,
    number: int | None,
    run_id: str | None,
) -> tuple[RunRow, AttemptRow]:
    """The attempt asked for. UsageError for an unknown KEY (with a suggestion) or run;
    NothingYet when KEY is known but has no such attempt."""
    runs = [select_run(store, located, run_id)] if run_id else _newest_first(store, located)
    for run in runs:
        attempts = store.attempts(run.id, key)
        chosen = [a for a in attempts if number is None or a.n == number]
        if chosen:
            return run, chosen[-1]
    known = _known_keys(store, located, runs[:1])
    if key not in known:
        from planrun.plan.diagnose import suggest

        raise UsageError(f"no task {key!r} in this plan's state{suggest(key, sorted(known))}")
    which = f"attempt {number} of {key}" if number is not None else f"an attempt of {key}"
    where = f" in run {run_id}" if run_id else ""
    raise NothingYet(f"no {which} recorded{where} yet")


def _newest_first(store: StoreProtocol, located: Located) -> list[RunRow]:
    if located.plan_name is None:
        raise UsageError("name the plan: planrun logs PLAN KEY")
    runs = list(reversed(store.runs(located.plan_name)))
    if not runs:
        raise UsageError(f"{located.db_path} holds no run of plan {located.plan_name!r} yet")
    return runs


def _known_keys(store: StoreProtocol, located: Located, runs: list[RunRow]) -> set[str]:
    """Task keys the state knows of: ever recorded, or planned in the latest run."""
    known = set(store.task_states(located.plan_name or "")) if located.plan_name else set()
    for run in runs:
        known |= {t.key for t in store.tasks(run.id)}
        known |= {str(t.get("key")) for t in planned_tasks(store.events(run.id))}
    return known


def _wait_for_first(
    store: StoreProtocol, located: Located, key: str, why: str
) -> tuple[RunRow, AttemptRow] | None:
    """--follow on a task that has not started: wait while its run is live."""
    from planrun.store.lock import read_holder

    run = select_run(store, located)
    print(f"planrun: {why}; waiting for {key} to start in run {run.id}", file=sys.stderr)
    while True:
        attempts = store.attempts(run.id, key)
        if attempts:
            return run, attempts[0]
        current = store.run(run.id) or run
        if run_liveness(current, read_holder(located.state_dir)) != "live":
            print(f"planrun: run {run.id} is over and {key} never started", file=sys.stderr)
            return None
        time.sleep(POLL_S)  # polling the store for the attempt to appear


def follow(
    store: StoreProtocol, located: Located, run: RunRow, attempt: AttemptRow, out: TextIO
) -> int:
    """Print the log as it grows until the attempt ends (0) or its apply dies (1)."""
    from planrun.store.lock import read_holder

    path = Path(attempt.log_path)
    decoder = _decoder()
    offset = 0
    while True:
        current = _refresh(store, attempt)
        offset = _copy(path, offset, decoder, out, final=False)
        if current.ended_at is not None:
            _copy(path, offset, decoder, out, final=True)
            print(f"planrun: {_ending(current)}", file=sys.stderr)
            return 0
        latest = store.run(run.id) or run
        if run_liveness(latest, read_holder(located.state_dir)) != "live":
            _copy(path, offset, decoder, out, final=True)
            print(
                f"planrun: the apply running {attempt.key} (pid {latest.pid}) is gone;"
                " the attempt never finished (the next apply marks it interrupted)",
                file=sys.stderr,
            )
            return 1
        time.sleep(POLL_S)  # polling: the store and the file have no change notification


def _refresh(store: StoreProtocol, attempt: AttemptRow) -> AttemptRow:
    for row in store.attempts(attempt.run_id, attempt.key):
        if row.n == attempt.n:
            return row
    return attempt


def _ending(attempt: AttemptRow) -> str:
    what = f"attempt {attempt.n} of {attempt.key} ended: {attempt.outcome}"
    if attempt.exit_code is not None:
        what += f" (exit code {attempt.exit_code})"
    elif attempt.signal is not None:
        what += f" (signal {attempt.signal})"
    return what


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _copy(
    path: Path, offset: int, decoder: codecs.IncrementalDecoder, out: TextIO, *, final: bool
) -> int:
    """Write the file's bytes from ``offset`` to ``out``; returns the new offset.

    A missing file is empty (the attempt may not have written it yet). ``final`` flushes a
    trailing partial UTF-8 sequence.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(_CHUNK):
                offset += len(chunk)
                out.write(decoder.decode(chunk))
    except FileNotFoundError:
        pass
    if final:
        out.write(decoder.decode(b"", final=True))
    out.flush()
    return offset

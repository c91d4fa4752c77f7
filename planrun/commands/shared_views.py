"""``planrun status|logs|report|answer PLAN --store URL``: a run shared by several machines, read
from any machine (docs/scale-out.md).

The shared store knows each task's status, the machine that holds or held it, its claims,
the time left on its lease, its reason, its landed commit and the recorded tail of its
last attempt (the full log stays on the machine that ran it: ``logs`` names it). Nothing
here writes. The URL's password is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from planrun.errors import StoreError, UsageError

#: where --store is read from when not given
STORE_ENV = "PLANRUN_STORE"


def store_url(args: argparse.Namespace) -> str | None:
    """``--store``, else ``$PLANRUN_STORE``: a postgresql:// URL, or None (not shared)."""
    url = getattr(args, "store", None) or os.environ.get(STORE_ENV) or None
    if url is None:
        return None
    from planrun.state.open import is_url, redacted

    if not is_url(url):
        raise UsageError(
            f"--store {redacted(url)}: not a postgresql://USER@HOST:PORT/DB URL (a state"
            " folder is --state-dir)"
        )
    return url


def _driver(url: str) -> tuple[Any, Any]:
    """The shared store's statements and connect(), once the store is known to be
    planrun's and psycopg installed (else StoreError: exit 2 with how to install it)."""
    from planrun.state.open import open_store

    open_store(url, readonly=True).close()
    from planrun.state.postgres import scale
    from planrun.state.postgres.opening import connect

    return scale, connect


def _read(url: str, args: argparse.Namespace) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The run (``--run`` or the plan's latest), its tasks and its machines."""
    from planrun.plan.load import load_plan
    from planrun.state.open import redacted

    if args.plan is None:
        raise UsageError("--store: name the PLAN whose shared run to read")
    plan = load_plan(Path(args.plan))
    where = redacted(url)
    _, connect = _driver(url)
    from planrun.state.postgres import scale_read

    con = connect(url, where)
    try:
        run = scale_read.find_run(con, plan.name, getattr(args, "run", None))
        if run is None:
            raise StoreError(where, f"no shared run of plan {plan.name!r}", "run apply --store")
        return run, scale_read.task_rows(con, run["id"]), scale_read.machine_rows(con, run["id"])
    finally:
        con.close()


def run_status(args: argparse.Namespace, out: TextIO) -> int:
    run, tasks, machines = _read(str(store_url(args)), args)
    if args.json:
        doc = {"run": run, "tasks": tasks, "machines": machines}
        print(json.dumps(doc, default=str, indent=2), file=out)
        return 0
    state = "open" if run["closed_at"] is None else f"closed {run['closed_at']:%Y-%m-%d %H:%M:%S}"
    print(f"shared run {run['id']} of plan {run['plan_name']} ({state})", file=out)
    tokens, cost = _spent(tasks)
    if tokens or cost:
        print(f"  spent: {tokens} tokens, ${cost:.4f} (every machine)", file=out)
    for m in machines:
        alive = "left" if m["ended"] else f"heartbeat {float(m['heartbeat_age_s']):.1f}s ago"
        print(f"  machine {m['id']} ({alive}; state {m['state_dir']})", file=out)
    print(f"{'TASK':<20} {'STATUS':<10} {'MACHINE':<28} {'CLAIMS':>6}  REASON", file=out)
    for t in tasks:
        machine = t["owner"] or "-"
        if t["status"] == "running" and t["lease_left_s"] is not None:
            machine += f" (lease {float(t['lease_left_s']):.0f}s)"
        print(
            f"{t['key']:<20} {t['status']:<10} {machine:<28} {t['claims']:>6}  {t['reason']}",
            file=out,
        )
    return 0


def run_logs(args: argparse.Namespace, out: TextIO) -> int:
    """The recorded tail of the task's last attempt, and where its full log is."""
    _, tasks, _ = _read(str(store_url(args)), args)
    found = [t for t in tasks if t["key"] == args.key]
    if not found or found[0]["log_path"] is None:
        print(f"planrun: {args.key}: no attempt recorded in the shared run yet", file=sys.stderr)
        return 1
    task = found[0]
    for line in json.loads(task["tail_json"]):
        print(line, file=out)
    print(f"planrun: the full log is on {task['owner']}: {task['log_path']}", file=sys.stderr)
    return 0


def run_report(args: argparse.Namespace, out: TextIO) -> int:
    """The shared run as one JSON document (stdout, or --json-out FILE)."""
    run, tasks, machines = _read(str(store_url(args)), args)
    doc = {
        "run_id": run["id"],
        "plan": run["plan_name"],
        "status": _status(tasks),
        "tasks": [
            {k: t[k] for k in ("key", "status", "reason", "owner", "claims", "landed_commit")}
            for t in tasks
        ],
        "machines": [{k: m[k] for k in ("id", "host", "pid", "ended")} for m in machines],
        "usage": dict(zip(("tokens", "cost_usd"), _spent(tasks), strict=True)),
    }
    text = json.dumps(doc, default=str, indent=2)
    target = getattr(args, "json_out", None)
    if target in (None, "-"):
        print(text, file=out)
    else:
        Path(target).write_text(text + "\n", encoding="utf-8")
    return 0


def _spent(tasks: list[Any]) -> tuple[int, float]:
    """What the run's tasks spent on every machine (tokens, cost in USD)."""
    tokens = sum(int(t.get("tokens") or 0) for t in tasks)
    return tokens, sum(float(t.get("cost_usd") or 0.0) for t in tasks)


def _status(tasks: list[Any]) -> str:
    statuses = {t["status"] for t in tasks}
    if statuses & {"open", "running"}:
        return "running"
    return "succeeded" if statuses <= {"done", "skipped"} else "failed"


def run_answer(args: argparse.Namespace, out: TextIO) -> int:
    """Queue the answer for whichever machine holds the task; it delivers it."""
    from planrun.plan.load import load_plan
    from planrun.state.open import redacted

    url = str(store_url(args))
    plan = load_plan(Path(args.plan))
    text = sys.stdin.read() if args.text == "-" else args.text
    scale, connect = _driver(url)
    from planrun.state.postgres import scale_read

    con = connect(url, redacted(url))
    try:
        run = scale_read.find_run(con, plan.name, None)
        owner = None if run is None else scale.post_answer(con, run["id"], args.key, text)
    finally:
        con.close()
    if run is None or owner is None:
        raise UsageError(f"{args.key} is not running on any machine of the shared run")
    print(f"answer queued for {args.key}; machine {owner} delivers it", file=out)
    return 0

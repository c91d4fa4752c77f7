"""Reading a plan's state for ``status``, ``logs`` and ``report``: catch up a dead run's
journal, open the store read-only, pick a run, and say how its tasks look now."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from planrun.core.outcomes import Status
from planrun.errors import StoreError, UsageError
from planrun.state.folder import STATE_FILE
from planrun.state.locate import Located
from planrun.state.open import open_store
from planrun.state.store import RUN_PLAN_EVENT, AttemptBrief, EventRow, RunRow, StoreReader

if TYPE_CHECKING:
    pass

RunStatus = Literal["succeeded", "failed", "interrupted", "running"]


def catch_up(state_dir: Path) -> list[str]:
    """Replay what a killed apply journaled but did not get into the store yet (see
    :mod:`planrun.state.journal`), so that ``status``, ``logs`` and ``report`` show its last
    moments too; returns what was done.

    Only when no apply runs: the state lock is taken without waiting, and only when a
    journal file is there (after a crash). A live run's writer applies its own file within
    :data:`planrun.state.journal.WINDOW` seconds. Quietly does nothing when the lock or a writable
    store cannot be had (another apply, a folder this user may only read).
    """
    from planrun.errors import StateLockedError
    from planrun.state.journalfile import JOURNAL_DIR

    journal_dir = state_dir / JOURNAL_DIR
    db_path = state_dir / STATE_FILE
    try:
        if not db_path.exists() or not any(journal_dir.glob("*.jsonl")):
            return []  # the common case: nothing to replay, nothing more to import
        from planrun.state.journal import replay
        from planrun.state.lock import REPLAYING, StateLock

        lock = StateLock.acquire(state_dir, argv=[*sys.argv[:2], REPLAYING])
    except (OSError, StateLockedError, StoreError):
        return []
    with lock:
        try:
            with contextlib.closing(open_store(state_dir)) as store:
                return replay(store, journal_dir)
        except (OSError, StoreError):
            return []


def open_readonly(located: Located) -> StoreReader:
    """The state store opened read-only (works while an apply writes), once a killed run's
    journal was caught up (:func:`catch_up`). StoreError if absent."""
    catch_up(located.db_path.parent)
    try:
        os.stat(located.db_path)
    except PermissionError as error:
        raise StoreError(
            str(located.db_path),
            f"cannot read it ({error.strerror})",
            "ask its owner for read access to the state folder and the folders above it",
        ) from error
    except OSError:
        pass
    if not located.db_path.exists():
        where = f"plan {located.plan_name!r} " if located.plan_name else ""
        raise StoreError(
            str(located.db_path),
            f"no state store here yet ({where}never applied here)",
            "run `planrun apply PLAN` first, or pass PLAN or --state-dir to point at it",
        )
    return open_store(located.state_dir, readonly=True)


def select_run(store: StoreReader, located: Located, run_id: str | None = None) -> RunRow:
    """The run asked for (``run_id``), else the plan's (or the store's) last run.

    UsageError when there is none, or when ``run_id`` belongs to another plan.
    """
    if run_id is not None:
        run = store.run(run_id)
        if run is None or (located.plan_name and run.plan_name != located.plan_name):
            known = [r.id for r in store.runs(located.plan_name)] if located.plan_name else []
            from planrun.errors import suggest

            raise UsageError(f"--run {run_id}: no such run of this plan{suggest(run_id, known)}")
        return run
    run = store.last_run(located.plan_name)
    if run is None:
        what = f"plan {located.plan_name!r}" if located.plan_name else "any plan"
        raise UsageError(f"{located.db_path} holds no run of {what} yet")
    return run


def in_run(
    planned: list[dict[str, Any]], recorded: Collection[str], liveness: str
) -> list[dict[str, Any]]:
    """The planned tasks that belong to the run as it is shown.

    An apply that ended gave every task it covered a final row, so in an ended run a
    planned task without a row was not selected (``--only``) and is left out. (Until apply
    passes ``only`` to :meth:`State.begin`, a live or dead ``--only`` run lists them all.)
    """
    if liveness != "ended":
        return planned
    return [t for t in planned if t.get("key") in recorded]


def planned_tasks(events: list[EventRow]) -> list[dict[str, Any]]:
    """The tasks of a run as its ``run_plan`` event lists them ([] for older runs)."""
    for event in events:
        if event.kind == RUN_PLAN_EVENT:
            tasks = event.data.get("tasks")
            return [t for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []
    return []


# ---------------------------------------------------------------- how a run looks now


def run_liveness(run: RunRow, holder: Mapping[str, Any] | None) -> str:
    """``ended``, ``live`` (its apply holds the state lock now) or ``dead`` (it died).

    ``holder`` is :func:`planrun.state.lock.read_holder`'s answer for the run's folder.
    """
    if run.ended_at is not None:
        return "ended"
    if holder is not None and holder.get("pid") == run.pid and holder.get("host") == run.host:
        return "live"
    return "dead"


def run_status(run: RunRow, liveness: str) -> RunStatus:
    """The run's status for humans and reports: running, interrupted, succeeded, failed."""
    if liveness == "live":
        return "running"
    if liveness == "dead":
        return "interrupted"
    ended: dict[str, RunStatus] = {"succeeded": "succeeded", "interrupted": "interrupted"}
    return ended.get(run.status, "failed")


def task_status(
    recorded: str | None,
    reason: str,
    *,
    liveness: str,
    attempt_open: bool,
    last_outcome: str | None,
    why: str = "",
    session_alive: bool = False,
) -> tuple[str, str]:
    """A task's (status, reason) as ``status`` and ``report`` show it.

    ``recorded`` is the run's task row status (None: no row yet), ``why`` apply's decision
    for a task without a row. A live run's task with no open attempt is landing when its
    last attempt succeeded, else backing off (``retrying``). In a run that died, what was
    running or waiting is ``cancelled``, as apply itself reports an interrupted run, but for
    an open attempt whose tmux session still runs (``session_alive``): that one is running,
    and the next apply re-attaches to it.
    """
    active = recorded is None or recorded == Status.RUNNING.value
    if active and liveness == "dead" and attempt_open and session_alive:
        return Status.RUNNING.value, "running (planrun exited; re-attached by the next apply)"
    if active and liveness != "live":
        if recorded is None:
            return Status.CANCELLED.value, "the run was interrupted"
        return Status.CANCELLED.value, "interrupted: planrun exited during the attempt"
    if recorded is None:
        return Status.PENDING.value, why
    if recorded == Status.RUNNING.value and not attempt_open:
        if last_outcome in (None, "succeeded"):
            return Status.RUNNING.value, reason or "landing"
        return Status.RETRYING.value, reason or f"last attempt {last_outcome}"
    return recorded, reason


#: A task's attempts as ``status`` and the board show them: its first start, its last
#: attempt's end, whether that attempt is still open, its outcome and its number.
Span = tuple[str, str | None, bool, str | None, int]

#: The usage fields an attempt records, and a task's and run's sums hold.
USAGE_FIELDS = ("input_tokens", "output_tokens", "cost_usd")


def attempt_spans(attempts: Iterable[AttemptBrief]) -> dict[str, Span]:
    """Each task's :data:`Span`, from its attempts in the order they started."""
    spans: dict[str, Span] = {}
    for a in attempts:
        first = spans[a.key][0] if a.key in spans else a.started_at
        spans[a.key] = (first, a.ended_at, a.ended_at is None, a.outcome, a.n)
    return spans


def usage_by_task(attempts: Iterable[AttemptBrief]) -> dict[str, dict[str, Any]]:
    """Each task's usage: the sum of its attempts' usage (tasks with none are left out)."""
    per_task: dict[str, list[dict[str, Any] | None]] = {}
    for a in attempts:
        per_task.setdefault(a.key, []).append(dict(a.usage) if a.usage else None)
    totals = {key: sum_usage(usages) for key, usages in per_task.items()}
    return {key: total for key, total in totals.items() if total is not None}


def sum_usage(usages: Iterable[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """Tokens added up, cost only if some usage is priced (as the report's total_usage)."""
    known = [u for u in usages if u]
    if not known:
        return None
    total: dict[str, Any] = {
        name: sum(u.get(name) or 0 for u in known) for name in USAGE_FIELDS[:2]
    }
    costs = [u["cost_usd"] for u in known if u.get("cost_usd") is not None]
    total["cost_usd"] = round(sum(costs), 6) if costs else None
    return total


def elapsed_s(started_at: str | None, ended_at: str | None, now: float) -> float | None:
    """Seconds from ``started_at`` to ``ended_at`` (or ``now``); None when not started."""
    if not started_at:
        return None
    end = parse_time(ended_at) if ended_at else now
    return round(max(end - parse_time(started_at), 0.0), 3)


def parse_time(stamp: str) -> float:
    """A store time (``2026-11-21T06:00:00.123456Z``) as a POSIX timestamp."""
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(stamp)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()

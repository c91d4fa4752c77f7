"""The board of a run shared by several machines, read from PostgreSQL (docs/scale-out.md).

A shared run's store holds, per task, its status, the machine that holds or held it, its
claims, its reason, its landed commit and the recorded tail of its last attempt (its full
log stays on the machine that ran it); per machine, its host and heartbeat
(:mod:`planrun.state.postgres.scale`). The board's cards, graph and task pages are made
from that and from the plan itself (titles, providers, what waits for what), with the
same :class:`~planrun.board.snapshot.Board` and :class:`~planrun.board.snapshot.TaskPage`
as a single machine's run, so the pages are the same. A task's log is followed live when
the board runs on the machine that holds the log; elsewhere the page shows the recorded
tail and says where the full log is. The URL's password is never shown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from planrun import __version__
from planrun.board.snapshot import Board, Card, TaskPage, waiting_for
from planrun.board.source import FRESH_S
from planrun.core.outcomes import Outcome, Status
from planrun.errors import PlanrunError
from planrun.plan.resolved import CompiledPlan
from planrun.state.store import AttemptRow, RunRow, TaskRow, iso

T = TypeVar("T")
#: a shared task's status → the board's (an open task is queued: no machine holds it)
_STATUS = {"open": Status.PENDING.value}
#: a machine whose heartbeat is older than this (seconds) is taken for gone
STALE_S = 120.0


@dataclass
class SharedSource:
    """The run shown, read from the shared store at ``url`` (same interface as
    :class:`planrun.board.source.Source`)."""

    url: str
    plan: CompiledPlan
    run_id: str | None
    plan_words: tuple[str, ...]
    problem: str = ""
    _board: Board | None = None
    _rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    _read_at: float = -1.0

    def __post_init__(self) -> None:
        self._lock = trio.Lock()
        self._limiter = trio.CapacityLimiter(1)

    async def board(self) -> Board | None:
        async with self._lock:
            if time.monotonic() - self._read_at > FRESH_S:
                try:
                    self._board = await self._in_thread(self._read)
                except PlanrunError as error:
                    self.problem = f"could not read the shared store this time: {error}"
                self._read_at = time.monotonic()
            return self._board

    async def task(self, key: str) -> TaskPage | None:
        board = await self.board()
        card = None if board is None else next((c for c in board.cards if c.key == key), None)
        if board is None or card is None:
            return None
        return _page(board, card, self._rows.get(key), self.plan_words)

    def close(self) -> None:
        return None  # a connection is opened per read

    async def _in_thread(self, read: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(read, limiter=self._limiter)

    def _read(self) -> Board | None:
        from planrun.state.open import open_store, redacted
        from planrun.state.postgres import scale_read as scale
        from planrun.state.postgres.opening import connect

        where = redacted(self.url)
        open_store(self.url, readonly=True).close()  # planrun's store, psycopg installed
        con = connect(self.url, where)
        try:
            run = scale.find_run(con, self.plan.name, self.run_id)
            if run is None:
                self.problem = f"no shared run of plan {self.plan.name} in {where} yet"
                return None
            tasks = scale.task_rows(con, run["id"])
            machines = scale.machine_rows(con, run["id"])
        finally:
            con.close()
        self.problem = ""
        self._rows = {str(t["key"]): t for t in tasks}
        return _board(self.plan, run, self._rows, machines, self.plan_words)


def _board(
    plan: CompiledPlan,
    run: dict[str, Any],
    rows: dict[str, dict[str, Any]],
    machines: list[dict[str, Any]],
    words: tuple[str, ...],
) -> Board:
    now = time.time()
    live = any(not m["ended"] and float(m["heartbeat_age_s"] or 0) < STALE_S for m in machines)
    ended = run["closed_at"] is not None or not any(
        r["status"] in ("open", "running") for r in rows.values()
    )
    liveness = "ended" if ended else "live" if live else "dead"
    cards = [_card(plan, key, rows.get(key), now) for key in plan.work if key in rows or not rows]
    waiting = [w for c in cards if (w := waiting_for(c.key, c.status, c.reason, words))]
    statuses = {c.status for c in cards}
    status = (
        "running"
        if liveness == "live"
        else ("succeeded" if statuses <= {"done", "skipped"} else "failed")
    )
    row = RunRow(
        id=str(run["id"]),
        plan_name=str(run["plan_name"]),
        plan_path=str(plan.path),
        plan_sha256=str(run["plan_sha256"]),
        planrun_version=__version__,
        started_at=iso(run["opened_at"].timestamp()),
        status=status,
        ended_at=iso(run["closed_at"].timestamp()) if run["closed_at"] else None,
    )
    return Board(row, status, liveness, cards, planned(plan), waiting, now)


def _card(plan: CompiledPlan, key: str, row: dict[str, Any] | None, now: float) -> Card:
    task = plan.tasks[key]
    status = "pending" if row is None else _STATUS.get(str(row["status"]), str(row["status"]))
    final = Status(status).is_final
    updated = None if row is None else row["updated_at"].timestamp()
    return Card(
        key=key,
        title=task.title,
        status=status,
        reason="" if row is None else str(row["reason"]),
        attempt=0 if row is None else int(row["claims"]),
        started_at=None,
        elapsed_s=None if updated is None or final else max(0.0, now - updated),
        final=final,
        provider=task.provider,
        host="" if row is None else str(row["host"] or ""),
        tokens=None,
        cost_usd=None,
    )


def _page(board: Board, card: Card, row: dict[str, Any] | None, words: tuple[str, ...]) -> TaskPage:
    """A task's page: its row's facts and its last attempt as the shared store has it."""
    waiting = waiting_for(card.key, card.status, card.reason, words)
    if row is None:
        return TaskPage(card, None, [], waiting, board.run)
    updated = iso(row["updated_at"].timestamp())
    facts = TaskRow(
        run_id=board.run.id,
        key=card.key,
        status=Status(card.status),
        reason=card.reason,
        fingerprint=None,
        attempts=card.attempt,
        branch=None,
        base_commit=None,
        landed_commit=row["landed_commit"],
        diffstat=None,
        data={},
        updated_at=updated,
    )
    log = str(row["log_path"] or "")
    if not log:
        return TaskPage(card, facts, [], waiting, board.run)
    here = Path(log).is_file()  # the board runs on the machine that holds the log
    attempt = AttemptRow(
        run_id=board.run.id,
        key=card.key,
        n=card.attempt,
        started_at=updated,
        fingerprint="",
        log_path=log if here else "",
        ended_at=updated if card.final else None,
        outcome=_outcome(card.status),
        exit_code=None,
        signal=None,
        reason=card.reason,
        pid=None,
        pgid=None,
        proc_start_time=None,
        tail=tuple(json.loads(row["tail_json"] or "[]")),
        usage=None,
    )
    remote = None if here else f"{card.host or row['owner']}: {log}"
    return TaskPage(card, facts, [attempt], waiting, board.run, remote=remote)


def _outcome(status: str) -> Outcome | None:
    return {"done": Outcome.SUCCEEDED, "failed": Outcome.FAILED}.get(status)


def planned(plan: CompiledPlan) -> list[dict[str, Any]]:
    """The plan's tasks as the graph reads them (the ``run_plan`` event's shape)."""
    graph = plan.graph
    tasks = []
    for key in graph.topological():
        task = plan.tasks[key]
        entry: dict[str, Any] = {"key": key, "kind": task.kind, "title": task.title}
        optional = {
            "waits_for": list(graph.waits_for(key)),
            "children": list(task.children),
            "parent": task.parent,
            "provider": task.provider if task.kind == "work" else None,
        }
        entry.update({name: value for name, value in optional.items() if value})
        tasks.append(entry)
    return tasks


__all__ = ["SharedSource", "planned"]

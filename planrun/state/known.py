"""What the store knows of each task across runs: the :class:`Known` records that the one
decision (:mod:`planrun.core.decision`) reads."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from planrun.core.outcomes import Outcome, Status
from planrun.state.store import PastAttempt, PastTask, RunRow, StoreReader

if TYPE_CHECKING:
    from planrun.core.decision import Known


def known_tasks(store: StoreReader, plan_name: str) -> dict[str, Known]:
    """What the store knows of each task of ``plan_name`` that ever started or finished.

    ``fields`` (per-field hashes, to name what changed) come from the task's row in the
    run that did it last: the done run for a done task, else the plan's last run.
    """
    from planrun.core.decision import INTERRUPT_CREDIT, Known

    runs = store.runs(plan_name)
    order = {run.id: n for n, run in enumerate(runs)}
    last = store.last_run(plan_name)
    rows = _RowsByRun(store)
    states = store.task_states(plan_name)
    unfinished = {key for key, row in states.items() if row.status is Status.RUNNING}
    interrupted = _trailing_interruptions(store, runs, unfinished)
    known: dict[str, Known] = {}
    for key, row in states.items():
        done = row.status is Status.DONE and row.done_run_id is not None
        source = row.done_run_id if done else (last.id if last else None)
        fields = rows.fields(source, key, row.fingerprint) if source else None
        streak, last_attempt = interrupted.get((key, row.fingerprint), (0, None))
        known[key] = Known(
            fingerprint=row.fingerprint,
            status=row.status,
            attempts=row.attempts_total,
            # attempts cut short by planrun's own death are not charged (a few in a row),
            # so resuming re-runs the task; one that kills planrun every time runs out
            credit=min(streak, INTERRUPT_CREDIT),
            done_run_id=row.done_run_id,
            fields=fields,
            done_order=order.get(row.done_run_id) if done and row.done_run_id else None,
            landed_commit=rows.landed(row.done_run_id, key) if done and row.done_run_id else None,
            last_attempt=last_attempt,
        )
    return known


def _trailing_interruptions(
    store: StoreReader, runs: list[RunRow], unfinished: Collection[str], depth: int = 5
) -> dict[tuple[str, str], tuple[int, str]]:
    """(key, fingerprint) → how many of its latest attempts in a row planrun's death ended,
    and the latest attempt's name (``run_id#n``, as landing trailers name it).

    An attempt ended by planrun's death is ``interrupted``; so is, in effect, the latest
    attempt of an ``unfinished`` task (still RUNNING in task_state: nothing final was
    recorded after it) that succeeded: planrun died after the work but before landing it
    or recording the task done. Looks at the last ``depth`` runs; a task with more
    interruptions than that in a row is charged for them all anyway.
    """
    recent = runs[-depth:]
    order = {run.id: n for n, run in enumerate(recent)}
    latest_first: dict[str, list[PastAttempt]] = {}
    attempts = store.past_attempts([run.id for run in recent])
    for attempt in sorted(attempts, key=lambda a: (order[a.run_id], a.n), reverse=True):
        latest_first.setdefault(attempt.key, []).append(attempt)
    counts: dict[tuple[str, str], tuple[int, str]] = {}
    for key, attempts in latest_first.items():
        fingerprint = attempts[0].fingerprint
        streak = 0
        for n, attempt in enumerate(attempts):
            # an open attempt is one recovery has not closed yet (a read-only look, such as
            # ``planrun plan``, sees it before apply recovers it as interrupted)
            cut_short = attempt.outcome in (Outcome.INTERRUPTED, None) or (
                n == 0 and key in unfinished and attempt.outcome is Outcome.SUCCEEDED
            )
            if attempt.fingerprint != fingerprint or not cut_short:
                break
            streak += 1
        counts[(key, fingerprint)] = (streak, attempt_name(attempts[0].run_id, attempts[0].n))
    return counts


def attempt_name(run_id: str, n: int) -> str:
    """How a landing trailer names an attempt: ``<run id>#<n>``."""
    return f"{run_id}#{n}"


class _RowsByRun:
    """Task rows of a run, read once per run (lean: :meth:`StoreReader.past_tasks`)."""

    def __init__(self, store: StoreReader) -> None:
        self.store = store
        self._runs: dict[str, dict[str, PastTask]] = {}

    def _row(self, run_id: str, key: str) -> PastTask | None:
        if run_id not in self._runs:
            self._runs[run_id] = self.store.past_tasks(run_id)
        return self._runs[run_id].get(key)

    def landed(self, run_id: str, key: str) -> str | None:
        """The commit ``key`` landed in ``run_id``, if any."""
        row = self._row(run_id, key)
        return row.landed_commit if row is not None else None

    def fields(self, run_id: str, key: str, fingerprint: str) -> dict[str, str] | None:
        """The per-field hashes recorded with ``key`` in ``run_id`` for that fingerprint."""
        row = self._row(run_id, key)
        if row is None or row.fingerprint != fingerprint:
            return None
        return row.fields

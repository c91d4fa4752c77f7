"""The scheduler's journal written to the state store: what makes a run resumable (SPEC §5).

Each call becomes one durable store transaction (one event), and the store sees them in
the order the scheduler made them:

- ``attempt_started`` is written *before* the attempt's process starts: the call returns
  only once it (and everything journaled before it) is durable. A crash at any instant
  therefore leaves either no trace of the attempt or an open attempt that the next apply
  closes as interrupted, and the attempt counts against the task's budget either way;
- ``attempt_process`` records the process group (pid, pgid, start time), so that the next
  apply can find and kill what a dead planrun left behind;
- ``task_finished`` with DONE calls ``task_done`` (with the fingerprint and per-field
  hashes) after the work has landed; a crash before it is durable re-runs the task. Tasks
  that were already up to date are recorded as such in the run (a ``task_status`` row)
  without touching their durable state.

Write-behind. Every durable commit costs an fsync (about 0.5 ms here, far more on a busy
disk), and the scheduler calls the journal on its event loop. So only ``attempt_started``
waits for the disk; the other writes go, in order, to one writer thread that commits them
while the loop carries on. Because the queue is first-in first-out, waiting for an
``attempt_started`` also waits for every write before it: when any attempt's process
starts, all that happened before it is durable, in particular the ``task_done`` of each of
its needs. What a crash can lose is the tail of writes since the last attempt start
(an attempt's end, a task's success): the next apply then treats those attempts as
interrupted and runs those tasks again, the at-least-once that convergence promises.
``write_behind=False`` makes every call wait (tests, tools).

Group commit. If the store offers ``batch()`` (a context manager making the writes inside
it one transaction), the writer commits everything queued at once, in one fsync. The SQLite
store does not offer it yet; see bench/state_bench.py for what it would save.

A write that fails (disk full, ...) stops the writer: later writes are dropped and the next
``attempt_started`` (or :meth:`StoreJournal.flush`) raises the error, so nothing new starts
on a journal that cannot record it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from planrun.outcomes import Outcome, Status
from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo
from planrun.store.base import StoreProtocol, utc_now

_Write = Callable[[], object]


class StoreJournal:
    """:class:`planrun.scheduler.Journal` over a :class:`~planrun.store.base.StoreProtocol`.

    ``fingerprints`` maps each work task to its fingerprint and per-field hashes;
    ``up_to_date`` names the tasks ``apply`` decided not to run (their DONE is not a new
    success). Call :meth:`close` (it flushes) before closing the store.
    """

    durable = True

    def __init__(
        self,
        store: StoreProtocol,
        run_id: str,
        plan_name: str,
        fingerprints: Mapping[str, tuple[str, Mapping[str, str]]],
        up_to_date: Collection[str] = (),
        *,
        write_behind: bool = True,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.plan_name = plan_name
        self.fingerprints = fingerprints
        self.up_to_date = frozenset(up_to_date)
        batch = getattr(store, "batch", None)
        self._writer = _Writer(batch if callable(batch) else None) if write_behind else None

    # ------------------------------------------------------------ the Journal protocol

    def attempt_started(self, key: str, number: int, log_path: Path) -> None:
        """Record attempt ``number`` of ``key``; returns once it is durable (with all before)."""
        fp = self._fp(key) or ""
        self._now(
            lambda: self.store.attempt_started(
                self.run_id, key, number, utc_now(), fp, str(log_path)
            )
        )

    def attempt_process(self, key: str, number: int, info: ProcessInfo) -> None:
        """Record the attempt's process group, for recovery after a crash."""
        self._later(
            lambda: self.store.attempt_process(
                self.run_id, key, number, info.pid, info.pgid, info.start_time
            )
        )

    def attempt_finished(self, key: str, attempt: AttemptReport) -> None:
        """Close the attempt with its outcome, exit status, last lines and usage."""
        ended = attempt.ended_at or utc_now()
        outcome = Outcome(attempt.outcome)
        tail = tuple(attempt.tail)
        usage = attempt.usage.model_dump() if attempt.usage else None
        number, exit_code, signal, reason = (
            attempt.number,
            attempt.exit_code,
            attempt.signal,
            attempt.reason,
        )
        self._later(
            lambda: self.store.attempt_finished(
                self.run_id,
                key,
                number,
                outcome,
                ended,
                exit_code=exit_code,
                signal=signal,
                reason=reason,
                tail=tail,
                usage=usage,
            )
        )

    def task_finished(self, key: str, report: TaskReport) -> None:
        """Record a task's status (final, or paused in review or for input); a new
        success becomes durably done."""
        status = Status(report.status)
        common: dict[str, Any] = {
            "reason": report.reason,
            "branch": report.branch,
            "base_commit": report.base_commit,
            "landed_commit": report.landed_commit,
            "diffstat": report.diffstat,
        }
        hashes = self.fingerprints[key][1] if key in self.fingerprints else None
        if status is Status.DONE and hashes is not None and key not in self.up_to_date:
            fp = self.fingerprints[key][0]
            data = {"fields": dict(hashes), "title": report.title, "kind": report.kind}
            self._later(
                lambda: self.store.task_done(
                    self.plan_name, self.run_id, key, fp, data=data, **common
                )
            )
            return
        info: dict[str, object] = {"cause": report.cause, "title": report.title}
        info["kind"] = report.kind
        if hashes is not None:
            info["fields"] = dict(hashes)
        fingerprint = self._fp(key)
        self._later(
            lambda: self.store.task_updated(
                self.run_id, key, status, fingerprint=fingerprint, data=info, **common
            )
        )

    # ------------------------------------------------------------ lifetime

    def flush(self) -> None:
        """Return once every write so far is durable; raise the first failed one's error."""
        if self._writer is not None:
            self._writer.wait_idle()

    def close(self) -> None:
        """Flush, then stop the writer thread. Calling it again does nothing."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.stop()

    # ------------------------------------------------------------ internals

    def _fp(self, key: str) -> str | None:
        return self.fingerprints[key][0] if key in self.fingerprints else None

    def _now(self, write: _Write) -> None:
        if self._writer is None:
            write()
        else:
            self._writer.submit(write, wait=True)

    def _later(self, write: _Write) -> None:
        if self._writer is None:
            write()
        else:
            self._writer.submit(write, wait=False)


class _Writer:
    """One thread that runs writes in submission order; see the module docstring."""

    def __init__(self, batch: Callable[[], contextlib.AbstractContextManager[object]] | None):
        self._queue: queue.SimpleQueue[tuple[_Write | None, threading.Event | None]] = (
            queue.SimpleQueue()
        )
        self._batch = batch
        self._error: BaseException | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._run, name="planrun-journal", daemon=True)
        self._thread.start()

    def submit(self, write: _Write, *, wait: bool) -> None:
        """Queue ``write``; with ``wait``, return once it (and all before it) committed.

        After a failure, a waiting write always raises (it was not recorded); the others
        raise the first failure once and are then dropped.
        """
        self._raise_failure(again=wait)
        done = threading.Event() if wait else None
        self._queue.put((write, done))
        if done is not None:
            done.wait()
            self._raise_failure(again=True)

    def wait_idle(self) -> None:
        """Return once everything submitted so far committed (or failed)."""
        done = threading.Event()
        self._queue.put((None, done))
        done.wait()
        self._raise_failure()

    def stop(self) -> None:
        """Commit what is queued, end the thread; raise a failure not raised before."""
        self._queue.put((None, None))
        self._thread.join()
        self._raise_failure()

    def _raise_failure(self, *, again: bool = False) -> None:
        if self._error is not None and (again or not self._raised):
            self._raised = True
            raise self._error

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            if self._batch is not None:  # take everything queued: one transaction
                with contextlib.suppress(queue.Empty):
                    while True:
                        items.append(self._queue.get_nowait())
            self._commit([write for write, _ in items if write is not None])
            for write, done in items:
                if done is not None:
                    done.set()
                elif write is None:
                    return

    def _commit(self, writes: list[_Write]) -> None:
        if not writes or self._error is not None:
            return
        try:
            with self._batch() if self._batch is not None else contextlib.nullcontext():
                for write in writes:
                    write()
        except BaseException as exc:  # handed to the scheduler's thread
            self._error = exc

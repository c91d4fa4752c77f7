"""Claims of a run shared by several machines through PostgreSQL (SPEC §5, issue 17).

Each ``planrun apply --store postgresql://…`` is an equal peer. Before it works on a ready
task it claims it (:func:`planrun.state.postgres.scale.claim`: one transaction under the
run row's lock, so provider and project caps hold run-wide). The machine that gets it
holds a lease with a fencing token; one heartbeat per machine renews all its leases every
lease/3. A renewal that misses a token, a landing whose lease check fails, or a final write
that matches no row means another machine took the task over: the attempt's scope is
cancelled (its process group is killed, its worktree kept, nothing lands). A machine that
cannot renew for a whole lease (the database or the network is gone) cancels all its
attempts itself.

A machine that does not get a task gives its slot back and waits: for a notification
(``LISTEN``, read on the connection's socket with ``trio.lowlevel.wait_readable``), for
the moment the holder's lease expires (then it claims it: a takeover), or for the slow
safety poll. When the task ends elsewhere, its final status becomes this machine's too, so
that its dependents become ready here as well.

psycopg's sync API runs in worker threads (``abandon_on_cancel=False``, bounded by the
server's ``statement_timeout``); each role has its own connection: claims and finishes,
the heartbeat, the landing lock, and the listener.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import trio

from planrun.core.frozen import frozen
from planrun.core.outcomes import Status
from planrun.errors import StoreError
from planrun.plan.resolved import Task
from planrun.report.model import TaskReport
from planrun.run.claims import Held, Slots, Work
from planrun.run.shared_spent import SharedSpending
from planrun.state.postgres import scale
from planrun.state.postgres.opening import connect

T = TypeVar("T")

#: what a final status elsewhere means here
_STATUS = {
    "done": Status.DONE,
    "failed": Status.FAILED,
    "skipped": Status.SKIPPED,
    "cancelled": Status.CANCELLED,
    "in_review": Status.IN_REVIEW,
}
#: what a status of the work here is recorded as (cancelled: given back, for another machine)
_RECORDED = {
    Status.DONE: "done",
    Status.FAILED: "failed",
    Status.IN_REVIEW: "in_review",
    Status.CANCELLED: "open",
}


@frozen
class Timing:
    """The lease and the slow safety poll, in seconds (tests shorten them)."""

    lease_s: float = 60.0
    poll_s: float = 10.0

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / 3


@dataclass
class _Lease:
    """A task this machine holds: its fencing token, the scope of its work (cancelled when
    the lease is lost) and when (monotonic) the lease was last known to be renewed."""

    token: int
    scope: trio.CancelScope
    renewed_at: float


class Db:
    """One connection of one role, used from worker threads one call at a time; a call
    that finds the connection broken reconnects once."""

    def __init__(self, url: str, where: str) -> None:
        self.url = url
        self.where = where
        self._con: scale.PgCon | None = None
        self._lock = threading.Lock()

    def _connected(self) -> scale.PgCon:
        if self._con is None or self._con.closed:
            try:
                self._con = connect(self.url, self.where)
            except StoreError as e:  # the server is down: as a broken connection
                raise psycopg.OperationalError(e.problem) from e
            self._con.execute("SET statement_timeout = '10s'")
        return self._con

    def call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)``; a connection that broke since its last use (the
        server restarted) is replaced and the call made once more."""
        with self._lock:
            stale = self._con is not None and not self._con.closed
            try:
                return fn(self._connected(), *args)
            except psycopg.OperationalError:
                self._close()
                if not stale:
                    raise
            try:
                return fn(self._connected(), *args)
            except psycopg.OperationalError:
                self._close()
                raise

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(self.call_sync, fn, *args, abandon_on_cancel=False)

    def _close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def close(self) -> None:
        with self._lock:
            self._close()


class SharedClaims:
    """:class:`planrun.run.claims.Claims` for a run shared through PostgreSQL (see the
    module doc), and the workspace's :class:`planrun.workspace.remote.Fence`."""

    def __init__(
        self,
        url: str,
        where: str,
        run_id: str,
        machine: str,
        caps: scale.Caps,
        timing: Timing,
    ) -> None:
        self.run_id = run_id
        self.machine = machine
        self.caps = caps
        self.timing = timing
        self.db = Db(url, where)
        self._beat = Db(url, where)
        self._landing = Db(url, where)
        self._url, self._where = url, where
        self._held: dict[str, _Lease] = {}
        self._changed = trio.Event()
        self._landing_locks: dict[str, trio.Lock] = {}  # advisory locks are re-entrant
        #: the commits tasks done on other machines landed (for the workspace's checks)
        self.landed_elsewhere: dict[str, str] = {}
        #: the workspace's look for a task's landing on the shared remote, if it has one
        self.find_landed: Callable[[Task], Awaitable[str | None]] | None = None
        #: this machine's state folder (its answers inbox)
        self.state_dir: Path | None = None
        #: the report records of the run (the scheduler's ledger), for the recorded tails
        self.reports: Mapping[str, TaskReport] = {}
        #: what the run spent on every machine (its run-wide budget's view)
        self.spending = SharedSpending()

    # --- a task --------------------------------------------------------------------------

    async def run(self, task: Task, slots: Slots, work: Work) -> Held:
        spec = scale.TaskSpec(task.key, task.provider, task.project)
        parked = False
        while True:
            if parked:
                await slots.resume(task.key)
                parked = False
            since = time.monotonic()
            verdict = await self._claim(spec)
            if verdict.token is not None:
                if verdict.spent is not None:
                    self.spending.seen(verdict.spent)
                if verdict.took_over:
                    _say(f"{task.key}: taken over from a machine whose lease expired")
                    work = self._unless_landed(task, work)
                held = await self._hold(task, verdict.token, since, work)
                if held is not None:
                    return held
                slots.uncharge(task.key)  # not the task's fault: as an interruption
                continue  # the lease was lost: see how the new holder ends it
            if verdict.status is None:
                slots.park(task.key, Status.RETRYING)
                parked = True
                verdict = await self._until_claimable(spec, verdict)
            if verdict.status is not None:
                if verdict.landed_commit is not None:
                    self.landed_elsewhere[task.key] = verdict.landed_commit
                if parked and verdict.status == "in_review":  # the scheduler parks it
                    await slots.resume(task.key)  # for review, giving back a slot it holds
                where = "on another machine"
                reason = f"{verdict.reason} ({where})" if verdict.reason else where
                return Held(_STATUS[verdict.status], reason, here=False)

    def _unless_landed(self, task: Task, work: Work) -> Work:
        """A task taken over may have landed already: its holder died between the push and
        recording it done. Then it is done, with that commit, and does not run again."""

        async def adopt_or_work() -> Held:
            commit = None if self.find_landed is None else await self.find_landed(task)
            if commit is None:
                return await work()
            _say(f"{task.key}: already landed ({commit[:12]}) by the machine that died")
            self.landed_elsewhere[task.key] = commit
            return Held(Status.DONE, f"landed by a machine that died ({commit[:12]})")

        return adopt_or_work

    async def _until_claimable(self, spec: scale.TaskSpec, verdict: scale.Verdict) -> scale.Verdict:
        """Wait, without a slot, until the task ended elsewhere (its final verdict) or may
        be claimed (a verdict without status): woken by notifications, at the holder's lease
        expiry, or by the safety poll; each time a read without a lock."""
        while True:
            await self._wake(verdict.wait_s)
            try:
                verdict = await self.db.call(scale.peek, self.run_id, spec.key)
            except psycopg.Error as e:
                _say(f"cannot read {spec.key} ({_first_line(e)}); trying again")
                verdict = scale.Verdict(wait_s=min(1.0, self.timing.poll_s))
                continue
            if verdict.wait_s is None:
                return verdict

    async def _claim(self, spec: scale.TaskSpec) -> scale.Verdict:
        try:
            return await self.db.call(
                scale.claim, self.run_id, self.machine, spec, self.caps, self.timing.lease_s
            )
        except psycopg.Error as e:
            _say(f"cannot claim {spec.key} ({_first_line(e)}); trying again")
            return scale.Verdict(wait_s=min(1.0, self.timing.poll_s))

    async def _wake(self, wait_s: float | None) -> None:
        """Until something changed in the run, or ``wait_s`` (or the safety poll) passed."""
        timeout = self.timing.poll_s if wait_s is None else min(wait_s, self.timing.poll_s)
        with trio.move_on_after(timeout):
            await self._changed.wait()

    def _notice(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _hold(self, task: Task, token: int, since: float, work: Work) -> Held | None:
        """Do the work under the lease (claimed at ``since``, monotonic); None when the
        lease was lost meanwhile."""
        scope = trio.CancelScope()
        self._held[task.key] = _Lease(token, scope, since)
        try:
            with scope:
                held = await work()
        except BaseException:
            with trio.CancelScope(shield=True):  # interrupted here: another machine may take it
                await self._finish(task.key, token, scale.Finish("open", "interrupted"))
            raise
        finally:
            self._held.pop(task.key, None)
        if scope.cancelled_caught:
            _say(f"{task.key}: the lease was lost; the attempt was stopped, nothing landed")
            return None
        end = scale.Finish(
            _RECORDED.get(held.status, "failed"), held.reason, *self._recorded(task.key)
        )
        return held if await self._finish(task.key, token, end) else None

    def _recorded(self, key: str) -> tuple[str | None, str | None, str]:
        report = self.reports.get(key)
        adopted = self.landed_elsewhere.get(key)
        if report is None:
            return adopted, None, "[]"
        last = report.attempts[-1] if report.attempts else None
        tail = json.dumps(last.tail[-50:]) if last is not None else "[]"
        landed = report.landed_commit or adopted
        return landed, last.log_path if last is not None else None, tail

    async def _finish(self, key: str, token: int, end: scale.Finish) -> bool:
        """Record the end of a held task; False when the lease was lost. A database that
        cannot be reached is tried again until the lease would have expired anyway."""
        deadline = time.monotonic() + self.timing.lease_s
        sent = self.spending.unrecorded(key)
        end = replace(end, tokens=sent.tokens, cost_usd=sent.cost_usd)
        while True:
            try:
                spent = await self.db.call(scale.finish, self.run_id, key, token, end)
                self.spending.recorded(key, sent, spent)
                return True
            except scale.LeaseLost:
                return False
            except psycopg.Error as e:
                if time.monotonic() > deadline:
                    _say(f"{key}: cannot record its end ({_first_line(e)}); another machine will")
                    return False
                await trio.sleep(min(1.0, self.timing.heartbeat_s))

    def _lost(self, key: str) -> None:
        lease = self._held.get(key)
        if lease is not None:
            lease.scope.cancel()

    # --- the landing's critical section (planrun.workspace.remote.Fence) -----------------

    async def local_runs(self) -> set[str]:
        """The run ids the run's machines name in their landing trailers."""
        return await self.db.call(scale.local_runs, self.run_id)

    @asynccontextmanager
    async def landing(self, key: str, lock_name: str) -> AsyncIterator[None]:
        """One landing at a time per target: in this process (a trio lock; PostgreSQL's
        advisory locks are re-entrant within a session), then across machines."""
        local = self._landing_locks.setdefault(lock_name, trio.Lock())
        async with local:
            await self._lock_landing(key, lock_name)
            try:
                await self._check(key)
                yield
            finally:
                # a lost connection released the lock with it
                with trio.CancelScope(shield=True), contextlib.suppress(psycopg.Error):
                    await self._landing.call(scale.unlock_landing, lock_name)

    async def _lock_landing(self, key: str, lock_name: str) -> None:
        """Take the landing lock, trying again while the database cannot be reached; a
        lease that runs out meanwhile stops the attempt (the watchdog)."""
        while True:
            try:
                await self._landing.call(scale.lock_landing, lock_name)
                return
            except psycopg.Error as e:
                _say(f"{key}: cannot take the landing lock ({_first_line(e)}); trying again")
                await trio.sleep(min(1.0, self.timing.heartbeat_s))

    async def _check(self, key: str) -> None:
        lease = self._held.get(key)
        if lease is None:
            return
        try:
            await self.db.call(scale.check, self.run_id, key, lease.token)
        except (scale.LeaseLost, psycopg.Error) as e:  # unsure is lost: never land then
            _say(f"{key}: the lease cannot be confirmed before landing ({_first_line(e)})")
            self._lost(key)
            await trio.lowlevel.checkpoint()  # the cancelled scope stops the landing here

    # --- the machine's background work ------------------------------------------------

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeat)
            nursery.start_soon(self._watchdog)
            nursery.start_soon(self._answers)
            nursery.start_soon(self._listen)

    async def _heartbeat(self) -> None:
        """Renew every lease of this machine every lease/3; a token the renewal misses was
        taken over: its attempt is stopped."""
        while True:
            started = time.monotonic()
            held = dict(self._held)
            try:
                kept = await self._beat.call(
                    scale.renew,
                    self.run_id,
                    self.machine,
                    [lease.token for lease in held.values()],
                    self.timing.lease_s,
                )
            except psycopg.Error as e:
                _say(f"cannot renew the leases ({_first_line(e)}); trying again")
            else:
                for key, lease in held.items():
                    if lease.token in kept:
                        lease.renewed_at = max(lease.renewed_at, started)
                    else:
                        self._lost(key)
                with contextlib.suppress(psycopg.Error):  # what every machine spent
                    self.spending.seen(await self._beat.call(scale.run_spent, self.run_id))
            await trio.sleep(self.timing.heartbeat_s)

    async def _watchdog(self) -> None:
        """Self-fencing: a lease not renewed for a whole lease (the database or the network
        is gone, or a renewal hangs) may be another machine's by now: stop its attempt."""
        while True:
            now = time.monotonic()
            for key, lease in list(self._held.items()):
                if now - lease.renewed_at > self.timing.lease_s:
                    _say(f"{key}: its lease was not renewed for {self.timing.lease_s:g}s")
                    self._lost(key)
            await trio.sleep(self.timing.heartbeat_s / 2)

    async def _answers(self) -> None:
        """Answers posted from any machine (``planrun answer --store``) to the tasks this
        machine holds go to its state folder's inbox, where the waiting question takes
        them (planrun.run.inbox)."""
        from planrun.run.inbox import post_answer

        while True:
            await self._wake(None)
            if self.state_dir is None or not self._held:
                continue
            try:
                answers = await self.db.call(scale.take_answers, self.run_id, self.machine)
            except psycopg.Error:
                continue  # the safety poll tries again
            for key, text in answers:
                post_answer(self.state_dir, key, text)

    async def _listen(self) -> None:
        while True:
            try:
                con = await trio.to_thread.run_sync(connect, self._url, self._where)
            except Exception:
                await trio.sleep(min(1.0, self.timing.poll_s))
                continue
            try:
                await self._read_notifies(con)
            except psycopg.Error:
                await trio.sleep(min(1.0, self.timing.poll_s))
            finally:
                con.close()

    async def _read_notifies(self, con: scale.PgCon) -> None:
        await trio.to_thread.run_sync(con.execute, f"LISTEN {scale.CHANNEL}")
        self._notice()  # anything sent while not listening is lost: look again
        while True:
            await trio.lowlevel.wait_readable(con.fileno())
            con.pgconn.consume_input()
            if con.pgconn.status != psycopg.pq.ConnStatus.OK:
                raise psycopg.OperationalError("the listening connection broke")
            mine = False
            while (note := con.pgconn.notifies()) is not None:
                mine = mine or note.extra.decode() == self.run_id
            if mine:
                self._notice()

    # --- the end -----------------------------------------------------------------------

    def close(self) -> None:
        """Leave the run (closing it if nothing is left to do) and close the connections."""
        try:
            self.db.call_sync(scale.leave, self.run_id, self.machine)
        except psycopg.Error as e:
            _say(f"cannot record that this machine left the run ({_first_line(e)})")
        finally:
            for db in (self.db, self._beat, self._landing):
                db.close()


def _say(text: str) -> None:
    print(f"planrun: {text}", file=sys.stderr)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

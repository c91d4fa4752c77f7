"""The changesets' outbox: a project's verified work recorded first, published after.

:class:`Publisher` observes the run's events. Once every task of a project with a
``changeset:`` and every task that needs one of them (its checks: a ``verify`` is part
of its task) has finished, and one of them ran in this run, it records a
:class:`~planrun.changes.record.Proposal` as a ``changeset_intent`` event (one durable
transaction, ``StoreWriter.happened``): verified if all are done, else with the reason
nothing is published. :meth:`Publisher.deliver` runs beside the scheduler and delivers
the latest proposal of each project (:mod:`planrun.changes.deliver`, idempotent); each
delivery is recorded as a ``changeset_delivered`` event with the state it left.

At most ``changesets.per_hour`` deliveries that open or update a PR happen per hour over
all of the plan's runs (counted from the store); the rest wait, and what still waits at
the end of the run stays in the store for the next ``apply``. Nothing here fails a task.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio

from planrun.changes.basemove import Reconciled
from planrun.changes.deliver import Known, deliver
from planrun.changes.followup import FOLLOWUP_EVENT
from planrun.changes.forks import ForkPolicy
from planrun.changes.propose import Watch
from planrun.changes.push import Rejected
from planrun.changes.record import DELIVERED_EVENT, INTENT_EVENT, WRITES, Proposal, Result
from planrun.changes.records import Recorded, recorded_changesets, write_summary
from planrun.core.events import Event
from planrun.delivery import DeliveryLoop, intents
from planrun.errors import StoreError
from planrun.plan.resolved import CompiledPlan
from planrun.state.store import StoreProtocol, StoreReader
from planrun.trackers.http import RateLimited, TrackerError

HOUR = 3600.0


@dataclass
class Pending:
    """The latest unsettled proposal of one project, and every proposal id it settles."""

    proposal: Proposal
    ids: list[str] = field(default_factory=list)
    not_before: float = 0.0  # trio time
    failures: int = 0
    last_error: str = ""
    held: bool = False  # waiting for the hourly limit
    throttled: bool = False  # GitHub's rate limit answered the last try


def recorded(
    store: StoreReader, plan_name: str
) -> tuple[dict[str, Pending], list[float], dict[str, Proposal]]:
    """Each project's unsettled proposal, the times of deliveries that wrote to GitHub,
    and each project's latest proposal."""
    rows = list(store.plan_events(plan_name, (INTENT_EVENT, DELIVERED_EVENT)))
    table = intents(rows, INTENT_EVENT, Proposal.of, lambda p: p.project)
    found = {project: Pending(proposal, ids) for project, (proposal, ids) in table.items() if ids}
    writes = [
        float(row.data.get("time") or 0)
        for row in rows
        if row.kind == DELIVERED_EVENT and row.data.get("state") in WRITES
    ]
    return found, writes, {project: proposal for project, (proposal, _) in table.items()}


class Publisher(DeliveryLoop[Pending]):
    """Records the run's changesets and publishes them (see the module doc)."""

    def __init__(
        self,
        plan: CompiledPlan,
        store: StoreProtocol,
        run_id: str,
        environ: Mapping[str, str],
        *,
        redact: Callable[[str], str] = str,
        backoff: tuple[float, float] = (2.0, 300.0),
        state_dir: Path | None = None,
    ) -> None:
        self.plan = plan
        self.store = store
        self.run_id = run_id
        self.environ = environ
        self.redact = redact
        self.backoff = backoff
        self.pending, self.writes, self.latest = recorded(store, plan.name)
        self.state_dir = state_dir
        self.found = recorded_changesets(store, plan.name)  # for `planrun status`
        self._keep()
        self.results: dict[str, Result] = {}
        self.watch = Watch(plan, run_id, redact)
        self._wake = trio.Event()
        self._stopping = False
        self._busy: set[str] = set()  # being delivered (or abandoned mid-delivery)

    def event(self, event: Event) -> None:
        for proposal in self.watch.event(event):
            self._propose(proposal)

    def _propose(self, proposal: Proposal) -> None:
        self.latest[proposal.project] = proposal
        seq = self.store.happened(self.run_id, INTENT_EVENT, None, proposal.as_data())
        earlier = self.pending.get(proposal.project)
        ids = [*(earlier.ids if earlier else []), f"{self.run_id}/{seq}"]
        self.pending[proposal.project] = Pending(proposal, ids)
        known = self.found.get(proposal.project)
        if known is None:
            known = self.found[proposal.project] = Recorded(
                proposal.project, proposal.repo, proposal.branch, "waiting"
            )
        known.state = "waiting"
        self._keep()
        self._wake.set()

    def before_run(self, reconciled: Reconciled | None) -> None:
        """What was done before the run: rebased projects are proposed after their checks,
        conflicted ones recorded; drafts the plan now publishes are proposed again."""
        if reconciled is not None:
            self.watch.rebased.update(reconciled.rebased)
            for project, result in reconciled.results.items():
                self.record(project, result)
            for project, ids in reconciled.answered.items():
                data = {"project": project, "answered": ids}
                self.store.happened(self.run_id, FOLLOWUP_EVENT, None, data)
        self.ready_drafts()

    def record(self, project: str, result: Result) -> None:
        """Record what happened to ``project``'s changeset before the run (its base moved
        and rebasing it conflicted or failed): nothing was proposed, nothing sent."""
        known, latest = self.found.get(project), self.latest.get(project)
        if known is None or latest is None:
            return
        proposal = Proposal.of({**latest.as_data(), "published": known.published})
        self._settle(project, Pending(proposal), replace(result, detail=self.redact(result.detail)))

    def ready_drafts(self) -> None:
        """Propose again, as the plan now says, each changeset delivered as a draft whose
        plan now says ``published: true``: its PR is marked ready for review."""
        for project, known in self.found.items():
            changeset = self.plan.changeset_of(project)
            live = known.state in ("opened", "updated", "unchanged")
            if changeset is None or changeset.published is not True or not live:
                continue
            latest = self.latest.get(project)
            if latest is None or known.published != "draft" or project in self.pending:
                continue
            proposal = replace(latest, run_id=self.run_id, published=True)
            self._propose(proposal)

    def _keep(self) -> None:
        if self.state_dir is not None:
            write_summary(self.state_dir, self.found)

    async def flush(self) -> None:
        """One last try for each proposal not held by the hourly limit; the rest waits in
        the store for the next apply, and is said on stderr."""
        await self._round(final=True)
        if self.pending:
            names = ", ".join(sorted(self.pending))
            why = next((p.last_error for p in self.pending.values() if p.last_error), "")
            print(
                f"planrun: changesets of {names} not published yet ({why}); the next apply "
                "of this plan publishes them",
                file=sys.stderr,
            )

    @property
    def held(self) -> list[str]:
        """Projects whose changeset waits for a rate limit: the plan's hourly one, or
        GitHub's."""
        return sorted(k for k, p in self.pending.items() if p.held or p.throttled)

    async def _round(self, *, final: bool) -> None:
        for project, pending in list(self.pending.items()):
            if self._stopping and not final:
                return
            if self.pending.get(project) is not pending or project in self._busy:
                continue
            if self._limited(pending) or (not final and pending.not_before > trio.current_time()):
                continue
            await self._try(project, pending)

    def _limited(self, pending: Pending) -> bool:
        """Whether the hourly limit holds this proposal back (and until when)."""
        per_hour = self.plan.publishing.per_hour
        proposal = pending.proposal
        if per_hour is None or not proposal.verified or self._published(proposal) is False:
            return False
        now = time.time()
        recent = sorted(t for t in self.writes if t > now - HOUR)
        pending.held = len(recent) >= per_hour
        if pending.held:
            pending.last_error = f"at most {per_hour} PRs per hour"
            pending.not_before = trio.current_time() + recent[-per_hour] + HOUR - now
        return pending.held

    def _published(self, proposal: Proposal) -> bool | str:
        """``published`` as the plan says now (as recorded, if it no longer says)."""
        changeset = self.plan.changeset_of(proposal.project)
        return changeset.published if changeset is not None else proposal.published

    async def _try(self, project: str, pending: Pending) -> None:
        changeset = self.plan.changeset_of(project)
        if changeset is None:  # the plan no longer asks for it: settled as it is
            self._settle(project, pending, Result("failed", detail="no changeset in the plan"))
            return
        # the plan as it is now chooses whether to publish (a proposal may wait for days)
        proposal = pending.proposal = replace(pending.proposal, published=changeset.published)
        seen = self.found.get(project)
        known = Known(seen.number, seen.commit) if seen is not None else Known()
        self._busy.add(project)  # stays busy if cancelled: its thread may still be at work
        try:
            result = await trio.to_thread.run_sync(
                _delivered,
                proposal,
                changeset.url,
                self.environ,
                changeset.token,
                self.redact,
                known,
                ForkPolicy(changeset.fork, changeset.fork_organization),
                abandon_on_cancel=True,
            )
        except TrackerError as exc:
            self._busy.discard(project)
            pending.throttled = isinstance(exc, RateLimited)
            if isinstance(exc, Rejected) or exc.status in (404, 410, 422):
                self._settle(project, pending, Result("failed", detail=self.redact(exc.message)))
                return
            pending.failures += 1
            pending.last_error = self.redact(exc.message)
            wait = min(self.backoff[0] * 2 ** (pending.failures - 1), self.backoff[1])
            if isinstance(exc, RateLimited):
                wait = max(wait, exc.reset_at - time.time())
            pending.not_before = trio.current_time() + wait
            return
        self._busy.discard(project)
        self._settle(project, pending, result)

    def _settle(self, project: str, pending: Pending, result: Result) -> None:
        now = time.time()
        data: dict[str, Any] = {
            "intents": pending.ids,
            "project": project,
            "repo": pending.proposal.repo,
            "branch": pending.proposal.branch,
            "state": result.state,
            "number": result.number,
            "url": result.url,
            "pushed": result.pushed,
            "commit": result.commit,
            "detail": result.detail,
            "time": now,
            "base_commit": result.base,
            "published": pending.proposal.published,
        }
        try:
            self.store.happened(self.run_id, DELIVERED_EVENT, None, data)
        except StoreError as exc:  # done, not recorded: done again (idempotently) next time
            print(f"planrun: changeset published but not recorded: {exc}", file=sys.stderr)
        if result.state in WRITES:
            self.writes.append(now)
        known = self.found.get(project)
        if known is not None:
            known.state, known.detail = result.state, result.detail
            known.number = result.number or known.number
            known.url = result.url or known.url
            known.commit = result.commit or known.commit
            known.base_commit = result.base or known.base_commit
            known.published = pending.proposal.published
            self._keep()
        if self.pending.get(project) is pending:
            del self.pending[project]
        self.results[project] = result


def _delivered(
    proposal: Proposal,
    url: str,
    environ: Mapping[str, str],
    token: str,
    redact: Callable[[str], str],
    known: Known,
    fork: ForkPolicy,
) -> Result:
    """:func:`deliver`; an answer of odd shape is a TrackerError (retried), not a crash."""
    try:
        return deliver(proposal, url, environ, token, redact, known, fork)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrackerError(
            f"github {proposal.repo} answered something unexpected: {type(exc).__name__}: {exc}"
        ) from None

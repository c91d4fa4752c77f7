"""The run's state machine: pure, synchronous, no I/O (SPEC §3, §4).

:class:`RunState` knows every task's status and what it waits for. The scheduler tells it
what happened (``start``, ``retrying``, ``finish``) and asks it what may start next
(``take``). ``finish`` propagates: dependents become ready or are skipped (naming the task
that failed first, the *cause*), groups complete when their children have.

Readiness by ``run_when`` once every need is final:

- ``success`` (default): every need done → ready; a need cancelled → cancelled; otherwise
  skipped, naming the need and the task that originally failed;
- ``always``: ready whatever the needs' outcome;
- ``failure``: ready if a need failed or was skipped because of a failure, else skipped
  (an *expected* skip, which does not make the run fail).

A group (a parent or a fan-out) is final once its children are: done if all are done,
failed/cancelled/skipped after the first child (in key order) that was not.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from planrun.core.frozen import frozen
from planrun.core.graph import TaskGraph
from planrun.core.outcomes import Status
from planrun.core.waves import halt_reason
from planrun.errors import InternalError

if TYPE_CHECKING:
    from planrun.core.waves import Waves


@dataclass
class TaskState:
    status: Status = Status.PENDING
    reason: str = ""
    cause: str | None = None  # the failed task a skip or failure traces back to
    attempts: int = 0  # attempts started, this run and earlier ones
    expected: bool = False  # a skip that is not a problem (run_when did not match)
    waiting: int = 0  # needs not final yet


@frozen
class Change:
    """A status change that ``finish`` caused (the scheduler reports each one)."""

    key: str
    status: Status
    reason: str = ""


@dataclass
class Caps:
    """Concurrency limits: global, per provider and per project (None = no limit)."""

    total: int
    providers: dict[str, int] = field(default_factory=dict)
    projects: dict[str, int] = field(default_factory=dict)
    running: int = 0
    by_provider: dict[str, int] = field(default_factory=dict)
    by_project: dict[str, int] = field(default_factory=dict)

    def allows(self, provider: str, project: str | None) -> bool:
        if self.running >= self.total:
            return False
        limit = self.providers.get(provider)
        if limit is not None and self.by_provider.get(provider, 0) >= limit:
            return False
        if project is not None:
            limit = self.projects.get(project)
            if limit is not None and self.by_project.get(project, 0) >= limit:
                return False
        return True

    def take(self, provider: str, project: str | None) -> None:
        self.running += 1
        self.by_provider[provider] = self.by_provider.get(provider, 0) + 1
        if project is not None:
            self.by_project[project] = self.by_project.get(project, 0) + 1

    def give_back(self, provider: str, project: str | None) -> None:
        self.running -= 1
        self.by_provider[provider] -= 1
        if project is not None:
            self.by_project[project] -= 1
        if self.running < 0:
            raise InternalError("a slot was given back twice")

    @property
    def full(self) -> bool:
        return self.running >= self.total


class RunState:
    """Statuses and readiness of one run; a one-off object."""

    def __init__(
        self,
        graph: TaskGraph,
        caps: Caps,
        *,
        selected: Iterable[str] | None = None,
        waves: Waves | None = None,
    ) -> None:
        self.graph = graph
        self.caps = caps
        self.waves = waves  # changesets rolled out in waves (planrun.core.waves)
        keys = graph.upstream(selected) if selected is not None else set(graph.tasks)
        # a group is in the run when any of its children is
        self.keys = keys | {
            k
            for k in graph.tasks
            if graph.tasks[k].kind == "group" and any(c in keys for c in graph.tasks[k].children)
        }
        self.tasks: dict[str, TaskState] = {k: TaskState() for k in self.keys}
        self._ready: list[tuple[tuple[int, int, str], str]] = []
        self._holding: set[str] = set()  # tasks holding a slot
        self.stopping = False
        for key, state in self.tasks.items():
            state.waiting = sum(1 for n in graph.waits_for(key) if n in self.keys)

    # --- setup --------------------------------------------------------------------------

    def begin(
        self,
        done: Mapping[str, str] | Iterable[str] = (),
        in_review: Mapping[str, str] | None = None,
    ) -> list[Change]:
        """Mark tasks already done (converged), then make the first tasks ready.

        ``done`` maps keys to the reason shown (or is a plain collection of keys). Every
        such status is set before anything is evaluated, so marking one task done never
        makes another up-to-date task ready first.
        """
        reasons = dict(done) if isinstance(done, Mapping) else dict.fromkeys(done, "up to date")
        changes: list[Change] = []
        for key, reason in reasons.items():
            if key in self.tasks and self.tasks[key].status is Status.PENDING:
                self.tasks[key].status = Status.DONE
                self.tasks[key].reason = reason
                changes.append(Change(key, Status.DONE, reason))
        for key, reason in (in_review or {}).items():
            if key in self.tasks and self.tasks[key].status is Status.PENDING:
                self.tasks[key].status = Status.IN_REVIEW
                self.tasks[key].reason = reason
                changes.append(Change(key, Status.IN_REVIEW, reason))
        for key, state in self.tasks.items():
            state.waiting = sum(
                1
                for n in self.graph.waits_for(key)
                if n in self.tasks and not self.tasks[n].status.is_final
            )
        for key in self.graph.topological():
            found = self.tasks.get(key)
            if found is not None and found.status is Status.PENDING and found.waiting == 0:
                changes += self._evaluate(key)
        return changes

    # --- queries ------------------------------------------------------------------------

    def status(self, key: str) -> Status:
        return self.tasks[key].status

    def __getitem__(self, key: str) -> TaskState:
        return self.tasks[key]

    @property
    def finished(self) -> bool:
        return all(t.status.is_final for t in self.tasks.values())

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for key, state in self.tasks.items():
            if self.graph.tasks[key].kind == "work":
                counts[state.status.value] += 1
        return counts

    def work_keys(self) -> list[str]:
        return [
            k
            for k in self.graph.topological()
            if k in self.keys and self.graph.tasks[k].kind == "work"
        ]

    @property
    def succeeded(self) -> bool:
        """Every task done, or skipped only because its run_when did not match."""
        return all(
            s.status is Status.DONE or (s.status is Status.SKIPPED and s.expected)
            for s in self.tasks.values()
        )

    # --- dispatch -----------------------------------------------------------------------

    def take(self, can_start: Callable[[str], bool] | None = None) -> list[str]:
        """Ready tasks that may start now, in dispatch order; each now holds a slot."""
        if self.stopping:
            return []
        started: list[str] = []
        skipped: list[tuple[tuple[int, int, str], str]] = []
        while self._ready and not self.caps.full:
            order, key = heapq.heappop(self._ready)
            task = self.graph.tasks[key]
            if self.tasks[key].status is not Status.READY:
                continue  # stale entry (cancelled while queued)
            if (
                not self.caps.allows(task.provider, task.project)
                or (can_start is not None and not can_start(key))
                or (self.waves is not None and not self.waves.allows(self, key))
            ):
                skipped.append((order, key))
                continue
            self.caps.take(task.provider, task.project)
            self._holding.add(key)
            self.tasks[key].status = Status.RUNNING
            started.append(key)
        for entry in skipped:
            heapq.heappush(self._ready, entry)
        return started

    def count_attempt(self, key: str) -> int:
        """Count an attempt as it starts; returns its number (1-based, across runs)."""
        self.tasks[key].attempts += 1
        return self.tasks[key].attempts

    def release(self, key: str, status: Status) -> None:
        """The task stops holding its slot without finishing (retrying, needs_input)."""
        if status not in (Status.RETRYING, Status.NEEDS_INPUT, Status.IN_REVIEW):
            raise InternalError(f"release to {status} is not a pause")
        self._give_back(key)
        self.tasks[key].status = status

    def requeue(self, key: str) -> None:
        """A paused task wants a slot again (after backoff, or once answered)."""
        state = self.tasks[key]
        if state.status not in (Status.RETRYING, Status.NEEDS_INPUT, Status.IN_REVIEW):
            raise InternalError(f"{key} cannot be requeued from {state.status}")
        self._push_ready(key)

    def finish(self, key: str, status: Status, reason: str = "") -> list[Change]:
        """A task reached a final status; returns every change that follows from it."""
        if not status.is_final:
            raise InternalError(f"finish({key!r}) with non-final status {status}")
        if key in self._holding:
            self._give_back(key)
        changes = self._final(key, status, reason)
        if self.waves is not None:
            changes += self._halt(self.waves)
        return changes

    def stop(self) -> None:
        """Start nothing new (on_failure: stop, a signal, a budget)."""
        self.stopping = True

    def cancel_unstarted(self, reason: str) -> list[Change]:
        """At the end of a stopped run: tasks that never got to run become cancelled."""
        changes: list[Change] = []
        for key in self.graph.topological():
            state = self.tasks.get(key)
            # a task in review keeps waiting for approve: that is durable, not unfinished work
            if state is not None and state.status in (
                Status.PENDING,
                Status.READY,
                Status.RETRYING,
                Status.NEEDS_INPUT,
            ):
                if key in self._holding:
                    self._give_back(key)
                changes += self._final(key, Status.CANCELLED, reason)
        return changes

    def cancel(self, keys: Iterable[str], reason: str) -> list[Change]:
        """Tasks of ``keys`` that have not started are cancelled with ``reason`` (a halted
        canary wave); running ones go on."""
        wanted = set(keys)
        changes: list[Change] = []
        for key in reversed(self.graph.topological()):  # each with the reason, not "need ..."
            state = self.tasks.get(key)
            if (
                key in wanted
                and state is not None
                and state.status
                in (
                    Status.PENDING,
                    Status.READY,
                )
            ):
                changes += self._final(key, Status.CANCELLED, reason)
        return changes

    def _halt(self, waves: Waves) -> list[Change]:
        """A canary wave that just ended with too many failed repositories: the later
        waves' tasks that have not started are cancelled."""
        halted = waves.judge(self)
        if halted is None:
            return []
        return self.cancel(waves.later(halted[0]), halt_reason(*halted))

    # --- internals ----------------------------------------------------------------------

    def _give_back(self, key: str) -> None:
        task = self.graph.tasks[key]
        self._holding.discard(key)
        self.caps.give_back(task.provider, task.project)

    def _push_ready(self, key: str) -> None:
        self.tasks[key].status = Status.READY
        heapq.heappush(self._ready, (self.graph.order_key(key), key))

    def _final(
        self,
        key: str,
        status: Status,
        reason: str,
        cause: str | None = None,
        expected: bool = False,
    ) -> list[Change]:
        state = self.tasks[key]
        if state.status.is_final:
            raise InternalError(f"{key} is already {state.status}")
        state.status = status
        state.reason = reason
        state.expected = expected
        state.cause = cause if cause is not None else (key if status is Status.FAILED else None)
        changes = [Change(key, status, reason)]
        for later in self.graph.waited_on_by(key):
            other = self.tasks.get(later)
            if other is None or other.status.is_final:
                continue
            other.waiting -= 1
            if other.waiting == 0:
                changes += self._evaluate(later)
        return changes

    def _evaluate(self, key: str) -> list[Change]:
        """Every need of ``key`` is final: decide whether it becomes ready or final."""
        task = self.graph.tasks[key]
        needs = [n for n in self.graph.waits_for(key) if n in self.tasks]
        if task.kind == "group":
            return self._settle_group(key, needs)
        bad = [
            n
            for n in needs
            if self.tasks[n].status is not Status.DONE
            and not (self.tasks[n].status is Status.SKIPPED and self.tasks[n].expected)
        ]
        cancelled = [n for n in bad if self.tasks[n].status is Status.CANCELLED]
        if task.run_when == "always":
            return self._ready_now(key)
        if task.run_when == "failure":
            failed = [n for n in bad if self.tasks[n].status is not Status.CANCELLED]
            if failed:
                return self._ready_now(key)
            return self._final(
                key, Status.SKIPPED, "run_when is failure and no need failed", expected=True
            )
        if cancelled:
            return self._final(key, Status.CANCELLED, f"need {cancelled[0]} was cancelled")
        if bad:
            need = bad[0]
            cause = self.tasks[need].cause or need
            status = self.tasks[need].status.value
            reason = (
                f"need {need} {status}"
                if cause == need
                else f"need {need} {status} because {cause} failed"
            )
            return self._final(key, Status.SKIPPED, reason, cause=cause)
        return self._ready_now(key)

    def _ready_now(self, key: str) -> list[Change]:
        if self.stopping:
            return []
        self._push_ready(key)
        return [Change(key, Status.READY)]

    def _settle_group(self, key: str, children: list[str]) -> list[Change]:
        for child in sorted(children):
            state = self.tasks[child]
            if state.status is Status.DONE or (state.status is Status.SKIPPED and state.expected):
                continue
            cause = state.cause or child
            return self._final(key, state.status, f"{child} {state.status.value}", cause=cause)
        return self._final(key, Status.DONE, "")

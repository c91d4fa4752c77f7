"""Waves and canaries (docs/batch-changes.md): the repositories of a plan's changesets
roll out in waves, and a wave where too many failed halts the rest (pure: no I/O).

``changesets: {waves: [3, 10], halt_above: 20%}``: the first 3 repositories (projects
with a changeset, in the plan's order) are wave 1, the next 10 wave 2, the rest wave 3.
A task of a later wave starts only once every task of the waves before it is final (or
waits for a person: in review, or for an answer; such a wave is judged once final).
When a wave is over and more than ``halt_above`` of its repositories failed (a task
failed, was skipped or cancelled: its checks or its budget), the later waves' tasks that
have not started are cancelled with ``canary wave N failed: k of n repositories failed``.
Tasks of projects without a changeset belong to no wave. A task with its own changeset
is a repository of its own here (after the projects, in the plan's order): its wave is
its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from planrun.core.outcomes import Status

if TYPE_CHECKING:
    from planrun.core.runstate import RunState
    from planrun.plan.resolved import CompiledPlan


#: Statuses of a task that waits for a person, not for the run.
WAITING = (Status.IN_REVIEW, Status.NEEDS_INPUT)


def wave_numbers(projects: Sequence[str], sizes: Sequence[int]) -> dict[str, int]:
    """Each project's wave (1-based): ``sizes`` in order, then one wave for the rest."""
    found: dict[str, int] = {}
    wave, left = 1, list(sizes)
    room = left.pop(0) if left else len(projects)
    for project in projects:
        if room == 0:
            wave += 1
            room = left.pop(0) if left else len(projects)
        found[project] = wave
        room -= 1
    return found


@dataclass
class Waves:
    """Which wave each work task is in, and which waves were judged."""

    wave_of: dict[str, int]  # work task key → its wave
    project_of: dict[str, str]  # work task key → its repository's project
    halt_above: float
    judged: set[int] = field(default_factory=set)
    over: set[int] = field(default_factory=set)
    halted: int | None = None

    @classmethod
    def of(cls, plan: CompiledPlan) -> Waves | None:
        """The plan's waves, or None when it rolls out all at once."""
        policy = plan.publishing
        if not policy.waves:
            return None
        projects = [k for k, p in plan.projects.items() if p.changeset is not None]
        numbers = wave_numbers([*projects, *plan.task_changesets], policy.waves)
        wave_of, project_of = {}, {}
        for key, task in plan.tasks.items():
            if task.kind == "work" and task.project in projects:
                wave_of[key], project_of[key] = numbers[task.project], task.project
        for key in plan.task_changesets:  # a task's own changeset: the task alone
            wave_of[key], project_of[key] = numbers[key], key
        return cls(wave_of, project_of, policy.halt_above)

    def allows(self, state: RunState, key: str) -> bool:
        """Whether ``key`` may start: every earlier wave is over, and none halted the rest."""
        wave = self.wave_of.get(key)
        if wave is None or wave == 1:
            return True
        return self.halted is None and all(self._done_here(state, w) for w in range(1, wave))

    def judge(self, state: RunState) -> tuple[int, int, int] | None:
        """The wave that just ended with too many failed repositories: (wave, failed,
        repositories); None when none did. Each wave is judged once, in order."""
        for wave in sorted(set(self.wave_of.values()) - self.judged):
            if not self._over(state, wave):
                return None
            self.judged.add(wave)
            failed, total = self._failures(state, wave)
            if total and failed / total > self.halt_above and self.halted is None:
                self.halted = wave
                return wave, failed, total
        return None

    def later(self, wave: int) -> list[str]:
        """The work tasks of the waves after ``wave``."""
        return [k for k, w in self.wave_of.items() if w > wave]

    def _keys(self, state: RunState, wave: int) -> list[str]:
        return [k for k, w in self.wave_of.items() if w == wave and k in state.tasks]

    def _over(self, state: RunState, wave: int) -> bool:
        """Whether every task of ``wave`` is final (once true, it stays true)."""
        if wave not in self.over:
            if not all(state.status(k).is_final for k in self._keys(state, wave)):
                return False
            self.over.add(wave)
        return True

    def _done_here(self, state: RunState, wave: int) -> bool:
        """Whether ``wave`` has nothing more to do in this run: each task final, or
        waiting for a person (in review, or for an answer): the next wave may start."""
        return self._over(state, wave) or all(
            state.status(k).is_final or state.status(k) in WAITING for k in self._keys(state, wave)
        )

    def _failures(self, state: RunState, wave: int) -> tuple[int, int]:
        repos: dict[str, bool] = {}
        for key in self._keys(state, wave):
            found = state[key]
            ok = found.status is Status.DONE or (found.status is Status.SKIPPED and found.expected)
            project = self.project_of[key]
            repos[project] = repos.get(project, True) and ok
        return sum(not ok for ok in repos.values()), len(repos)


def halt_reason(wave: int, failed: int, total: int) -> str:
    return f"canary wave {wave} failed: {failed} of {total} repositories failed"

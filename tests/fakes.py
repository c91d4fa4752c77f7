"""A scripted session backend for scheduling tests (real processes are tested elsewhere).

Each task's attempts follow a script of (seconds, outcome) steps; time passes through
``trio.sleep``, so under the autojump clock a test observes exact virtual timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import trio

from planrun.core.events import Event
from planrun.core.outcomes import Outcome
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from planrun.sessions.base import (
    OnLine,
    OnQuestion,
    OnStart,
    ProcessInfo,
    SessionResult,
    SessionSpec,
)


@dataclass
class Run:
    name: str
    start: float
    end: float | None = None
    outcome: Outcome | None = None


@dataclass
class FakeSession:
    """``script[key]`` lists (duration, outcome) for attempts 1, 2, ...; default 1 s success."""

    script: dict[str, list[tuple[float, Outcome]]] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    running: int = 0
    peak: int = 0

    async def run(
        self,
        spec: SessionSpec,
        *,
        on_start: OnStart | None = None,
        on_line: OnLine | None = None,
        on_question: OnQuestion | None = None,
    ) -> SessionResult:
        key = spec.env.get("PLANRUN_TASK_KEY", spec.name)
        attempt = int(spec.env.get("PLANRUN_ATTEMPT", "1"))
        steps = self.script.get(key, [])
        duration, outcome = (
            steps[attempt - 1] if attempt <= len(steps) else (1.0, Outcome.SUCCEEDED)
        )
        record = Run(key, trio.current_time())
        self.runs.append(record)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if on_start is not None:
                await on_start(ProcessInfo(pid=1, pgid=1, start_time=0))
            await trio.sleep(duration)
            record.outcome = outcome
            return SessionResult(
                outcome,
                "" if outcome is Outcome.SUCCEEDED else outcome.value,
                exit_code=0 if outcome is Outcome.SUCCEEDED else 1,
            )
        finally:
            self.running -= 1
            record.end = trio.current_time()

    def starts(self, key: str) -> list[float]:
        return [r.start for r in self.runs if r.name == key]

    def order(self) -> list[str]:
        return [r.name for r in sorted(self.runs, key=lambda r: (r.start, self.runs.index(r)))]


class Recorder:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def event(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self, key: str | None = None) -> list[str]:
        return [e.kind.value for e in self.events if key is None or e.key == key]


def plan_from(text: str, tmp_path: Path, name: str = "plan.yaml") -> CompiledPlan:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_plan(path)

"""``apply --dry-run``: a backend that records what would run and runs nothing."""

from __future__ import annotations

import shlex

from planrun.core.outcomes import Outcome
from planrun.sessions.base import OnLine, OnQuestion, OnStart, SessionResult, SessionSpec


class DryRunSession:
    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple[str, ...]]] = []

    async def run(
        self,
        spec: SessionSpec,
        *,
        on_start: OnStart | None = None,
        on_line: OnLine | None = None,
        on_question: OnQuestion | None = None,
    ) -> SessionResult:
        self.commands.append((spec.name, spec.argv))
        line = f"would run: {shlex.join(spec.argv)} (in {spec.cwd})"
        if on_line is not None:
            on_line(line)
        return SessionResult(Outcome.SUCCEEDED, "dry run", exit_code=0, tail=[line])

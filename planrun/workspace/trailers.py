"""The trailer every landing commit carries, so that nothing lands twice (pure).

A landing commit's message ends with::

    Planrun-Plan: <plan name>
    Planrun-Task: <task key>
    Planrun-Fingerprint: <the task's fingerprint>
    Planrun-Attempt: <run id>#<attempt number>

``merge`` and ``squash`` landings write it into the commit they make; ``rebase`` adds it to
the last replayed commit. Before landing, planrun looks for its own trailer among what
landed since the task's worktree was cut (another planrun may have landed it: never twice);
before deciding what to run, for the latest attempt of every task not recorded done (an
apply killed between landing and recording: the task is recorded done, not run again).

A value that is not a plain printable one-line string is written as a JSON string, so any
task key (fan-out items hold anything) reads back exactly.
"""

from __future__ import annotations

import json

from planrun.core.frozen import frozen

PLAN, TASK, FINGERPRINT, ATTEMPT = (
    "Planrun-Plan",
    "Planrun-Task",
    "Planrun-Fingerprint",
    "Planrun-Attempt",
)


@frozen
class Mark:
    """Who lands: one attempt of one task of one plan, with the task's definition."""

    plan: str
    task: str
    fingerprint: str
    attempt: str  # "<run id>#<n>"

    def trailer(self) -> str:
        fields = (
            (PLAN, self.plan),
            (TASK, self.task),
            (FINGERPRINT, self.fingerprint),
            (ATTEMPT, self.attempt),
        )
        return "".join(f"{name}: {_encode(value)}\n" for name, value in fields)

    def sign(self, message: str) -> str:
        """``message`` with this mark's trailer as its last paragraph."""
        return f"{message.rstrip()}\n\n{self.trailer()}"

    def same_work(self, other: Mark) -> bool:
        """The same definition of the same task of the same plan (any attempt)."""
        return (self.plan, self.task, self.fingerprint) == (
            other.plan,
            other.task,
            other.fingerprint,
        )


def _encode(value: str) -> str:
    plain = value.isprintable() and value == value.strip() and not value.startswith('"')
    return value if plain else json.dumps(value)


def _decode(value: str) -> str:
    if value.startswith('"'):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def read_mark(message: str) -> Mark | None:
    """The mark in a commit message's trailer lines, or None when it has none."""
    found: dict[str, str] = {}
    for line in message.splitlines():
        name, sep, value = line.partition(": ")
        if sep and name in (PLAN, TASK, FINGERPRINT, ATTEMPT):
            found[name] = _decode(value.strip())
    if len(found) < 4:
        return None
    return Mark(found[PLAN], found[TASK], found[FINGERPRINT], found[ATTEMPT])

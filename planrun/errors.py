"""The exceptions planrun raises, each carrying the data that explains it.

::

    PlanrunError                     every error planrun means to raise
    ├── PlanError                    the plan is invalid (exit 2); .diagnostics lists every problem
    ├── UsageError                   the command line is wrong (exit 2)
    ├── StateLockedError             another apply holds the state folder (exit 3)
    ├── StoreError                   the state store is unreadable or foreign (exit 2)
    ├── GitError                     a git command failed; .argv, .returncode, .stderr
    │   └── MergeConflict            landing a branch conflicted; the target is untouched
    ├── SessionStartError            a task's process could not be started
    └── InternalError                a bug in planrun: please report it

Anything else escaping planrun is a bug too; the CLI reports it as InternalError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Location:
    """A place in a file; ``line`` and ``column`` count from 1 (0 means unknown)."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.path
        return f"{self.path}:{self.line}:{max(self.column, 1)}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a plan, at one place."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class PlanrunError(Exception):
    """Base class of every error planrun raises on purpose."""

    exit_code = 1


class PlanError(PlanrunError):
    """The plan cannot be used; ``diagnostics`` holds every problem found, in file order."""

    exit_code = 2

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(
            sorted(set(diagnostics), key=lambda d: (d.location, d.message))
        )
        if not self.diagnostics:
            raise InternalError("PlanError raised without a diagnostic")
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def single(cls, location: Location, message: str) -> PlanError:
        return cls([Diagnostic(location, message)])


class UsageError(PlanrunError):
    """The command line asked for something that cannot be done."""

    exit_code = 2


class StateLockedError(PlanrunError):
    """Another ``planrun apply`` holds the state folder's lock."""

    exit_code = 3

    def __init__(self, lock_path: str, holder: str) -> None:
        self.lock_path = lock_path
        self.holder = holder
        super().__init__(f"{lock_path} is locked by another apply ({holder})")


class StoreError(PlanrunError):
    """The state store cannot be read as planrun's own."""

    exit_code = 2

    def __init__(self, path: str, problem: str, advice: str) -> None:
        self.path = path
        self.problem = problem
        self.advice = advice
        super().__init__(f"{path}: {problem}; {advice}")


class GitError(PlanrunError):
    """A git command failed."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        super().__init__(f"git {' '.join(self.argv[1:4])} failed ({returncode}): {tail}")


class MergeConflict(GitError):
    """Landing a task branch conflicted; the merge was aborted and the target left as it was."""

    def __init__(
        self, argv: Sequence[str], returncode: int, stderr: str, paths: Sequence[str]
    ) -> None:
        self.paths = tuple(paths)
        super().__init__(argv, returncode, stderr)


class SessionStartError(PlanrunError):
    """A task's command could not be started (missing executable, bad folder, ...)."""

    def __init__(self, argv: Sequence[str], reason: str) -> None:
        self.argv = tuple(argv)
        self.reason = reason
        head = self.argv[0] if self.argv else "<empty command>"
        super().__init__(f"cannot start {head!r}: {reason}")


class InternalError(PlanrunError):
    """Something planrun believed impossible happened: a bug."""

    exit_code = 70

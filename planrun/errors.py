"""The exceptions planrun raises, each carrying the data that explains it.

::

    PlanrunError                     every error planrun means to raise
    ├── PlanError                    the plan is invalid (exit 2); .diagnostics lists every problem
    ├── UsageError                   the command line is wrong (exit 2)
    ├── StateLockedError             another apply holds the state folder (exit 3)
    ├── StoreError                   the state store is unreadable or foreign (exit 2)
    ├── TargetError                  an integration branch planrun did not make (exit 2)
    ├── NamespaceError               another plan file uses this plan's branches (exit 2)
    ├── GitError                     a git command failed; .argv, .returncode, .stderr
    │   └── MergeConflict            landing a branch conflicted; the target is untouched
    ├── SessionStartError            a task's process could not be started
    └── InternalError                a bug in planrun: please report it

Anything else escaping planrun is a bug too; the CLI reports it as InternalError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from planrun.core.frozen import frozen


@frozen(order=True)
class Location:
    """A place in a file; ``line`` and ``column`` count from 1 (0 means unknown)."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.path
        return f"{self.path}:{self.line}:{max(self.column, 1)}"


def text_position(text: str, index: int) -> tuple[int, int]:
    """The line and column (both from 1) of character ``index`` of ``text``."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


@frozen
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


class TargetError(PlanrunError):
    """A project's integration branch exists but shares no history with its base branch:
    planrun did not make it, and landing on it would run tasks on the wrong tree."""

    exit_code = 2

    def __init__(self, project: str, path: str, target: str, base: str) -> None:
        self.project = project
        self.path = path
        self.target = target
        self.base = base
        super().__init__(
            f"project {project} ({path}): branch {target} exists but shares no history with "
            f"{base}; planrun did not make it and will not land on it. Rename or delete that "
            f"branch (git -C {path} branch -m {target} {target}-old), or set the project's "
            "target_branch to another name"
        )


class NamespaceError(PlanrunError):
    """Another plan file already uses this plan's name (its branches) in a repository."""

    exit_code = 2

    def __init__(self, repo: str, name: str, owner: str, plan: str) -> None:
        self.repo = repo
        self.name = name
        self.owner = owner
        self.plan = plan
        super().__init__(
            f"{plan}: the plan name {name!r} is already used in repository {repo} by {owner} "
            f"(branches planrun/{name}/...); give {Path(plan).name} its own `name:`"
        )


#: At most this many characters of git's stderr are quoted in a GitError's message.
GIT_SUMMARY_LIMIT = 500
#: Lines of git's stderr that say what went wrong (the rest is advice and progress).
_GIT_KEY_PREFIXES = ("fatal:", "error:", "CONFLICT")


def git_stderr_summary(stderr: str, limit: int = GIT_SUMMARY_LIMIT) -> str:
    """What matters in git's ``stderr``, on one line of at most ``limit`` characters.

    Its ``fatal:``, ``error:`` and ``CONFLICT`` lines in order, each followed by the
    indented lines under it (git lists files that way), repeats dropped, joined by "; ".
    Without any, its last line that is not a ``hint:`` (or its last line). Cut with "…".
    """
    groups: list[list[str]] = []
    under_key = False
    for line in stderr.splitlines():
        if line.startswith(_GIT_KEY_PREFIXES):
            groups.append([line.strip()])
            under_key = True
        elif under_key and line[:1] in ("\t", " ") and line.strip():
            groups[-1].append(line.strip())
        else:
            under_key = False
    said = [g[0] + (" " + ", ".join(g[1:]) if g[1:] else "") for g in groups]
    if not said:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        plain = [line for line in lines if not line.startswith("hint:")]
        said = (plain or lines or ["no output"])[-1:]
    text = "; ".join(dict.fromkeys(said))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class GitError(PlanrunError):
    """A git command failed.

    The message quotes what matters in git's stderr (:func:`git_stderr_summary`), or
    ``summary`` when given; ``.stderr`` keeps all of it. Whoever writes the whole stderr
    somewhere sets ``output_log`` to that file, which the message then names.
    """

    def __init__(
        self, argv: Sequence[str], returncode: int, stderr: str, *, summary: str | None = None
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.summary = git_stderr_summary(stderr) if summary is None else summary
        self.output_log: str | None = None
        super().__init__(f"git {' '.join(self.argv[1:4])} failed ({returncode}): {self.summary}")

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (git's full output: {self.output_log})" if self.output_log else text


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


class ReportWriteError(PlanrunError):
    """A report file (JSON, JUnit XML, summary) could not be written; exit 1."""

    def __init__(self, path: Path | str, error: OSError) -> None:
        self.path = path
        self.error = error
        super().__init__(f"cannot write {path}: {error.strerror or error}")


class RedactedError(PlanrunError):
    """Another error whose message had a declared secret masked before anyone saw it; it
    keeps that error's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(message)


class InternalError(PlanrunError):
    """Something planrun believed impossible happened: a bug."""

    exit_code = 70


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else empty."""
    import difflib

    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""

"""The problems one compilation finds, each at its place in the file, in the order found.

Compiling goes on past a problem, so that one pass reports them all: every step of
:func:`planrun.plan.compile.compile_plan` adds what it finds here, and the problems are raised
together at the end, as one PlanError.
"""

from __future__ import annotations

from collections.abc import Iterable

from planrun.errors import Diagnostic
from planrun.plan import templates
from planrun.plan.source import Source


class Problems:
    """The diagnostics of one compilation of ``source``, in the order they were found."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.found: list[Diagnostic] = []

    def __bool__(self) -> bool:
        return bool(self.found)

    def fail(self, where: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        """A problem with the value at ``where`` (or with its key, with ``key=True``)."""
        self.found.append(Diagnostic(self.source.locate(where, key=key), message))

    def fail_template(
        self, where: tuple[str | int, ...], problem: templates.TemplateProblem
    ) -> None:
        """A template problem, at its own line of the file when that is known."""
        exact = self.source.locate_line(where, problem.line)
        if exact is not None:
            self.found.append(Diagnostic(exact, problem.message))
        else:
            self.fail(where, _with_line(problem))

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        """Problems already located (the dependency cycles of the task graph)."""
        self.found.extend(diagnostics)


def _with_line(exc: templates.TemplateProblem) -> str:
    return (
        exc.message
        if not exc.line or exc.line == 1
        else f"{exc.message} (template line {exc.line})"
    )

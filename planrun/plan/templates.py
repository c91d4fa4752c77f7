"""Templates in plan text, rendered by Jinja2's sandbox (SPEC §2).

Rules:

- Undefined names are errors (``StrictUndefined``); the compiler finds them at validate
  time by rendering with the same context shape the run uses. The error names the whole
  variable path (``task.nam is undefined``) and suggests a close name.
- Rendering is one pass: a value inserted into a template (a task's description inside a
  prompt, a file name from a glob, an answer typed by a user) is data and is never rendered
  again, so text that happens to contain ``{{`` cannot run anything.
- In a ``{shell: ...}`` command every inserted value is shell-quoted (``finalize``), so
  ``{{ item.path }}`` is one word whatever the file is called. Argv commands are rendered
  element by element and need no quoting.
- The sandbox refuses private attributes (``''.__class__``) and mutating methods.
- Write ``{% raw %}...{% endraw %}`` to keep literal braces.

Text without template syntax is returned as it is. Jinja2 and the sandbox
(:mod:`planrun.plan.sandbox`) are imported on the first text that has some, so that a plan
without templates starts without them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any


class TemplateProblem(Exception):
    """A template could not be compiled or rendered; ``line`` counts within the template."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(message)


#: Said of a template whose output holds a NUL: every rendered text ends up in a command's
#: arguments, its environment or its input, and no process can be given one.
NUL_PRODUCED = (
    "this template produces a NUL character (\\0), which cannot be passed to a process; remove it"
)


def refuse_nul(rendered: str) -> str:
    """``rendered``, or TemplateProblem(:data:`NUL_PRODUCED`) if it holds a NUL character."""
    if "\0" in rendered:
        raise TemplateProblem(NUL_PRODUCED)
    return rendered


def is_template(text: str) -> bool:
    """Whether ``text`` holds template syntax at all (plain text is returned as it is)."""
    return "{{" in text or "{%" in text or "{#" in text


def render(text: str, context: Mapping[str, Any], *, shell: bool = False) -> str:
    """Render ``text`` once; raise TemplateProblem naming the undefined or failing part.

    ``shell=True`` shell-quotes every value the template inserts. Text without template
    syntax is returned unchanged without compiling anything.
    """
    if not is_template(text):
        return text
    return _sandbox()[0](text, context, shell)


def check(text: str, context: Mapping[str, Any], *, shell: bool = False) -> None:
    """Raise TemplateProblem if rendering ``text`` with ``context`` would fail, or would
    produce a NUL character (:data:`NUL_PRODUCED`), which no process can be given.

    A template that only prints variables (``echo {{ task.key }} {{ item['path'] }}``) is
    checked by looking the variables up exactly as Jinja would, without rendering: this is
    what keeps validating 100,000 tasks fast (its text comes from the plan and its values
    from the plan's checked data, none of which holds a NUL). Anything else is rendered and
    its output looked at.
    """
    if not is_template(text):
        return
    _sandbox()[1](text, context, shell)


_Render = Callable[[str, Mapping[str, Any], bool], str]
_Check = Callable[[str, Mapping[str, Any], bool], None]


@cache
def _sandbox() -> tuple[_Render, _Check]:
    """The sandbox's render and check, imported (with Jinja2) on first use. Kept here: an
    import statement in every call costs about as much as checking a simple template."""
    from planrun.plan.sandbox import check, render

    return render, check


def render_argv(argv: list[str], context: Mapping[str, Any]) -> list[str]:
    """Render each element separately: an inserted value never splits into more words."""
    return [render(part, context) for part in argv]

"""Templates in plan text, rendered by Jinja2's sandbox (SPEC §2).

Rules:

- Undefined names are errors (``StrictUndefined``); :func:`check` finds them at validate
  time by rendering with the same context shape the run uses.
- Rendering is one pass: a value inserted into a template (a task's description inside a
  prompt, a file name from a glob, an answer typed by a user) is data and is never rendered
  again, so text that happens to contain ``{{`` cannot run anything.
- In a ``{shell: ...}`` command every inserted value is shell-quoted (``finalize``), so
  ``{{ item.path }}`` is one word whatever the file is called. Argv commands are rendered
  element by element and need no quoting.
- Write ``{% raw %}...{% endraw %}`` to keep literal braces.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateProblem(Exception):
    """A template could not be compiled or rendered; ``line`` counts within the template."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(message)


def _quote(value: Any) -> str:
    return shlex.quote("" if value is None else str(value))


def _environment(shell: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_quote if shell else None,
    )
    env.filters["shquote"] = _quote
    return env


_PLAIN = _environment(shell=False)
_SHELL = _environment(shell=True)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@lru_cache(maxsize=4096)
def _compile(text: str, shell: bool) -> jinja2.Template:
    env = _SHELL if shell else _PLAIN
    try:
        return env.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None


def render(text: str, context: Mapping[str, Any], *, shell: bool = False) -> str:
    """Render ``text`` once; raise TemplateProblem naming the undefined or failing part."""
    if not is_template(text):
        return text
    template = _compile(text, shell)
    try:
        return template.render(context)
    except jinja2.UndefinedError as exc:
        raise TemplateProblem(f"template: {exc.message}", _error_line(exc)) from None
    except jinja2.TemplateError as exc:
        raise TemplateProblem(f"template: {exc}", _error_line(exc)) from None
    except Exception as exc:  # a filter or test failed on the values given
        raise TemplateProblem(f"template: {type(exc).__name__}: {exc}") from None


def _error_line(exc: BaseException) -> int | None:
    """The template line of the failure (Jinja rewrites tracebacks to point at templates)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_argv(argv: list[str], context: Mapping[str, Any]) -> list[str]:
    """Render each element separately: an inserted value never splits into more words."""
    return [render(part, context) for part in argv]

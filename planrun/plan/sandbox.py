"""The Jinja2 sandbox that renders plan templates: :mod:`planrun.plan.templates` holds the
rules and the entry points, and imports this module only for text that holds template
syntax (a plan without ``{{``, ``{%`` or ``{#`` never imports Jinja2 at all).

Every loop, operator, call, filter, ``~`` and assembled text goes through the bounds of
:mod:`planrun.plan.template_limits`.
"""

from __future__ import annotations

import difflib
import functools
import shlex
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from planrun.plan import template_limits as limits
from planrun.plan.templates import TemplateProblem, refuse_nul


def _quote(value: Any) -> str:
    return shlex.quote("" if value is None else str(value))


class _PlanEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, bounded (:mod:`planrun.plan.template_limits`), and with one change:
    ``a.b`` on a mapping reads the key ``b`` first.

    Plan data is mappings; a field named like a dict method (a batch's ``item.items``, a
    matrix axis ``values``) must be the field, not the method.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    #: Jinja's ``concat``: the output, ``set`` blocks and macro results are assembled by it.
    concat = staticmethod(limits.joined)
    #: What :class:`_Bounds` makes every ``for`` loop and ``~`` call.
    planrun_loop = staticmethod(limits.counted)
    planrun_concat = staticmethod(limits.concatenated)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree: nodes.Template = _Bounds().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**``, ``+`` and ``%`` with a bound, so that no template can exhaust
        memory or time."""
        limits.tick()
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed")
            return left**right
        if operator == "*" and _repeat_size(left, right) > MAX_REPEAT:
            raise SecurityError(f"repeating text or a list beyond {MAX_REPEAT:,} is not allowed")
        limits.refuse_over(limits.binop_size(operator, left, right))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Calls from templates: loops counted, calls timed and their results bounded."""
        if __obj is limits.counted or __obj is limits.concatenated:
            return __obj(*args)
        limits.tick()
        if isinstance(__obj, LoopContext) and args:  # the next level of a recursive loop
            args = (limits.counted(args[0]), *args[1:])
        elif not isinstance(__obj, Macro):
            _preflight_call(__obj, args, kwargs)
        return limits.checked(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict):
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


class _Bounds(NodeTransformer):
    """Rewrites a parsed template: every ``for`` loop's items are counted
    (``planrun_loop``), and ``~`` is bounded (``planrun_concat``)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        items = node.iter
        assert isinstance(items, nodes.Expr)  # what the parser puts there
        node.iter = _hook("planrun_loop", [items], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _hook("planrun_concat", node.nodes, node.lineno)


def _hook(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    target = nodes.EnvironmentAttribute(name, lineno=lineno)
    return nodes.Call(target, args, [], None, None, lineno=lineno)


def _preflight_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Bound a call before it runs, by its arguments and, for a text's method, by what it
    can build (``'x'.ljust(10**9)``)."""
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "") if isinstance(owner, str) else ""
    plain = {k: v for k, v in kwargs.items() if k not in ("_loop_vars", "_block_vars")}
    limits.preflight(name, owner if isinstance(owner, str) else None, args, plain)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` checked before (:func:`limits.preflight`) and after it runs."""
    skip = 1 if hasattr(func, "jinja_pass_arg") else 0  # the context or environment

    @functools.wraps(func)  # keeps jinja_pass_arg
    def bounded(*args: Any, **kwargs: Any) -> Any:
        subject = args[skip] if len(args) > skip else None
        limits.preflight(f"|{name}", subject, args[skip + 1 :], kwargs)
        return limits.checked(func(*args, **kwargs))

    return bounded


MAX_EXPONENT = 100
MAX_REPEAT = 100_000


def _repeat_size(left: Any, right: Any) -> int:
    """How long ``left * right`` is when it repeats a sequence (0 for numbers)."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(count, int):
            return len(sequence) * count
    return 0


def _environment(shell: bool, undefined: type[jinja2.Undefined]) -> ImmutableSandboxedEnvironment:
    env = _PlanEnvironment(
        undefined=undefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_quoted_output if shell else limits.checked,
    )
    env.filters["shquote"] = _quote
    env.filters = {name: _bounded_filter(name, f) for name, f in env.filters.items()}
    env.globals["range"] = limits.bounded_range
    del env.globals["lipsum"]  # paragraphs of lorem ipsum: no use in a plan, and unbounded
    return env


def _quoted_output(value: Any) -> str:
    return _quote(limits.checked(value))


# --- naming what is undefined -------------------------------------------------------------

#: The top-level names of the context being re-rendered to explain an undefined variable.
_TOP_NAMES: ContextVar[tuple[str, ...]] = ContextVar("_TOP_NAMES", default=())


class _Named(dict[str, Any]):
    """A context mapping that knows its path (``task``, ``item``), to explain misses."""

    def __init__(self, path: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self._path = path

    def __bool__(self) -> bool:
        return True


class _NamedNull:
    """Stands in for a top-level ``None`` (``item`` of a task without ``for_each``)."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return ""


class _ExplainingUndefined(jinja2.StrictUndefined):
    """StrictUndefined whose message names the variable path and a close alternative."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name = str(self._undefined_name)
        obj = self._undefined_obj
        if obj is jinja2.utils.missing:
            return _missing_name(name, "", _TOP_NAMES.get())
        if isinstance(obj, _NamedNull):
            if obj._path == "item":
                return f"item.{name} is undefined: this task has no for_each, so it has no item"
            return f"{obj._path}.{name} is undefined: {obj._path} is empty here"
        if isinstance(obj, _Named):
            return _missing_name(name, obj._path, [str(k) for k in obj])
        return f"{name} is undefined on {type(obj).__name__} {obj!r}"


def _missing_name(name: str, path: str, known: Iterable[str]) -> str:
    """``task.nam is undefined (did you mean task.name?)`` or the names that exist."""
    full = f"{path}.{name}" if path else name
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"{full} is undefined (did you mean {path + '.' if path else ''}{close[0]}?)"
    owner = f"{path} has" if path else "templates can use"
    return f"{full} is undefined; {owner} {', '.join(known) if known else 'nothing'}"


def _explained(context: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _wrap(name, value) for name, value in context.items()}


def _wrap(path: str, value: Any) -> Any:
    if value is None:
        return _NamedNull(path)
    if isinstance(value, dict) and not isinstance(value, _Named):
        return _Named(path, {k: _wrap(f"{path}.{k}", v) for k, v in value.items()})
    return value


_PLAIN = _environment(shell=False, undefined=jinja2.StrictUndefined)
_SHELL = _environment(shell=True, undefined=jinja2.StrictUndefined)
_PLAIN_EXPLAIN = _environment(shell=False, undefined=_ExplainingUndefined)
_SHELL_EXPLAIN = _environment(shell=True, undefined=_ExplainingUndefined)


@lru_cache(maxsize=4096)
def _compile(text: str, shell: bool, explain: bool = False) -> jinja2.Template:
    envs = (_SHELL_EXPLAIN, _PLAIN_EXPLAIN) if explain else (_SHELL, _PLAIN)
    env = envs[0] if shell else envs[1]
    try:
        return env.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None


def render(text: str, context: Mapping[str, Any], shell: bool) -> str:
    """:func:`planrun.plan.templates.render` for text that holds template syntax."""
    template = _compile(text, shell)
    try:
        with limits.bounded_render():
            return template.render(context)
    except limits.TemplateLimit as exc:
        raise TemplateProblem(
            f"template: {exc.message} (see README, Template limits)", _error_line(exc)
        ) from None
    except jinja2.UndefinedError as exc:
        raise _explain(text, context, shell, exc) from None
    except SecurityError as exc:
        text = str(exc.message or exc).rstrip(".").replace(" is unsafe", " is not allowed")
        raise TemplateProblem(
            f"template: {text} (templates run in a sandbox)", _error_line(exc)
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateProblem(f"template: {exc}", _error_line(exc)) from None
    except Exception as exc:  # a filter or test failed on the values given
        raise TemplateProblem(f"template: {type(exc).__name__}: {exc}", _error_line(exc)) from None


def _explain(
    text: str, context: Mapping[str, Any], shell: bool, original: jinja2.UndefinedError
) -> TemplateProblem:
    """Render again with named values to say *which* variable is undefined."""
    token = _TOP_NAMES.set(tuple(context))
    try:
        with limits.bounded_render():
            _compile(text, shell, explain=True).render(_explained(context))
    except jinja2.UndefinedError as exc:
        return TemplateProblem(exc.message or str(exc), _error_line(exc))
    except Exception:  # the named values behaved differently: keep Jinja's own words
        pass
    finally:
        _TOP_NAMES.reset(token)
    return TemplateProblem(f"template: {original.message}", _error_line(original))


def check(text: str, context: Mapping[str, Any], shell: bool) -> None:
    """:func:`planrun.plan.templates.check` for text that holds template syntax: a template
    that only prints variables is checked by looking them up as Jinja would; anything else
    is rendered."""
    paths = _printed_paths(text)
    if paths is not None and all(_resolves(path, context) for path in paths):
        return
    refuse_nul(render(text, context, shell))


Lookup = tuple[str, tuple[tuple[bool, str], ...]]


@lru_cache(maxsize=4096)
def _printed_paths(text: str) -> tuple[Lookup, ...] | None:
    """The variable paths a print-only template reads, or None if it does anything else."""
    try:
        tree = _PLAIN.parse(text)
    except jinja2.TemplateSyntaxError:
        return None
    paths: list[Lookup] = []
    for node in tree.body:
        if not isinstance(node, jinja2.nodes.Output):
            return None
        for part in node.nodes:
            if isinstance(part, jinja2.nodes.TemplateData):
                continue
            path = _lookup(part)
            if path is None:
                return None
            paths.append(path)
    return tuple(paths)


def _lookup(node: jinja2.nodes.Node) -> Lookup | None:
    """``task.key`` → ("task", ((True, "key"),)); None for anything but names and lookups."""
    steps: list[tuple[bool, str]] = []
    while True:
        if isinstance(node, jinja2.nodes.Name) and node.ctx == "load":
            return node.name, tuple(reversed(steps))
        if isinstance(node, jinja2.nodes.Getattr):
            steps.append((True, node.attr))
            node = node.node
        elif (
            isinstance(node, jinja2.nodes.Getitem)
            and isinstance(node.arg, jinja2.nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            steps.append((False, node.arg.value))
            node = node.node
        else:
            return None


def _resolves(path: Lookup, context: Mapping[str, Any]) -> bool:
    """Whether the sandbox finds a value (not an Undefined) at ``path``."""
    name, steps = path
    if name not in context:
        return False
    value = context[name]
    for is_attr, step in steps:
        value = _PLAIN.getattr(value, step) if is_attr else _PLAIN.getitem(value, step)
        if isinstance(value, jinja2.Undefined):
            return False
    return True


def _error_line(exc: BaseException) -> int | None:
    """The template line of the failure (Jinja rewrites tracebacks to point at templates)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line

"""Bounds on the work one template render may do, so that no plan can make validation or a
run hang or exhaust memory through its templates (README, "Template limits").

Jinja2's sandbox stops a template from reaching Python's internals, not from looping
10 billion times or building a 10 GB string. :mod:`planrun.plan.sandbox` routes every place
where a template loops, builds a value or assembles text through the checks here:

- ``range()`` gives at most :data:`MAX_RANGE` items, and all loops of one render together
  iterate at most :data:`MAX_ITERATIONS` times (recursive loops included);
- no value a template builds or prints (an operator's or a filter's or method's result, an
  output, a ``set`` block, a macro's result, the output itself) may hold more than
  :data:`MAX_TEXT` characters, counting what lists and mappings hold. Operations whose result
  can be far larger than their inputs (``center``, ``replace``, ``indent``, ``format``
  widths, ``join``, ...) are estimated *before* they run, so the memory is never taken;
- one render may take at most :data:`MAX_SECONDS` seconds, checked at each loop
  iteration, call, filter and operator.

Every bound raises :class:`TemplateLimit`, which the sandbox turns into a located error.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

#: Items in one ``range()``.
MAX_RANGE = 10_000
#: Loop iterations in one render, all loops together.
MAX_ITERATIONS = 100_000
#: Characters in the output, and in any value a template builds on the way.
MAX_TEXT = 4 * 2**20
#: Wall time of one render.
MAX_SECONDS = 10.0


class TemplateLimit(SecurityError):
    """A template went past one of the bounds; the message says which."""


@dataclass
class _Budget:
    deadline: float
    iterations: int = 0
    #: weights of containers already measured in this render: id → (object, weight)
    weights: dict[int, tuple[Any, int]] = field(default_factory=dict)


_BUDGET: ContextVar[_Budget | None] = ContextVar("_BUDGET", default=None)


@contextmanager
def bounded_render() -> Iterator[None]:
    """The scope of one render: its time and loop budget."""
    token = _BUDGET.set(_Budget(time.monotonic() + MAX_SECONDS))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def tick() -> None:
    """TemplateLimit once the render's time is up (no-op outside a render)."""
    budget = _BUDGET.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise TemplateLimit(f"this template ran for more than {MAX_SECONDS:g} s")


# --- loops ----------------------------------------------------------------------------------


def bounded_range(*args: int) -> range:
    """``range()`` with at most :data:`MAX_RANGE` items."""
    items = range(*args)
    if len(items) > MAX_RANGE:
        shown = ", ".join(str(a) for a in args)
        raise TemplateLimit(f"range({shown}) has more than {MAX_RANGE:,} items")
    return items


def counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """``iterable``, counting each item against the render's :data:`MAX_ITERATIONS`."""
    budget = _BUDGET.get()
    for item in iterable:
        if budget is not None:
            budget.iterations += 1
            if budget.iterations > MAX_ITERATIONS:
                raise TemplateLimit(
                    f"this template loops more than {MAX_ITERATIONS:,} times in all"
                )
            if budget.iterations % 256 == 0:
                tick()
        yield item


# --- sizes ----------------------------------------------------------------------------------


def weight(value: Any) -> int:
    """Characters ``value`` holds: a text's length, a container's items (each at least 1)
    added up; other values weigh 1. Stops adding past :data:`MAX_TEXT`. A list that holds
    the same string 1,000 times weighs 1,000 times that string: joined or printed, it is."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, Namespace):
        value = value._Namespace__attrs
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return 1
    budget = _BUDGET.get()
    memo = budget.weights if budget is not None else {}
    known = memo.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    total = 1
    for item in value.items() if isinstance(value, dict) else value:
        total += weight(item)
        if total > MAX_TEXT:
            break
    memo[id(value)] = (value, total)
    return total


def refuse_over(size: int) -> None:
    """TemplateLimit if a value of ``size`` characters would be too large."""
    if size > MAX_TEXT:
        raise TemplateLimit(f"this template builds a value of more than {MAX_TEXT:,} characters")


def checked(value: Any) -> Any:
    """``value``, or TemplateLimit if it weighs more than :data:`MAX_TEXT`."""
    if not isinstance(value, str) or len(value) > MAX_TEXT:  # text: the common case, fast
        refuse_over(weight(value))
    return value


def joined(pieces: Iterable[Any]) -> str:
    """``"".join(pieces)`` (Jinja's ``concat``: the output, ``set`` blocks, macro results)
    that stops once the text would pass :data:`MAX_TEXT` characters."""
    kept: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_TEXT:
            refuse_over(size)
        kept.append(piece)
    return "".join(kept)


def concatenated(*parts: Any) -> str:
    """The ``~`` operator, bounded."""
    tick()
    refuse_over(sum(weight(p) for p in parts))
    return "".join(str(p) for p in parts)


def preflight(name: str, subject: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """TemplateLimit if calling the method ``name`` (a filter: ``|name``) on ``subject``
    could build more than :data:`MAX_TEXT` characters, before it runs."""
    tick()
    size = weight(subject) + sum(weight(a) for a in args) + sum(weight(v) for v in kwargs.values())
    estimate = _ESTIMATES.get(name)
    if estimate is not None:
        with contextlib.suppress(TypeError, ValueError, IndexError):  # the call will refuse
            size = max(size, estimate(subject, args, kwargs))
    refuse_over(size)


def binop_size(operator: str, left: Any, right: Any) -> int:
    """How large ``left OPERATOR right`` can be, for ``+``, ``*`` and ``%``."""
    if operator == "+":
        return weight(left) + weight(right)
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                return weight(sequence) * max(count, 0)
        return 0
    if operator == "%" and isinstance(left, str):
        values = right if isinstance(right, tuple) else (right,)
        return _formatted(left, values, {})
    return 0


# --- estimates of operations that can build much more than they are given -----------------

_NUMBER = re.compile(r"\d+")
_NESTED_FIELD = re.compile(r"\{[^{}]*\{")
_Estimate = Callable[[Any, Sequence[Any], Mapping[str, Any]], int]


def _arg(
    args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any
) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _padded(subject: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    return max(len(_text(subject)), _int(_arg(args, kwargs, 0, "width", 0)))


def _formatted(subject: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """A format string's widths are numbers in it, or ints passed for a ``*`` (``%*s``) or
    a nested field (``{:>{}}``)."""
    text = _text(subject)
    widths = sum(int(n) for n in _NUMBER.findall(text))
    values = (*args, *kwargs.values())
    if "*" in text or _NESTED_FIELD.search(text):
        widths += sum(_int(v) for v in values)
    return len(text) + widths + sum(weight(v) for v in values)


def _replaced(subject: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    text, old = _text(subject), _text(_arg(args, kwargs, 0, "old", ""))
    new = _text(_arg(args, kwargs, 1, "new", ""))
    times = text.count(old) if old else len(text) + 1
    count = _arg(args, kwargs, 2, "count", None)
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(text) + times * len(new)


def _joined_by(separator: str, items: Any) -> int:
    count = len(items) if isinstance(items, Sequence | Mapping) else 0
    return weight(items) + count * len(separator)


def _indented(subject: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    width = _arg(args, kwargs, 0, "width", 4)
    per_line = len(width) if isinstance(width, str) else _int(width)
    text = _text(subject)
    return len(text) + (text.count("\n") + 1) * per_line


def _wrapped(subject: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    text = _text(subject)
    width = max(_int(_arg(args, kwargs, 0, "width", 79)), 1)
    wrap = _text(_arg(args, kwargs, 2, "wrapstring", "\n"))
    return len(text) + (len(text) // width + 1) * len(wrap)


def _translated(subject: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    table = _arg(args, kwargs, 0, "table", {})
    longest = max((weight(v) for v in table.values()), default=1) if isinstance(table, dict) else 1
    return len(_text(subject)) * max(longest, 1)


def _tabs(subject: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    text = _text(subject)
    return len(text) + text.count("\t") * _int(_arg(args, kwargs, 0, "tabsize", 8))


#: Filters and methods with the same arguments.
_BOTH: dict[str, _Estimate] = {"center": _padded, "format": _formatted, "replace": _replaced}
#: By name: a method (``'x'.center(9)``), or a filter after ``|`` (``'x' | center(9)``).
_ESTIMATES: dict[str, _Estimate] = {
    **_BOTH,
    **{f"|{name}": estimate for name, estimate in _BOTH.items()},
    "ljust": _padded,
    "rjust": _padded,
    "zfill": _padded,
    "expandtabs": _tabs,
    "format_map": _formatted,
    "translate": _translated,
    "join": lambda s, a, k: _joined_by(_text(s), _arg(a, k, 0, "iterable", ())),
    "|join": lambda s, a, k: _joined_by(_text(_arg(a, k, 0, "d", "")), s),
    "|indent": _indented,
    "|wordwrap": _wrapped,
    "|tojson": lambda s, a, k: weight(s) * (2 + _int(_arg(a, k, 0, "indent", 0))),
    "|slice": lambda s, a, k: _int(_arg(a, k, 0, "slices", 0)),
    "|batch": lambda s, a, k: _int(_arg(a, k, 0, "linecount", 0)),
}

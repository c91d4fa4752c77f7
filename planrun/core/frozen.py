"""``@frozen``: planrun's immutable records, frozen where it is checked and cheap to define.

``@dataclass(frozen=True)`` makes Python generate and compile two more methods per class
(``__setattr__`` and ``__delattr__``, which refuse every assignment); on Python 3.11 that
is 140 µs more per class than a plain dataclass, and planrun defines some 80 such records
before ``apply`` starts: 11 ms, 7% of a one-task apply (bench/RESULTS.md). So a record is
declared with ``@frozen`` instead:

- for the type checker it is a frozen dataclass (:pep:`681`'s ``frozen_default``): mypy
  (strict, in ``ci/check``) rejects any assignment to a field, as it does for
  ``frozen=True``;
- at run time it is a dataclass with value equality and a hash of its fields, as a frozen
  one has (usable in sets and as a key); assigning a field is not refused at run time,
  which the type check already rules out.

Everything else is the dataclass's: :func:`dataclasses.fields`, :func:`~dataclasses.replace`,
:func:`~dataclasses.asdict`, ``kw_only``, ``slots``, ``order``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform, overload

_T = TypeVar("_T")


@overload
def frozen(cls: type[_T], /) -> type[_T]: ...


@overload
def frozen(
    *, kw_only: bool = False, slots: bool = False, order: bool = False
) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(
    cls: type[_T] | None = None,
    /,
    *,
    kw_only: bool = False,
    slots: bool = False,
    order: bool = False,
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """Declare an immutable record (see the module docstring)."""

    def make(target: type[_T]) -> type[_T]:
        return dataclass(unsafe_hash=True, kw_only=kw_only, slots=slots, order=order)(target)

    return make if cls is None else make(cls)

"""Everything compiling a plan learns from outside its text, asked through one place.

A plan's text does not decide its compiled form alone: project folders (are they bare
repositories?), the state folder (is it in git's data, a system folder, the home folder?),
symlinks that ``resolve`` follows, ``prompt_file`` and ``lines`` files, and the files a
``glob`` sees. Compiling asks each of these questions through a function of this module;
while :func:`recording` is active every question is kept with a digest of its answer (or of
the error it raised). :func:`unchanged` asks them all again: the compiled plan is still
what compiling would make if every answer is the same (:mod:`planrun.plan.cache`).

This module imports nothing of the plan's schema models, so that checking a cached plan
costs only the questions themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from planrun.plan import files, paths

#: One question: the function's name, its arguments, and a digest of what it answered.
Probe = tuple[str, tuple[Any, ...], str]

P = ParamSpec("P")
R = TypeVar("R")

_PROBES: dict[str, Callable[..., Any]] = {}
_seen: ContextVar[list[Probe] | None] = ContextVar("planrun_plan_probes", default=None)


def _probe(fn: Callable[P, R]) -> Callable[P, R]:
    """Record every call of ``fn`` while :func:`recording` is active."""
    _PROBES[fn.__name__] = fn

    @wraps(fn)
    def asked(*args: P.args, **kwargs: P.kwargs) -> R:
        seen = _seen.get()
        if seen is None:
            return fn(*args, **kwargs)
        assert not kwargs, "probes take positional arguments only"
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            seen.append((fn.__name__, tuple(args), _error_digest(error)))
            raise
        seen.append((fn.__name__, tuple(args), _digest(result)))
        return result

    return asked


@contextmanager
def recording() -> Iterator[list[Probe]]:
    """Keep every question asked through this module in the list yielded."""
    seen: list[Probe] = []
    token = _seen.set(seen)
    try:
        yield seen
    finally:
        _seen.reset(token)


#: The name of the record that makes a compile not cacheable (never a probe's name).
NOT_CACHEABLE = "not cacheable"


def not_cacheable(reason: str) -> None:
    """Compiling read something no probe can ask again cheaply (a tracker over the
    network): the plan must not be cached."""
    seen = _seen.get()
    if seen is not None:
        seen.append((NOT_CACHEABLE, (reason,), ""))


def cacheable(probes: Sequence[Probe]) -> bool:
    return all(name != NOT_CACHEABLE for name, _, _ in probes)


def unchanged(probes: Sequence[Probe]) -> bool:
    """Whether every question gets the answer it got when ``probes`` were recorded."""
    for name, args, digest in probes:
        fn = _PROBES.get(name)
        if fn is None:
            return False
        try:
            answer = _digest(fn(*args))
        except Exception as error:
            answer = _error_digest(error)
        if answer != digest:
            return False
    return True


def _digest(value: object) -> str:
    return hashlib.sha256(repr(value).encode("utf-8", "surrogatepass")).hexdigest()


def _error_digest(error: BaseException) -> str:
    return "!" + _digest((type(error).__name__, str(error)))


# --- the questions -----------------------------------------------------------------------


@_probe
def resolved(path: Path) -> Path:
    """``path`` made absolute, symlinks followed (:meth:`Path.resolve`, not strict)."""
    return path.resolve()


@_probe
def file_kind(path: Path) -> Literal["file", "folder", "other", "missing"]:
    """What is at ``path``, following symlinks."""
    if path.is_file():
        return "file"
    if path.is_dir():
        return "folder"
    return "other" if path.exists() else "missing"


@_probe
def read_text(path: Path) -> str:
    """The UTF-8 text of the file at ``path`` (OSError, UnicodeDecodeError as they come)."""
    return path.read_text(encoding="utf-8")


@_probe
def project_path_problem(path: Path) -> str | None:
    """:func:`planrun.plan.paths.project_path_problem`."""
    return paths.project_path_problem(path)


@_probe
def state_dir_problem(path: Path) -> str | None:
    """:func:`planrun.plan.paths.state_dir_problem` (reads ``HOME``)."""
    return paths.state_dir_problem(path)


@_probe
def glob_files(pattern: str, root: Path, exclude: Path | None) -> list[str]:
    """:func:`planrun.plan.files.glob_files` (asks git what it tracks and ignores)."""
    return files.glob_files(pattern, root, exclude)


__all__ = [
    "NOT_CACHEABLE",
    "Probe",
    "cacheable",
    "file_kind",
    "glob_files",
    "not_cacheable",
    "project_path_problem",
    "read_text",
    "recording",
    "resolved",
    "state_dir_problem",
    "unchanged",
]

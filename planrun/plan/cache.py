"""The compiled-plan cache: a plan compiled once loads without YAML, schema models or
compiling on the next command, for as long as nothing it was compiled from has changed.

An entry is kept per plan file (by its real path) and holds the compiled plan, the key it
was made under and the questions compiling asked outside the text (:mod:`planrun.plan.probes`,
with digests of their answers). It is used only when

- the key matches: the plan's bytes, its real path, the Python version, and planrun's
  version with the size and modification time of every module that compiles a plan or
  defines what a compiled plan holds (so an edited planrun never reads an old entry);
- and every question gets the same answer again: the same project folders, state folder,
  symlinks, ``prompt_file`` and ``lines`` texts, and the same files seen by each ``glob``.

Only plans that compiled without a problem are kept, so every error is reported as fresh,
and never a plan that read a tracker (its items are read again by every command).
Anything wrong with an entry (unreadable, from another version, not ours) is a miss.

``PLANRUN_PLAN_CACHE`` chooses the folder; ``off`` turns the cache off. The default is
``$XDG_CACHE_HOME/planrun/plans`` (``~/.cache/planrun/plans``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from planrun import __version__
from planrun.plan import probes
from planrun.plan.resolved import CompiledPlan

CACHE_ENV = "PLANRUN_PLAN_CACHE"
_FORMAT = 1
_PACKAGE = Path(__file__).resolve().parent.parent
#: What a compiled plan is made by and made of: an edit here changes every key.
_SOURCES = ("plan", "core")


def fetch(path: Path, text: bytes) -> CompiledPlan | None:
    """The cached compiled plan of ``path`` whose content is ``text``, if still valid."""
    entry = _entry(path)
    if entry is None or not entry.is_file():
        return None
    try:
        if not _ours(entry.parent):
            return None
        with open(entry, "rb") as file:
            form, key, asked, plan = pickle.load(file)
    except Exception:  # a damaged or foreign entry is a miss, whatever unpickling raised
        return None
    if form != _FORMAT or key != _key(path, text) or not isinstance(plan, CompiledPlan):
        return None
    return plan if probes.unchanged(asked) else None


def keep(path: Path, text: bytes, asked: Sequence[probes.Probe], plan: CompiledPlan) -> None:
    """Keep ``plan`` for ``path`` (best effort: a cache that cannot be written is skipped)."""
    from planrun.atomic import ensure_private_dir, write_atomic

    entry = _entry(path)
    if entry is None or not probes.cacheable(asked):
        return
    try:
        data = pickle.dumps((_FORMAT, _key(path, text), list(asked), plan), protocol=5)
        ensure_private_dir(entry.parent)
        if _ours(entry.parent):
            write_atomic(entry, data)
    except (OSError, pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return


def folder() -> Path | None:
    """Where entries are kept; None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "no") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "planrun" / "plans"


def _entry(path: Path) -> Path | None:
    where = folder()
    if where is None:
        return None
    name = hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()[:32]
    return where / f"{name}.pickle"


def _ours(where: Path) -> bool:
    """Only a folder of this user that nobody else may write into holds entries to load:
    loading one runs code, as importing a module does."""
    info = where.stat()
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _key(path: Path, text: bytes) -> str:
    digest = hashlib.sha256(_code_identity().encode())
    digest.update(os.fsencode(os.path.realpath(path)) + b"\0")
    digest.update(text)
    return digest.hexdigest()


_identity: str | None = None


def _code_identity() -> str:
    """planrun's version, Python's, and the size and mtime of each module of _SOURCES."""
    global _identity
    if _identity is None:
        parts = [__version__, sys.version]
        for name in _SOURCES:
            with os.scandir(_PACKAGE / name) as found:
                for item in sorted(found, key=lambda e: e.name):
                    if item.name.endswith(".py"):
                        info = item.stat()
                        parts.append(f"{name}/{item.name}:{info.st_size}:{info.st_mtime_ns}")
        errors = (_PACKAGE / "errors.py").stat()
        parts.append(f"errors.py:{errors.st_size}:{errors.st_mtime_ns}")
        _identity = "\n".join(parts)
    return _identity


__all__ = ["CACHE_ENV", "fetch", "folder", "keep"]

"""Why a run stopped early, kept for the next apply's recovery: ``journal/<run id>.stopped``.

When a run's journal cannot be written (a full disk, a folder gone read-only), the run
stops, and its end may not be recordable in the store either: without a trace, the next
apply would take the run for a planrun that died. So :func:`mark_stopped` leaves this
file. Creating an empty file needs no data block, which a full disk usually still allows;
the problem is written into it when the disk takes that too. Recovery reads the marks
(:func:`read_stops`), says what happened (:func:`planrun.state.folder.recover`) and
removes them (:func:`clear_stops`). Nothing here raises: a mark that cannot be made leaves
recovery saying what it says after a crash.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

SUFFIX = ".stopped"


def mark_stopped(journal_dir: Path, run_id: str, problem: str) -> None:
    """Leave the mark of run ``run_id``, stopped by ``problem`` (best effort)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(journal_dir / f"{run_id}{SUFFIX}", flags, 0o600)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.write(fd, problem.encode("utf-8", "replace"))
    finally:
        os.close(fd)


def read_stops(journal_dir: Path) -> dict[str, str]:
    """Run id → the problem that stopped it ("" when the disk took no more than the mark)."""
    stops: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for path in journal_dir.glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):
                text = path.read_bytes()[:1000].decode("utf-8", "replace")
                stops[path.name.removesuffix(SUFFIX)] = " ".join(text.split())
    return stops


def clear_stops(journal_dir: Path, run_ids: Iterable[str]) -> None:
    """Remove the marks of ``run_ids`` (once recovery has recorded what they say)."""
    for run_id in run_ids:
        with contextlib.suppress(OSError):
            (journal_dir / f"{run_id}{SUFFIX}").unlink(missing_ok=True)

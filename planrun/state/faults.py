"""The fault seam, FOR TESTS ONLY: die by SIGKILL right after the k-th journal write.

``PLANRUN_FAULT_AT=k`` makes this process send itself SIGKILL right after its k-th
write: a write transaction of a file-backed store, or a record appended to a run's journal
file (:mod:`planrun.state.journal`); the journal applying its records to the store does not count
them again. Tests sweep k over every write of a run to prove that a crash at any point is
recovered. A value that is not a positive integer is a UsageError.
"""

from __future__ import annotations

import os
import signal

from planrun.errors import UsageError

FAULT_ENV = "PLANRUN_FAULT_AT"


class _Writes:
    """Counts the writes of this process (stores and journal files alike)."""

    done = 0


def fault_at_from_env() -> int | None:
    """k from ``PLANRUN_FAULT_AT``, or None when the seam is off."""
    raw = os.environ.get(FAULT_ENV)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{FAULT_ENV} must be a positive integer (tests only), not {raw!r}")
    return value


#: ``PLANRUN_FAULT_AFTER_LANDING=KEY``: die by SIGKILL right after task KEY's work moved
#: the target branch, before anything recorded it (the landing is a write of git's).
LANDING_FAULT_ENV = "PLANRUN_FAULT_AFTER_LANDING"


def after_landing(key: str) -> None:
    """The landing seam: SIGKILL this process if ``PLANRUN_FAULT_AFTER_LANDING`` is ``key``."""
    if os.environ.get(LANDING_FAULT_ENV) == key:
        os.kill(os.getpid(), signal.SIGKILL)


def count_write(fault_at: int | None) -> None:
    """Count one write; the k-th (``fault_at``) kills this process on the spot."""
    if fault_at is None:
        return
    _Writes.done += 1
    if _Writes.done == fault_at:
        os.kill(os.getpid(), signal.SIGKILL)

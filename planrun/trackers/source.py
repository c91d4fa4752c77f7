"""Reading a tracker's items while a plan compiles: :func:`fetch_items`, and nothing else.

Every read of a tracker at compile time goes through :func:`fetch_items` (called by
:meth:`planrun.plan.reads.DiskFiles.tracker_items`): a plan whose tasks fan out over a
tracker depends on more than its own files, so a cache of compiled plans must not keep it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from planrun.plan.expand import ItemError
from planrun.plan.item import Item
from planrun.plan.model import Tracker, TrackerSelect


def fetch_items(
    name: str,
    tracker: Tracker,
    select: TrackerSelect,
    environ: Mapping[str, str] | None = None,
) -> list[Item]:
    """The items of tracker ``name`` that ``select`` chooses, in the tracker's order.

    Raises ItemError with field ``token`` (its variable is not set) or ``tracker`` (the
    extra is not installed, the tracker is unreachable or refuses). No matching item is
    no error: the fan-out then has no tasks (everything may be done and closed).
    """
    environ = os.environ if environ is None else environ
    token = environ.get(tracker.token)
    if not token:
        raise ItemError(
            "token",
            f"tracker {name}: the environment variable {tracker.token} (its token) is not set",
        )
    try:
        from planrun.trackers.base import client_for
        from planrun.trackers.http import TrackerError, with_waits
    except ImportError as exc:  # httpx: the extra
        raise ItemError(
            "tracker",
            f"tracker {name} needs planrun's {tracker.kind} extra: "
            f"pip install 'planrun[{tracker.kind}]' ({exc})",
        ) from None
    client = client_for(name, tracker, token)
    try:
        return with_waits(lambda: client.items(select))
    except TrackerError as exc:
        raise ItemError("tracker", exc.message) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # an answer of odd shape
        raise ItemError(
            "tracker", f"tracker {name} answered something unexpected: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        client.close()

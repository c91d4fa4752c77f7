"""What a running ``planrun serve`` shows other commands, in its state folder.

``serve.json`` says who serves the plan (pid, since when), when it last read the
trackers and when it reads them next, the interval and the runs it has open; it is
rewritten atomically after every poll and removed when serve exits. ``serve.paused`` is
the pause switch: while it exists serve starts nothing new (running tasks go on). A
file, not a signal, so that the pause survives a restart of serve, can be set before
serve starts, and needs no pid: ``planrun serve PLAN --pause`` / ``--resume`` from any
shell that can write the folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from planrun.atomic import write_atomic

STATUS_FILE = "serve.json"
PAUSE_FILE = "serve.paused"


@dataclass
class ServeStatus:
    pid: int
    since: str  # ISO 8601, UTC
    interval: float
    last_poll: str | None = None
    next_poll: str | None = None
    draining: bool = False
    runs: list[str] = field(default_factory=list)  # the runs (passes) still going
    last_problem: str | None = None  # the last poll that failed (a tracker down), if any
    webhooks: dict[str, list[str]] = field(default_factory=dict)  # agent → addresses bound


def write_status(state_dir: Path, status: ServeStatus) -> None:
    data = json.dumps(asdict(status), indent=1).encode()
    write_atomic(state_dir / STATUS_FILE, data)


def remove_status(state_dir: Path) -> None:
    (state_dir / STATUS_FILE).unlink(missing_ok=True)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The status a live serve wrote (None: no serve, or one that died without removing it)."""
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not _alive(data.get("pid")):
        return None
    return data


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def paused(state_dir: Path) -> bool:
    return (state_dir / PAUSE_FILE).exists()


def set_paused(state_dir: Path, pause: bool) -> None:
    """Pause (or resume) dispatch of the serve of this state folder, running or not."""
    path = state_dir / PAUSE_FILE
    if pause:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, b"paused by planrun serve --pause\n")
    else:
        path.unlink(missing_ok=True)

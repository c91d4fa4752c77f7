"""Answers to agents' questions, from ``planrun answer`` to the running apply.

``planrun answer PLAN KEY TEXT`` writes ``<state_dir>/inbox/<task>.answer`` atomically
(mode 0600); the apply that parked the task takes it (reads and deletes it). An answer
posted while no apply runs the task (its apply died) stays there: the next apply runs the
task again and its first question takes it. A file is the simplest channel that works
across processes, terminals and machines sharing the folder.
The apply looks for it every ``POLL`` seconds while the question waits, bounded by the
task's ``input_timeout``: waiting on a condition, not a scheduling interval.
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

from planrun.core.names import sanitize_component
from planrun.sessions.output import open_for_reading

POLL = 0.2
#: An answer is text a person typed: more than this is not read.
MAX_ANSWER_BYTES = 1024 * 1024


def answer_path(state_dir: Path, key: str) -> Path:
    return state_dir / "inbox" / f"{sanitize_component(key)}.answer"


def post_answer(state_dir: Path, key: str, text: str) -> Path:
    path = answer_path(state_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path


async def wait_for_answer(state_dir: Path, key: str, timeout: float) -> str | None:
    """The answer posted for ``key`` within ``timeout`` seconds, or None."""
    path = trio.Path(answer_path(state_dir, key))
    with trio.move_on_after(timeout):
        while True:
            if await path.exists():
                text = _read_answer(Path(path))
                if text is not None:
                    await path.unlink(missing_ok=True)
                    return text
            await trio.sleep(POLL)
    return None


def _read_answer(path: Path) -> str | None:
    """The answer file's text, read without ever blocking; None (left alone) when what is
    there is not a regular file: ``planrun answer`` only ever renames one into place."""
    try:
        fd = open_for_reading(path)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(MAX_ANSWER_BYTES).decode("utf-8", "replace")

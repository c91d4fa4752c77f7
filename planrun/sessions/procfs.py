"""``/proc/<pid>/stat`` (Linux), read the same way wherever planrun identifies a process.

Fields are numbered as in proc(5). The command name (field 2) may hold spaces and
parentheses, so the fields after it are found from its last ``)``.
"""

from __future__ import annotations

import os

#: Field numbers as in proc(5).
STATE, PPID, PGRP, STARTTIME, EXIT_CODE = 3, 4, 5, 22, 52


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (``[0]`` is the state), or None if it is gone.

    Plain ``os`` calls: it is read on the event loop by the session backends.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:  # the process went away between open and read
        return None
    finally:
        os.close(fd)
    return raw[raw.rindex(b")") + 2 :].decode("ascii", "replace").split()


def read_proc(path: str) -> bytes | None:
    """The whole of a ``/proc`` file, or None if it cannot be read (the process is gone,
    a zombie's environment, not ours). Plain ``os`` calls, no file object: read at every
    session's end on the event loop."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
    except OSError:
        return None
    finally:
        os.close(fd)
    return data


def stat_field(fields: list[str], number: int) -> str:
    """Field ``number`` (as in proc(5)) of what :func:`stat_fields` returned."""
    return fields[number - 3]

"""Reading the process table from /proc, for the leak check and process tests."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def alive(pid: int) -> bool:
    s = state(pid)
    return s is not None and s not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


#: pid -> (state, parent pid) of every process: one read of each /proc/PID/stat
Table = dict[int, tuple[str, int]]


def table() -> Table:
    """The process table, read once. Reading /proc costs ~40 us a process; the leak check
    runs after every test, so it reads the table once and asks it everything."""
    found: Table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                found[int(entry)] = (fields[0], int(fields[1]))
    return found


def descendants(root: int, of: Table | None = None) -> list[int]:
    """Live (non-zombie) descendants of ``root`` (in the table ``of``, else read now)."""
    processes = table() if of is None else of
    children: dict[int, list[int]] = {}
    for pid, (_, parent) in processes.items():
        children.setdefault(parent, []).append(pid)
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            stack.append(child)
            if processes[child][0] not in ("Z", "X"):
                found.append(child)
    return found


def reap_orphans(of: Table | None = None) -> None:
    """Reap zombie children that no one else waits for (orphans reparented to us); the
    zombies are those of the table ``of`` if given, else of /proc now."""
    me = os.getpid()
    processes = table() if of is None else of
    for pid, (status, parent) in processes.items():
        if parent == me and status == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

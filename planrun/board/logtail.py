"""A growing log file as lines that are safe to show, for the task page's live tail.

A log holds the output as the task wrote it, escape sequences included (docs/state.md,
"Reading logs"). The tail shows each line as ``planrun logs`` does: without what
:func:`planrun.core.redact.visible` removes (escape sequences, control characters), a line
that ``\\r`` redraws as its last drawing; then the plan's secrets are masked once more
(they were masked when the log was written; this covers a log written before a secret was
declared). Lines are sent to the browser as JSON strings and added as text, never as HTML.

A line is sent once it is complete, or when the attempt has ended; one longer than
:data:`LINE_MAX` is cut there. The first read starts at most :data:`FIRST_READ` bytes
before the end, at a line start.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

from planrun.core.redact import visible
from planrun.sessions.output import read_log

FIRST_READ = 64 * 1024
READ_MAX = 1024 * 1024
LINE_MAX = 4096
_ALL = 1 << 62  # read_log's limit: what the offsets above already bound


def safe_line(raw: str) -> str:
    """One line (no newline) as it may be shown: see the module docstring."""
    if raw.isprintable():
        return raw
    text = visible(raw).rstrip("\r")
    return text[text.rfind("\r") + 1 :]


class Tail:
    """Follows one attempt's log: :meth:`read` returns the complete lines added since."""

    def __init__(self, path: Path, redact: Callable[[str], str]) -> None:
        self.path = path
        self._redact = redact
        self._offset: int | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""

    def read(self, *, final: bool = False) -> list[str]:
        """New complete lines (with ``final``, the unfinished last one too)."""
        if self._offset is None:
            start = max(_size(self.path) - FIRST_READ, 0)
            data = read_log(self.path, start, _ALL) or b""
            self._offset = start + len(data)
            if start and b"\n" in data:
                data = data[data.index(b"\n") + 1 :]  # start at a whole line
        else:  # at most READ_MAX behind the end: a burst beyond that is skipped
            self._offset = max(self._offset, _size(self.path) - READ_MAX)
            data = read_log(self.path, self._offset, _ALL) or b""
            self._offset += len(data)
        text = self._held + self._decoder.decode(data, final=final)
        *lines, self._held = text.split("\n")
        if final and self._held:
            lines.append(self._held)
            self._held = ""
        elif len(self._held) > LINE_MAX:
            lines.append(self._held[:LINE_MAX])
            self._held = self._held[LINE_MAX:]
        return [self._redact(safe_line(line[:LINE_MAX])) for line in lines]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

"""Turning one attempt's output bytes into a redacted log, a tail, lines and pattern events.

:class:`OutputWatcher` is the backend-independent half of watching a session: a backend
(subprocess, pty, tmux) reads bytes however it can and hands them to :meth:`~OutputWatcher.feed`;
the watcher decodes, redacts, logs, keeps the tail, calls ``on_line`` and reports the
patterns it saw as events. It does no I/O besides appending to the log file and never blocks
on anything else, so it works the same inside and outside trio.

Text, in order of processing:

1. bytes are decoded as UTF-8 incrementally (a character split across reads is kept whole;
   invalid bytes become U+FFFD);
2. the text is redacted as a stream (:class:`planrun.core.redact.Redactor`: a secret split
   across reads is still caught; the start of a possible secret is held back meanwhile);
3. the redacted text is appended to ``spec.log_path`` as written, escape sequences included
   (the file is created with the first output: an attempt that prints nothing leaves no
   log and costs no file creation; see :class:`OutputWatcher`);
4. it is cut into lines at ``\\n``. What a *line* shows (``on_line``, the tail, events,
   pattern matching) is the line without ANSI escape sequences and other control characters
   except tab, without trailing ``\\r``, and, when ``\\r`` redraws the line (progress bars),
   only the text after the last ``\\r``; it is redacted once more, since removing escape
   sequences could join the halves of a secret.

Patterns, always searched (``re.search``) in what a line shows:

- ``failure_pattern`` then ``success_pattern``: on complete lines, and on the final
  unterminated line at :meth:`~OutputWatcher.close`; at most one event each per line;
- ``input_pattern`` and each answer's ``expect``: also on the current partial line, since a
  prompt such as ``Proceed? [y/N] `` has no newline. Each *occurrence* fires once: re-reading
  a partial line as it grows, or when it is completed, does not fire again; a new line or a
  ``\\r`` redraw can.

Memory is bounded whatever the child prints: the partial line keeps only its last
:data:`LINE_CAP` characters (longer lines are shown and matched by their end; prompts are
expected there), while the log still receives everything.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import stat
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from planrun.core.frozen import frozen
from planrun.core.redact import Redactor
from planrun.plan.sizes import format_size
from planrun.sessions.base import OnLine, SessionSpec

#: Characters of one line kept in memory; longer lines keep their end.
LINE_CAP = 64 * 1024

_CONTROL = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]                 # CSI: colours, cursor moves
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?      # OSC: titles, hyperlinks (BEL or ST ends it)
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?           # DCS, SOS, PM, APC strings
    | \x1b[ -/]*[0-~]                         # other escapes (charset, keypad modes)
    | [\x00-\x08\x0b\x0c\x0e-\x1f\x7f]        # other C0 controls except tab, LF and CR
    """,
    re.VERBOSE,
)


@frozen
class SuccessMatched:
    """``success_pattern`` matched ``line``: the attempt is done."""

    line: str


@frozen
class FailureMatched:
    """``failure_pattern`` matched ``line``: the attempt failed."""

    line: str


@frozen
class InputRequested:
    """``input_pattern`` matched ``line``: the child asks a question."""

    line: str


@frozen
class AnswerDue:
    """An answer's ``expect`` matched ``line``: type ``send`` (terminal backends)."""

    send: str
    line: str


Event = SuccessMatched | FailureMatched | InputRequested | AnswerDue


def shown_text(raw: str) -> str:
    """What a line shows: no escape sequences or control characters, only the last redraw."""
    text = raw if raw.isprintable() else _CONTROL.sub("", raw)
    text = text.rstrip("\r")
    return text[text.rfind("\r") + 1 :]


#: Log folders known to exist (made or seen by this process): checked once, not per attempt.
_LOG_FOLDERS: set[Path] = set()


def _ensure_log_folder(folder: Path) -> None:
    """Make ``folder`` (0700) and its missing parents, once per process. Raises OSError."""
    if folder in _LOG_FOLDERS:
        return
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _LOG_FOLDERS.add(folder)


class NotRegularLog(OSError):
    """Something other than a regular file (a FIFO, a device, a socket) is at a log's path."""

    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({_file_kind(mode)})", str(path))


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return kind
    return "not a file"


def _mode(path: Path) -> int | None:
    """``lstat(path).st_mode``, or None if that fails."""
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def _regular(fd: int, path: Path) -> int:
    """``fd`` if it is a regular file; else close it and raise :class:`NotRegularLog`."""
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularLog(path, mode)
    except OSError:
        os.close(fd)
        raise
    return fd


#: Never block in ``open`` (a FIFO without a reader, or a device), never follow a symlink at
#: the path itself, never leak the descriptor into a child.
_SAFE = os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_log(path: Path) -> int:
    """Open ``path`` for appending, mode 0600, creating its parent folders (0700 for the last).

    The task knows its log's path (``$PLANRUN_LOG``) and may have put something there first:
    the open never blocks and never follows a symlink, and anything but a regular file is
    refused (:class:`NotRegularLog`). Raises OSError. The common case, a new file in a folder
    that exists, costs one ``open``.
    """
    flags = os.O_WRONLY | os.O_APPEND | _SAFE
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
    except FileExistsError:
        pass
    # appending to an earlier log (hooks, turns), or to what the task put there
    try:
        fd = _regular(os.open(path, flags | os.O_CREAT, 0o600), path)
    except NotRegularLog:
        raise
    except OSError as error:  # e.g. ENXIO: a FIFO nobody reads; ELOOP: a symlink
        mode = _mode(path)
        if mode is not None and not stat.S_ISREG(mode):
            raise NotRegularLog(path, mode) from error
        raise
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def open_for_reading(path: Path) -> int:
    """A descriptor to read the regular file at ``path``, opened without ever blocking (a
    FIFO there would block a plain ``open``) nor following a symlink at the path itself.
    Raises FileNotFoundError, NotRegularLog for anything but a regular file, or OSError."""
    try:
        return _regular(os.open(path, os.O_RDONLY | _SAFE), path)
    except (FileNotFoundError, NotRegularLog):
        raise
    except OSError as error:  # ELOOP: a symlink; ENXIO and the like
        mode = _mode(path)
        if mode is not None and not stat.S_ISREG(mode):
            raise NotRegularLog(path, mode) from error
        raise


def read_log(path: Path, start: int, limit: int) -> bytes | None:
    """The bytes of the log at ``path`` from ``start`` (at most its last ``limit``).

    None when there is no log, or something other than a regular file is there (then it is
    never opened for long: a FIFO would block a plain ``open``). Never blocks.
    """
    try:
        fd = open_for_reading(path)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        position = os.lseek(fd, max(start, size - limit, 0), os.SEEK_SET)
        chunks: list[bytes] = []
        left = size - position
        while left > 0 and (chunk := os.read(fd, min(left, 1024 * 1024))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class OutputWatcher:
    """Processes the output of one attempt; see the module docstring for the rules.

    Construction makes sure the log's folder is there (raises OSError if it cannot be: the
    backend reports that as a startup failure); the log itself is created by the first
    output, and a failure then stops the logging only (:attr:`log_error`). Use:
    :meth:`feed` each read, then :meth:`close` once (also on error and cancellation paths).
    ``clock`` gives :attr:`last_output_at` (pass ``trio.current_time`` under trio);
    ``on_line`` gets each line as shown, in order. Exceptions from ``on_line`` propagate
    out of ``feed``/``close``.
    """

    def __init__(
        self,
        spec: SessionSpec,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_line: OnLine | None = None,
    ) -> None:
        self._spec = spec
        self._clock = clock
        self._on_line = on_line
        self._redactor = Redactor(spec.secrets)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._prompts: list[tuple[re.Pattern[str], Callable[[str], Event]]] = []
        if spec.input_pattern is not None:
            self._prompts.append((spec.input_pattern, InputRequested))
        for answer in spec.answers:
            self._prompts.append((answer.expect, _answer_event(answer.send)))
        self._lines: deque[str] = deque(maxlen=max(spec.tail_lines, 0))
        self._partial = ""  # the current line so far, redacted, at most LINE_CAP chars
        self._dropped = 0  # characters of the current line dropped from its front
        self._segment = 0  # where the current line's last redraw starts (for prompt counts)
        self._fired: dict[int, int] = {}  # prompt index -> occurrences fired in the segment
        self._bytes = 0
        self._lines_seen = 0
        self._last_output_at = clock()
        _ensure_log_folder(spec.log_path.parent)
        self._fd: int | None = None  # the log, once the first output opened it
        self._closed = False
        self._logged = 0  # bytes written to the log by this watcher
        #: The error that stopped log writing (the watcher carries on without a log).
        self.log_error: OSError | None = None
        #: True once ``spec.log_limit`` bytes were logged and the rest no longer is.
        self.log_truncated = False

    def log_notes(self) -> list[str]:
        """What became of the log, when it is not the whole output (for the result)."""
        notes = []
        if self.log_error is not None:
            notes.append(f"log writing failed: {self.log_error.strerror}")
        limit = self._spec.log_limit
        if self.log_truncated and limit is not None:
            notes.append(f"the log stops at settings.log_limit ({format_size(limit)})")
        return notes

    @property
    def output_bytes(self) -> int:
        """Bytes fed so far."""
        return self._bytes

    @property
    def lines_seen(self) -> int:
        """Complete lines so far."""
        return self._lines_seen

    @property
    def last_output_at(self) -> float:
        """``clock()`` at the last non-empty :meth:`feed`, or at construction."""
        return self._last_output_at

    @property
    def tail(self) -> list[str]:
        """The last ``tail_lines`` lines as shown; the final one may still be incomplete."""
        if self._spec.tail_lines <= 0:
            return []
        lines = list(self._lines)
        partial = self._show(self._partial)
        if partial:
            lines.append(partial)
        return lines[-self._spec.tail_lines :]

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def redact(self, text: str) -> str:
        """``text`` with this attempt's secrets masked (for reasons and messages)."""
        return self._redactor.redact(text)

    def feed(self, data: bytes | bytearray) -> list[Event]:
        """Process the next bytes of output; return the events they complete, in order.

        Does nothing after :meth:`close`.
        """
        if self._closed or not data:
            return []
        self._bytes += len(data)
        self._last_output_at = self._clock()
        return self._take(self._redactor.feed(self._decoder.decode(data)))

    def close(self) -> list[Event]:
        """End the stream: log what was held back, finish the last line, close the log.

        Returns the events of that last part. Idempotent (later calls return ``[]``).
        """
        if self._closed:
            return []
        try:
            rest = self._redactor.feed(self._decoder.decode(b"", final=True))
            events = self._take(rest + self._redactor.flush())
            if self._partial:
                events += self._complete_line(self._partial, self._dropped)
            return events
        finally:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _take(self, text: str) -> list[Event]:
        """Log ``text`` (already redacted), complete its lines, check the partial line."""
        if not text:
            return []
        self._write_log(text)
        events: list[Event] = []
        *complete, last = text.split("\n")
        for piece in complete:
            raw = self._partial + piece
            dropped = self._dropped + max(len(raw) - LINE_CAP, 0)
            events += self._complete_line(raw[-LINE_CAP:], dropped)
        raw = self._partial + last
        if len(raw) > LINE_CAP:
            self._dropped += len(raw) - LINE_CAP
            raw = raw[-LINE_CAP:]
        self._partial = raw
        if self._prompts and raw:
            events += self._prompt_events(self._show(raw), raw, self._dropped)
        return events

    def _complete_line(self, raw: str, dropped: int) -> list[Event]:
        """Events of a finished line; record it, hand it to ``on_line``, start a new line."""
        line = self._show(raw)
        events: list[Event] = []
        if self._spec.failure_pattern is not None and self._spec.failure_pattern.search(line):
            events.append(FailureMatched(line))
        if self._spec.success_pattern is not None and self._spec.success_pattern.search(line):
            events.append(SuccessMatched(line))
        if self._prompts:
            events += self._prompt_events(line, raw, dropped)
        self._partial, self._dropped, self._segment, self._fired = "", 0, 0, {}
        self._lines_seen += 1
        self._lines.append(line)
        if self._on_line is not None:
            self._on_line(line)
        return events

    def _prompt_events(self, line: str, raw: str, dropped: int) -> list[Event]:
        """Fire each prompt occurrence in ``line`` (shown ``raw``) that has not fired yet.

        Occurrences are counted per redraw of the line, located by its offset in the line.
        """
        redraw = raw.rstrip("\r").rfind("\r")
        segment = dropped + redraw + 1 if redraw >= 0 else self._continued_segment(dropped)
        if segment != self._segment:
            self._segment, self._fired = segment, {}
        events: list[Event] = []
        for index, (pattern, make) in enumerate(self._prompts):
            count = sum(1 for _ in pattern.finditer(line))
            fired = self._fired.get(index, 0)
            events.extend(make(line) for _ in range(count - fired))
            self._fired[index] = max(count, fired)
        return events

    def _continued_segment(self, dropped: int) -> int:
        """The redraw of a line with no ``\\r`` in view: the known one if text was dropped."""
        return self._segment if dropped > 0 else 0

    def _show(self, raw: str) -> str:
        return self._redactor.redact(shown_text(raw)) if raw else ""

    def _write_log(self, text: str) -> None:
        """Append to the log unbuffered (readers see it at once); on error, stop logging.

        Past ``spec.log_limit`` bytes, a line says so and nothing more is written: a task
        printing without end must not fill the disk (the output is still read, matched
        and kept in the tail).
        """
        if self.log_truncated or self.log_error is not None:
            return
        if self._fd is None:
            try:
                self._fd = _open_log(self._spec.log_path)
            except OSError as error:
                self.log_error = error
                return
        data = text.encode("utf-8", errors="replace")
        limit = self._spec.log_limit
        if limit is not None and self._logged + len(data) > limit:
            data = data[: max(limit - self._logged, 0)] + _truncated(limit)
            self.log_truncated = True
        self._logged += len(data)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as error:
            self.log_error = error
            os.close(self._fd)
            self._fd = None


def _truncated(limit: int) -> bytes:
    return (
        f"\n[planrun: this log reached its limit of {format_size(limit)} (settings.log_limit);"
        " the rest of the output is not logged]\n"
    ).encode()


def _answer_event(send: str) -> Callable[[str], Event]:
    def make(line: str) -> Event:
        return AnswerDue(send=send, line=line)

    return make

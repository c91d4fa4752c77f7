"""``planrun logs PLAN KEY [--attempt N] [--run ID] [--follow] [--raw]``: print an attempt's log.

Which attempt: by default the latest attempt of the latest run of PLAN that ran KEY.
``--attempt N`` picks attempt N (numbers count across runs until the task is done or
forced, so the newest run that has an attempt N of KEY wins); ``--run ID`` looks in that
run only.

Secrets were redacted when the log was written, in the bytes as written *and* in the text
as this command shows it (:mod:`planrun.core.redact`: a secret printed with an escape sequence
or a NUL in the middle is masked too), so ``logs`` needs no secret values: it often runs
where they are not set (another shell, a CI artifact), and ``--raw``, ``cat`` or ``less``
must be as safe as it is.

A task's output is data, never code, so by default the log is printed as text that cannot
drive the terminal (:class:`SafeText`): without what :func:`planrun.core.redact.visible` removes
(escape sequences: CSI ``ESC [ ... final``, OSC ``ESC ] ... BEL|ESC \\``, DCS/SOS/PM/APC
strings, two-byte ``ESC x``, and their 8-bit C1 forms; control characters, C0 and C1,
except newline and tab); a line that ``\\r`` redraws (progress bars) shows only its last
drawing, and ``\\r\\n`` is a line end. The redactor checks that very view (a redraw only
drops text: it cannot join the halves of a secret).
A line is printed once it is complete (or at the end of the log): the unfinished part of
what was read so far waits for the next read, so a sequence or a line split across reads
(``--follow``) is handled whole. ``--raw`` prints the log's bytes exactly as written.

``--follow`` keeps printing new output until that attempt finishes: it polls the store
(read-only) for the attempt's end and the file for growth, and exits once the attempt has
ended and the file is drained. If KEY has not started yet in a live run, it waits for its
first attempt. If the apply running it dies, it says so and exits 1. Ctrl-C exits 130.

Exit codes: 0 printed (whatever the attempt's outcome; the outcome goes to stderr when
following); 1 nothing to print (KEY never ran, or its apply died while following); 2 usage
(an unknown KEY gets a "did you mean"). Never takes the state lock.
"""

from __future__ import annotations

import argparse
import codecs
import os
import re
import sys
import time
from pathlib import Path
from typing import BinaryIO, TextIO

from planrun.core.redact import visible
from planrun.errors import UsageError
from planrun.sessions.output import NotRegularLog, open_for_reading
from planrun.state.locate import Located, locate
from planrun.state.queries import open_readonly, planned_tasks, run_liveness, select_run
from planrun.state.store import AttemptRow, RunRow, StoreReader

POLL_S = 0.1  # how often --follow looks for new output and the attempt's end
_CHUNK = 1 << 16

#: Characters of an unfinished line held back at most; a longer one is printed in pieces.
HOLD_CAP = 1 << 16
#: How far back from the end of a long unfinished line an escape sequence may still start.
_SEQUENCE_WINDOW = 4096

_INTRODUCERS = re.compile(r"[\x1b\x80-\x9f]")


class NothingYet(Exception):
    """KEY is a task of the plan but has no attempt recorded (yet)."""


def run_logs(args: argparse.Namespace, out: TextIO) -> int:
    """Print (and with --follow, keep printing) one attempt's log."""
    located = locate(args.plan, args.state_dir)
    store = open_readonly(located)
    try:
        try:
            run, attempt = find_attempt(store, located, args.key, args.attempt, args.run)
        except NothingYet as exc:
            if not args.follow:
                print(f"planrun: {exc}", file=sys.stderr)
                return 1
            found = _wait_for_first(store, located, args.key, str(exc))
            if found is None:
                return 1
            run, attempt = found
        printer = Printer(out, raw=args.raw)
        if not args.follow:
            _copy(Path(attempt.log_path), 0, printer, final=True)
            return 0
        return follow(store, located, run, attempt, printer)
    finally:
        store.close()


def find_attempt(
    store: StoreReader,
    located: Located,
    key: str,
    number: int | None,
    run_id: str | None,
) -> tuple[RunRow, AttemptRow]:
    """The attempt asked for. UsageError for an unknown KEY (with a suggestion) or run;
    NothingYet when KEY is known but has no such attempt."""
    runs = [select_run(store, located, run_id)] if run_id else _newest_first(store, located)
    for run in runs:
        attempts = store.attempts(run.id, key)
        chosen = [a for a in attempts if number is None or a.n == number]
        if chosen:
            return run, chosen[-1]
    known = _known_keys(store, located, runs[:1])
    if key not in known:
        from planrun.errors import suggest

        raise UsageError(f"no task {key!r} in this plan's state{suggest(key, sorted(known))}")
    which = f"attempt {number} of {key}" if number is not None else f"attempt of {key}"
    where = f" in run {run_id}" if run_id else ""
    raise NothingYet(f"no {which} recorded{where} yet")


def _newest_first(store: StoreReader, located: Located) -> list[RunRow]:
    if located.plan_name is None:
        raise UsageError("name the plan: planrun logs PLAN KEY")
    runs = list(reversed(store.runs(located.plan_name)))
    if not runs:
        raise UsageError(f"{located.db_path} holds no run of plan {located.plan_name!r} yet")
    return runs


def _known_keys(store: StoreReader, located: Located, runs: list[RunRow]) -> set[str]:
    """Task keys the state knows of: ever recorded, or planned in the latest run."""
    known = set(store.task_states(located.plan_name or "")) if located.plan_name else set()
    for run in runs:
        known |= {t.key for t in store.tasks(run.id)}
        known |= {str(t.get("key")) for t in planned_tasks(store.events(run.id))}
    return known


def _wait_for_first(
    store: StoreReader, located: Located, key: str, why: str
) -> tuple[RunRow, AttemptRow] | None:
    """--follow on a task that has not started: wait while its run is live."""
    from planrun.state.lock import read_holder

    run = select_run(store, located)
    print(f"planrun: {why}; waiting for {key} to start in run {run.id}", file=sys.stderr)
    while True:
        attempts = store.attempts(run.id, key)
        if attempts:
            return run, attempts[0]
        current = store.run(run.id) or run
        if run_liveness(current, read_holder(located.state_dir)) != "live":
            print(f"planrun: run {run.id} is over and {key} never started", file=sys.stderr)
            return None
        time.sleep(POLL_S)  # polling the store for the attempt to appear


def follow(
    store: StoreReader, located: Located, run: RunRow, attempt: AttemptRow, printer: Printer
) -> int:
    """Print the log as it grows until the attempt ends (0) or its apply dies (1)."""
    from planrun.state.lock import read_holder

    path = Path(attempt.log_path)
    offset = 0
    while True:
        current = _refresh(store, attempt)
        offset = _copy(path, offset, printer, final=False)
        if current.ended_at is not None:
            _copy(path, offset, printer, final=True)
            print(f"planrun: {_ending(current)}", file=sys.stderr)
            return 0
        latest = store.run(run.id) or run
        if run_liveness(latest, read_holder(located.state_dir)) != "live":
            _copy(path, offset, printer, final=True)
            print(
                f"planrun: the apply running {attempt.key} (pid {latest.pid}) is gone;"
                " the attempt never finished (the next apply marks it interrupted)",
                file=sys.stderr,
            )
            return 1
        time.sleep(POLL_S)  # polling: the store and the file have no change notification


def _refresh(store: StoreReader, attempt: AttemptRow) -> AttemptRow:
    for row in store.attempts(attempt.run_id, attempt.key):
        if row.n == attempt.n:
            return row
    return attempt


def _ending(attempt: AttemptRow) -> str:
    what = f"attempt {attempt.n} of {attempt.key} ended: {attempt.outcome}"
    if attempt.exit_code is not None:
        what += f" (exit code {attempt.exit_code})"
    elif attempt.signal is not None:
        what += f" (signal {attempt.signal})"
    return what


def _copy(path: Path, offset: int, printer: Printer, *, final: bool) -> int:
    """Print the file's bytes from ``offset``; returns the new offset.

    A missing file is empty (the attempt may not have written it yet). ``final`` prints
    what the printer held back (a partial UTF-8 sequence, an unfinished line).
    """
    try:
        with os.fdopen(open_for_reading(path), "rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(_CHUNK):
                offset += len(chunk)
                printer.write(chunk)
    except FileNotFoundError:
        pass
    except NotRegularLog as error:  # a task put a FIFO (or the like) at its log's path
        raise UsageError(
            f"{path} is not a regular file ({error}); planrun will not read it"
        ) from error
    if final:
        printer.finish()
    printer.flush()
    return offset


class Printer:
    """Writes a log's bytes to ``out``: as :class:`SafeText`, or with ``raw`` as they are.

    Raw bytes go to ``out.buffer`` when ``out`` has one (standard output), so nothing is
    decoded or re-encoded; otherwise they are decoded as UTF-8 (invalid bytes replaced).
    """

    def __init__(self, out: TextIO, *, raw: bool) -> None:
        self._out = out
        self._binary: BinaryIO | None = getattr(out, "buffer", None) if raw else None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._safe = None if raw else SafeText()
        if self._binary is not None:
            out.flush()  # whatever was written as text goes first

    def write(self, data: bytes) -> None:
        if self._binary is not None:
            self._binary.write(data)
            return
        text = self._decoder.decode(data)
        self._out.write(text if self._safe is None else self._safe.feed(text))

    def finish(self) -> None:
        """Print what was held back: the end of the stream."""
        if self._binary is not None:
            return
        text = self._decoder.decode(b"", final=True)
        if self._safe is not None:
            text = self._safe.feed(text) + self._safe.finish()
        self._out.write(text)

    def flush(self) -> None:
        (self._binary or self._out).flush()


def safe_line(raw: str) -> str:
    """One line (no ``\\n``) as it may be shown on a terminal: see the module docstring."""
    if raw.isprintable():
        return raw
    text = visible(raw).rstrip("\r")
    return text[text.rfind("\r") + 1 :]


class SafeText:
    """Turns a log's text, fed in pieces of any size, into text safe for a terminal.

    :meth:`feed` returns the complete lines so far, rendered by :func:`safe_line`, and holds
    the unfinished line back: a later piece may finish an escape sequence or redraw the
    line. :meth:`finish` renders what is held (a last line with no newline). An unfinished
    line longer than :data:`HOLD_CAP` characters is printed in pieces as it grows (whatever
    a ``\\r`` redraws is dropped first; the cut is made before an escape sequence that
    may still be arriving), so memory stays bounded whatever the log holds.
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        if "\n" not in text:
            self._held += text
            return self._spill() if len(self._held) > HOLD_CAP else ""
        *lines, self._held = (self._held + text).split("\n")
        shown = "".join(safe_line(line) + "\n" for line in lines)
        return shown + self._spill() if len(self._held) > HOLD_CAP else shown

    def finish(self) -> str:
        held, self._held = self._held, ""
        return safe_line(held)

    def _spill(self) -> str:
        """Print the start of a long unfinished line; keep its end (see the class doc)."""
        held = self._held
        redraw = held.rstrip("\r").rfind("\r")
        if redraw >= 0:
            held = held[redraw + 1 :]  # drawn over: never shown
        if len(held) <= HOLD_CAP:
            self._held = held
            return ""
        last = _last_introducer(held, len(held) - _SEQUENCE_WINDOW)
        cut = len(held) if last is None else last
        self._held = held[cut:]
        return safe_line(held[:cut])


def _last_introducer(text: str, start: int) -> int | None:
    """Where the last ESC or C1 control at or after ``start`` is, if any."""
    found = None
    for match in _INTRODUCERS.finditer(text, start):
        found = match.start()
    return found

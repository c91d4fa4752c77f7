"""``planrun logs`` prints agent output safely, and ``planrun clean`` says what it kept.

Real ``planrun`` processes, real task processes, real git repositories in tmp dirs; waits are
on conditions with deadlines, never bare sleeps.
"""

from __future__ import annotations

import io
import queue
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from planrun.commands.logs import HOLD_CAP, Printer, SafeText, safe_line
from tests import runs
from tests.gitrepo import branches, git, linked_worktrees, make_repos

# What the task prints: a window title (OSC), colours (CSI), a progress bar redrawn with \r.
EVIL = b"\x1b]0;pwned\x07red:\x1b[31mX\x1b[0m\nbar\r50%\r100%\n"
SHOWN = "red:X\n100%\n"


def planrun_bytes(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """``planrun ARGS`` to its end, stdout and stderr as bytes."""
    return subprocess.run(
        [*runs.PLANRUN, *args],
        cwd=cwd,
        env=runs.environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[Any]]]:
    procs: list[subprocess.Popen[Any]] = []
    yield procs
    for proc in procs:
        runs.stop(proc)


class Lines:
    """The lines a background process prints, read by a thread, taken with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def next(self, timeout: float = 20.0) -> str:
        line = self._queue.get(timeout=timeout)
        self.seen.append(line)
        return line.rstrip("\n")

    def rest(self, timeout: float = 20.0) -> list[str]:
        """What is left once the process closed its stdout."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not end"
        left = []
        while not self._queue.empty():
            left.append(self.next())
        return left


# --- logs --------------------------------------------------------------------------------


def test_logs_shows_escape_sequences_as_text_and_raw_gives_the_bytes(
    tmp_path: Path, clean_env: Path
) -> None:
    emit = script(
        tmp_path / "emit.sh",
        "printf '\\033]0;pwned\\007red:\\033[31mX\\033[0m\\nbar\\r50%%\\r100%%\\n'\n",
    )
    plan = runs.write_plan(
        tmp_path, f"version: 1\nname: esc\ntasks:\n  ESC: {{run: [sh, {emit}]}}\n"
    )
    applied = runs.apply(plan)
    assert applied.returncode == 0, applied.stderr
    (log,) = (runs.state_of(plan) / "logs").glob("*/ESC.attempt-1.log")
    assert log.read_bytes() == EVIL  # the log keeps everything

    shown = planrun_bytes("logs", str(plan), "ESC", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == SHOWN.encode()
    assert b"\x1b" not in shown.stdout
    assert b"pwned" not in shown.stdout

    raw = planrun_bytes("logs", str(plan), "ESC", "--raw", cwd=tmp_path)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == EVIL


SECRET = "sk-live-ABCDEF1234567890"


def test_a_secret_split_by_an_escape_sequence_or_a_nul_is_redacted_in_every_view(
    tmp_path: Path, clean_env: Path
) -> None:
    """The log keeps escape sequences, and `logs` removes them: a secret the task printed
    with one (or a NUL) in the middle must not come out whole (issue 13)."""
    emit = script(
        tmp_path / "emit.sh",
        'printf "key: %s\\033[1m%s\\n" "${TOKEN%34567890}" 34567890\n'
        'printf "nul: %s\\000%s\\n" sk-live-ABCD "${TOKEN#sk-live-ABCD}"\n',
    )
    plan = runs.write_plan(
        tmp_path,
        "version: 1\nname: split\nsettings: {secrets: [TOKEN]}\n"
        f"tasks:\n  LEAK: {{run: [sh, {emit}], secrets: [TOKEN]}}\n",
    )
    applied = subprocess.run(
        [*runs.PLANRUN, "apply", str(plan), "--progress", "plain"],
        cwd=tmp_path,
        env=runs.environment(TOKEN=SECRET),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    (log,) = (runs.state_of(plan) / "logs").glob("*/LEAK.attempt-1.log")
    written = log.read_bytes()
    assert b"sk-live-ABCDEF12" not in written  # the task did print it: it was masked
    stripped = written.replace(b"\x1b[1m", b"").replace(b"\x00", b"")
    assert SECRET.encode() not in stripped

    shown = planrun_bytes("logs", str(plan), "LEAK", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert SECRET.encode() not in shown.stdout
    assert shown.stdout == b"key: ***\nnul: ***\n"
    raw = planrun_bytes("logs", str(plan), "LEAK", "--raw", cwd=tmp_path)
    assert raw.stdout == written


def test_logs_follow_handles_a_sequence_and_a_line_split_across_reads(
    tmp_path: Path, clean_env: Path, spawned: list[subprocess.Popen[Any]]
) -> None:
    go1, go2 = tmp_path / "go1", tmp_path / "go2"
    emit = script(
        tmp_path / "emit.sh",
        f"""\
printf 'ready\\nred:\\033[3'
while [ ! -e {go1} ]; do sleep 0.02; done
printf '1mX\\033[0m\\nbar\\r50%%'
while [ ! -e {go2} ]; do sleep 0.02; done
printf '\\r100%%\\n\\033]0;pw'
""",
    )
    plan = runs.write_plan(
        tmp_path, f"version: 1\nname: esc\ntasks:\n  SLOW: {{run: [sh, {emit}]}}\n"
    )
    apply = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    spawned.append(apply)
    logs = runs.state_of(plan) / "logs"
    runs.wait_for(lambda: any(logs.glob("*/SLOW.attempt-1.log")), what="SLOW's first output")

    follow = runs.spawn("logs", str(plan), "SLOW", "--follow", cwd=tmp_path)
    spawned.append(follow)
    raw = subprocess.Popen(
        [*runs.PLANRUN, "logs", str(plan), "SLOW", "--follow", "--raw"],
        cwd=tmp_path,
        env=runs.environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    spawned.append(raw)
    assert follow.stdout is not None
    lines = Lines(follow.stdout)
    # "ready\n" and the start of "\x1b[31m" came in one write: the follower printed the
    # line and holds "red:\x1b[3" back until the rest arrives
    assert lines.next() == "ready"
    assert follow.poll() is None
    go1.touch()
    assert lines.next() == "red:X"
    go2.touch()  # "bar\r50%" waited for its end: only its last drawing shows
    assert lines.next() == "100%"
    assert lines.rest() == []  # the unterminated OSC at the very end prints nothing
    _, err = follow.communicate(timeout=30)
    assert follow.returncode == 0, err
    assert "attempt 1 of SLOW ended: succeeded" in err
    assert not any("\x1b" in line for line in lines.seen)
    assert "".join(lines.seen) == "ready\nred:X\n100%\n"

    raw_out, raw_err = raw.communicate(timeout=30)
    assert raw.returncode == 0, raw_err
    assert raw_out == b"ready\nred:\x1b[31mX\x1b[0m\nbar\r50%\r100%\n\x1b]0;pw"
    _, apply_err = apply.communicate(timeout=30)
    assert apply.returncode == 0, apply_err


def feed_in_pieces(pieces: list[str]) -> str:
    safe = SafeText()
    return "".join(safe.feed(piece) for piece in pieces) + safe.finish()


SAMPLE = (
    "\x1b]0;pwned\x07red:\x1b[31mX\x1b[0m\r\n"  # OSC ended by BEL, CSI, a CRLF line end
    "bar\r50%\r100%\n"  # a progress bar
    "\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\ ok\n"  # OSC hyperlink ended by ST
    "tab\there\x07\x08\x7f\x9b31mC1\x9d2;t\x9c!\n"  # BEL, BS, DEL, 8-bit CSI and OSC
    "\x1bPq#0;2;0;0;0\x1b\\dcs\x1b(Bgone \x1b7é\n"  # DCS string, charset and 2-byte ESC
    "last line, no newline\x1b["  # an unfinished sequence at the very end
)
SAMPLE_SHOWN = "red:X\n100%\nlink ok\ntab\thereC1!\ndcsgone é\nlast line, no newline"


def test_safe_text_whole_and_split_at_every_point() -> None:
    assert feed_in_pieces([SAMPLE]) == SAMPLE_SHOWN
    assert feed_in_pieces(list(SAMPLE)) == SAMPLE_SHOWN  # one character per read
    for cut in range(len(SAMPLE) + 1):
        assert feed_in_pieces([SAMPLE[:cut], SAMPLE[cut:]]) == SAMPLE_SHOWN, cut


def test_safe_text_holds_an_unfinished_sequence_until_the_next_chunk() -> None:
    safe = SafeText()
    assert safe.feed("ok\nred:\x1b[3") == "ok\n"  # the line waits for its end
    assert safe.feed("1mX\x1b") == ""
    assert safe.feed("[0m\nbar\r5") == "red:X\n"
    assert safe.feed("0%\r") == ""
    assert safe.feed("\n") == "50%\n"  # "\r\n" ends the line; it is no redraw
    assert safe.feed("\x1b]0;half a tit") == ""
    assert safe.finish() == ""  # an OSC cut off by the end of the log shows nothing
    assert safe_line("plain text") == "plain text"


def test_safe_text_prints_a_very_long_line_in_pieces() -> None:
    safe = SafeText()
    chunk = "x" * 1000 + "\x1b[1m"
    printed = "".join(safe.feed(chunk) for _ in range(3 * HOLD_CAP // len(chunk)))
    assert printed  # memory is bounded: the line is printed as it grows
    assert len(safe._held) <= HOLD_CAP
    printed += safe.feed("\x1b[0m end\n")
    assert "\x1b" not in printed
    assert printed == "x" * (1000 * (3 * HOLD_CAP // len(chunk))) + " end\n"


def test_printer_keeps_a_character_split_across_reads_whole() -> None:
    out = io.StringIO()
    printer = Printer(out, raw=False)
    for piece in (b"caf\xc3", b"\xa9 \x1b", b"[1mbold\x1b[0m\n"):
        printer.write(piece)
    printer.finish()
    assert out.getvalue() == "café bold\n"


# --- clean -------------------------------------------------------------------------------


def test_clean_exits_1_and_says_how_when_it_keeps_a_dirty_worktree(
    tmp_path: Path, clean_env: Path
) -> None:
    repos = make_repos(tmp_path)
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: cl
projects: {{app: {{path: {repos.clone}, base_branch: main}}}}
defaults: {{project: app}}
tasks:
  OK: {{run: [sh, -c, "echo ok > ok.txt"]}}
  SPARE: {{run: [sh, -c, "exit 1"]}}
  DIRTY: {{run: [sh, -c, "exit 1"]}}
""",
    )
    applied = runs.apply(plan)
    assert applied.returncode == 1, applied.stderr
    worktrees = runs.state_of(plan) / "worktrees"
    assert sorted(p.name for p in worktrees.iterdir()) == ["DIRTY", "SPARE"]
    (worktrees / "DIRTY" / "notes.txt").write_text("my work\n")  # the user's, uncommitted

    first = runs.planrun("clean", str(plan), cwd=tmp_path)  # failed work is not asked for
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""

    cleaned = runs.planrun("clean", str(plan), "--failed", cwd=tmp_path)
    assert cleaned.returncode == 1
    assert f"removed {worktrees / 'SPARE'} and its branch" in cleaned.stdout
    assert not (worktrees / "SPARE").exists()  # the clean one went, in the same call
    assert "planrun/cl/SPARE" not in branches(repos.clone)
    assert (worktrees / "DIRTY" / "notes.txt").read_text() == "my work\n"
    assert worktrees / "DIRTY" in linked_worktrees(repos.clone)
    assert "planrun/cl/DIRTY" in branches(repos.clone)
    err = cleaned.stderr
    assert (
        f"planrun: kept worktree {worktrees / 'DIRTY'} of task DIRTY"
        f" (branch planrun/cl/DIRTY of {repos.clone}): it has uncommitted changes" in err
    )
    assert "planrun: clean kept 1 thing it was asked to remove" in err
    assert "SPARE" not in err

    # the commands it suggests do remove it, for a user who really wants that
    hints = [line.split(": ", 1)[1] for line in err.splitlines() if line.startswith("  ")]
    by_hand = [h for h in hints if " worktree remove --force" in h or " branch -D " in h]
    assert len(by_hand) == 2, err
    for command in by_hand:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, check=False)
        assert done.returncode == 0, (command, done.stderr)
    assert not (worktrees / "DIRTY").exists()
    assert "planrun/cl/DIRTY" not in branches(repos.clone)

    again = runs.planrun("clean", str(plan), "--failed", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""


def test_clean_all_keeps_a_planrun_branch_checked_out_in_the_main_worktree(
    tmp_path: Path, clean_env: Path
) -> None:
    repos = make_repos(tmp_path)
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: cl
projects: {{app: {{path: {repos.clone}, base_branch: main}}}}
defaults: {{project: app}}
tasks:
  BROKEN: {{run: [sh, -c, "exit 1"]}}
""",
    )
    assert runs.apply(plan).returncode == 1
    git(repos.clone, "switch", "-q", "-c", "planrun/cl/MINE")  # the user's checkout
    (repos.clone / "draft.txt").write_text("draft\n")

    cleaned = runs.planrun("clean", str(plan), "--all", cwd=tmp_path)
    assert cleaned.returncode == 1
    assert f"removed {runs.state_of(plan) / 'worktrees' / 'BROKEN'}" in cleaned.stdout
    assert (
        f"planrun: kept branch planrun/cl/MINE in {repos.clone}: it is checked out in"
        f" {repos.clone}, the repository's main worktree" in cleaned.stderr
    )
    assert "worktree remove" not in cleaned.stderr  # never a hint to remove the main one
    assert git(repos.clone, "branch", "--show-current") == "planrun/cl/MINE"
    assert (repos.clone / "draft.txt").read_text() == "draft\n"

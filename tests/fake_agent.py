"""A scripted fake coding-agent CLI for the session backend tests (stdlib only).

Run as ``python tests/fake_agent.py [OPTIONS] [PROMPT]``. It behaves like an interactive
agent: it may ask to trust the folder, reads a prompt, then acts on the prompt's steps.

Where the prompt comes from (one of)::

    PROMPT                 the last argument (default)
    --prompt-stdin         stdin, read to end-of-file
    --prompt-file PATH     the file PATH (UTF-8)
    --prompt-typed         one line typed on the terminal (after printing ``> ``); a bracketed
                           paste (``ESC[200~ ... ESC[201~``) counts as one line, its newlines kept

Other options::

    --yolo                 do not ask ``Trust this folder? [y/N] ``
    --save-prompt PATH     write the prompt exactly as received (UTF-8) to PATH
    --pidfile PATH         append ``PID\\n`` to PATH at start (tests count the starts)
    --do STEP              an extra step run after the prompt's steps (repeatable)

Protocol, in order:

1. prints ``agent started pid=PID``;
2. unless ``--yolo``: prints ``Trust this folder? [y/N] `` (no newline) and reads one line from
   the terminal; ``y`` prints ``trusted``, anything else prints ``not trusted`` and exits 2;
3. reads the prompt and prints ``prompt received (N chars)``;
4. runs the steps: the prompt and each ``--do`` are cut at newlines and ``;`` into segments, and a
   segment whose first word is a step name is run (other text is ignored, so a prompt that merely
   mentions ``done`` does nothing). Steps::

       edit FILE TEXT   write TEXT + "\\n" to FILE (relative to the working folder), print
                        ``edited FILE``
       ask QUESTION     print ``QUESTION? `` (no newline), read a line from the terminal, print
                        ``answer: LINE``
       hang             print ``hanging``, then sleep until killed
       crash            print ``crashing``, exit 3
       silent N         print nothing for N seconds, then ``awake``
       flood MB         print :func:`flood_data` (MB megabytes of varied text lines)
       spawn            start a grandchild that ignores SIGTERM and SIGHUP (like a
                        ``nohup``'d server: the terminal's hangup does not end it either) and
                        sleeps; print ``grandchild pid=PID`` once it ignores them
       done             print ``TASK COMPLETE``, then sleep until killed
       json-result      print a Claude-Code-like ``{"type":"result",...}`` line
       size             print ``size ROWS COLS`` of the terminal on stdout (``size none``)
       cursor           ask the terminal where the cursor is (``ESC[6n``, raw mode, as TUIs do
                        at start) and print ``cursor ROW COL``, or ``cursor none`` when no
                        answer came within 5 s
       env NAME         print ``env NAME=VALUE`` or ``env NAME unset``
       echo TEXT        print TEXT
       wait FILE        wait until FILE exists (no output)
       exit N           exit with status N at once

5. prints ``bye`` and exits 0.

"The terminal" is stdin when stdin is a terminal, else ``/dev/tty`` (as agents read answers
when their stdin is a pipe); without one, a read gets end-of-file (an empty answer). After
each line read from the terminal a newline is printed, since terminal echo may be off. Every
write is flushed at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"

GRANDCHILD = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
print("grandchild pid=%d" % os.getpid(), flush=True)
os.write(int(sys.argv[1]), b"r")
while True:
    time.sleep(60)
"""


def flood_data(megabytes: int) -> bytes:
    """Exactly ``megabytes`` MB (10**6 bytes each) of varied printable lines ending in newline."""
    total = megabytes * 1_000_000
    alphabet = bytes(range(33, 127)) * 3
    chunks: list[bytes] = []
    size = 0
    index = 0
    while size < total:
        width = 20 + index * 37 % 140
        start = index * 7 % 94
        line = b"%08d %s\n" % (index, alphabet[start : start + width])
        chunks.append(line)
        size += len(line)
        index += 1
    data = b"".join(chunks)[:total]
    return data[:-1] + b"\n"


def say(text: str, end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def _open_terminal() -> IO[str] | None:
    if sys.stdin.isatty():
        return sys.stdin
    try:
        return open("/dev/tty", encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_terminal_line() -> str:
    """One line from the terminal, without its newline; a bracketed paste is one line."""
    terminal = _open_terminal()
    if terminal is None:
        return ""
    line = terminal.readline()
    if line.startswith(PASTE_START):
        parts = [line[len(PASTE_START) :]]
        while PASTE_END not in parts[-1]:
            more = terminal.readline()
            if not more:
                break
            parts.append(more)
        line = "".join(parts).split(PASTE_END, 1)[0]
    say("")
    return line.rstrip("\n")


def read_prompt(args: dict[str, str]) -> str:
    if "prompt-stdin" in args:
        return sys.stdin.buffer.read().decode("utf-8", errors="replace")
    if "prompt-file" in args:
        with open(args["prompt-file"], encoding="utf-8") as handle:
            return handle.read()
    if "prompt-typed" in args:
        say("> ", end="")
        return read_terminal_line()
    return args.get("prompt", "")


def sleep_forever() -> None:
    while True:
        time.sleep(60)


def flood(megabytes: str) -> None:
    view = memoryview(flood_data(int(megabytes)))
    while view:
        view = view[os.write(1, view[: 1 << 16]) :]


def spawn() -> None:
    read_end, write_end = os.pipe()
    subprocess.Popen([sys.executable, "-c", GRANDCHILD, str(write_end)], pass_fds=(write_end,))
    os.close(write_end)
    os.read(read_end, 1)
    os.close(read_end)


def terminal_size() -> None:
    try:
        size = os.get_terminal_size(1)
    except OSError:
        say("size none")
        return
    say(f"size {size.lines} {size.columns}")


def cursor_position() -> None:
    import re
    import select
    import termios
    import tty

    terminal = _open_terminal()
    if terminal is None:
        say("cursor none")
        return
    fd = terminal.fileno()
    saved = termios.tcgetattr(fd)
    reply = b""
    try:
        tty.setraw(fd)
        sys.stdout.write("\x1b[6n")
        sys.stdout.flush()
        deadline = time.monotonic() + 5.0
        while not reply.endswith(b"R") and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if ready:
                reply += os.read(fd, 32)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
    found = re.search(rb"\x1b\[(\d+);(\d+)R", reply)
    say(f"cursor {int(found[1])} {int(found[2])}" if found else "cursor none")


def json_result() -> None:
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "All done: edited the files.",
        "usage": {"input_tokens": 1200, "output_tokens": 340},
        "total_cost_usd": 0.01,
    }
    say(json.dumps(result))


def wait_for(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.01)


def ask(question: str) -> None:
    say(f"{question}? ", end="")
    say("answer: " + read_terminal_line())


def edit(rest: str) -> None:
    name, _, text = rest.partition(" ")
    with open(name, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    say(f"edited {name}")


def silent(seconds: str) -> None:
    time.sleep(float(seconds))
    say("awake")


def _exit_now(code: str) -> None:
    sys.stdout.flush()
    os._exit(int(code))


def _announce_then(text: str, then: Callable[[], None]) -> Callable[[str], None]:
    def step(_: str) -> None:
        say(text)
        then()

    return step


ACTIONS: dict[str, Callable[[str], None]] = {
    "edit": edit,
    "ask": ask,
    "hang": _announce_then("hanging", sleep_forever),
    "crash": _announce_then("crashing", lambda: _exit_now("3")),
    "silent": silent,
    "flood": flood,
    "spawn": lambda _: spawn(),
    "done": _announce_then("TASK COMPLETE", sleep_forever),
    "json-result": lambda _: json_result(),
    "size": lambda _: terminal_size(),
    "cursor": lambda _: cursor_position(),
    "env": lambda name: say(
        f"env {name}={os.environ[name]}" if name in os.environ else f"env {name} unset"
    ),
    "echo": say,
    "wait": wait_for,
    "exit": _exit_now,
}
STEPS = frozenset(ACTIONS)


def steps(text: str) -> list[tuple[str, str]]:
    """The (step, rest) segments of ``text`` whose first word names a step."""
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        for segment in line.split(";"):
            word, _, rest = segment.strip().partition(" ")
            if word in STEPS:
                found.append((word, rest.strip()))
    return found


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Options as a dict (flags map to ""), and the ``--do`` steps in order."""
    args: dict[str, str] = {}
    extra: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--yolo", "--prompt-stdin", "--prompt-typed"):
            args[arg[2:]] = ""
        elif arg in ("--prompt-file", "--save-prompt", "--pidfile", "--do"):
            if arg == "--do":
                extra.append(argv[i + 1])
            else:
                args[arg[2:]] = argv[i + 1]
            i += 1
        else:
            args["prompt"] = arg
        i += 1
    return args, extra


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args, extra = parse(argv)
    if "pidfile" in args:
        with open(args["pidfile"], "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
    say(f"agent started pid={os.getpid()}")
    if "yolo" not in args:
        say("Trust this folder? [y/N] ", end="")
        if read_terminal_line().strip().lower() != "y":
            say("not trusted")
            return 2
        say("trusted")
    prompt = read_prompt(args)
    if "save-prompt" in args:
        with open(args["save-prompt"], "w", encoding="utf-8", newline="") as handle:
            handle.write(prompt)
    say(f"prompt received ({len(prompt)} chars)")
    for step, rest in steps(prompt) + [s for text in extra for s in steps(text)]:
        ACTIONS[step](rest)
    say("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A real terminal for the live view: ``planrun apply`` in a tmux pane on a private server.

The pane stays after planrun exits (``remain-on-exit``), so a test reads what a person
would still see, and its exit status. Reading is ``capture-pane``; waiting is always on
what the screen shows, with a deadline (:func:`tests.runs.wait_for`).
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests import runs

#: tmux without the user's configuration: no status line (the pane is the whole window),
#: and a pane that outlives its command
CONFIG = "set -g status off\nset -g remain-on-exit on\nset -g history-limit 2000\n"


class Screen:
    def __init__(self, socket: str, folder: Path) -> None:
        self.socket = socket
        self.config = folder / "tmux.conf"
        self.config.write_text(CONFIG)
        self.folder = folder
        self.started = 0  # sessions started; the last one is the one read
        self.status = folder / ".exit-status-0"  # where the wrapper writes it (see start)

    @property
    def session(self) -> str:
        return f"view{self.started}"

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-f", str(self.config), "-L", self.socket, *args],
            capture_output=True,
            text=True,
            check=False,
            env=runs.environment(CI=""),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, cwd: Path, *args: str, width: int = 100, height: int = 30, **env: str) -> None:
        """``planrun ARGS`` in a new pane of ``width`` × ``height`` (``env``: more variables).

        A shell around it writes its exit status to a file once it has exited (the pane
        stays, so the screen can still be read)."""
        self.started += 1
        self.status = self.folder / f".exit-status-{self.started}"
        wrapper = ["sh", "-c", '"$@"; echo $? > "$0"', str(self.status), *runs.PLANRUN, *args]
        size = ["-x", str(width), "-y", str(height)]
        extra = [f"-e{name}={value}" for name, value in env.items()]
        where = ["-s", self.session, "-c", str(cwd), *size, *extra]
        self.tmux("new-session", "-d", *where, shlex.join(wrapper))

    def text(self) -> str:
        """What the pane shows now, and what scrolled off it (without trailing blank lines)."""
        return self.tmux("capture-pane", "-t", self.session, "-p", "-J", "-S", "-").rstrip("\n")

    def styled(self) -> str:
        """What the pane shows, with its colours and attributes as escape sequences."""
        return self.tmux("capture-pane", "-t", self.session, "-p", "-e")

    def wait_for(self, *needles: str, timeout: float = 30.0) -> str:
        """Wait until the pane shows every one of ``needles``; returns the screen."""
        return self.wait_until(lambda s: all(n in s for n in needles), str(needles), timeout)

    def wait_until(self, condition: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        """Wait until ``condition`` holds for what the pane shows; returns the screen."""
        found: list[str] = []

        def shows() -> bool:
            found[:] = [self.text()]
            return condition(found[0])

        try:
            runs.wait_for(shows, timeout, f"{what} on the screen")
        except AssertionError as error:
            raise AssertionError(f"{error}; the screen:\n{found[0] if found else ''}") from None
        return found[0]

    def exit_status(self, timeout: float = 60.0) -> int:
        """Wait for planrun to exit; its exit status."""
        runs.wait_for(lambda: self.status.exists() and self.status.read_text(), timeout, "exit")
        return int(self.status.read_text())

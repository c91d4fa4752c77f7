"""One synchronous git call for the changes package (clones, pushes): argv only, never a
shell, never a prompt; and the token of an ``https://`` remote as an HTTP header in
git's environment (``GIT_CONFIG_*``), never in argv nor in the URL. Imports no HTTP
client, so cloning a plan's repositories needs no extra."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Mapping

#: Seconds one git command may take.
GIT_TIMEOUT = 300.0


class GitFailed(Exception):
    """``git args`` in ``path`` failed; ``output`` is what it printed."""

    def __init__(self, args: tuple[str, ...], path: str, why: str, output: str = "") -> None:
        super().__init__(f"git {args[0]} in {path} failed: {why}")
        self.output = output

    @property
    def fatal(self) -> str:
        """git's first ``fatal:`` or ``error:`` line (else the message)."""
        lines = self.output.splitlines()
        found = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        return found[0] if found else str(self)


def run_git(
    path: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = GIT_TIMEOUT
) -> str:
    """``git -C path args`` (its stdout); GitFailed naming git's last line when it fails."""
    environ = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    try:
        done = subprocess.run(
            ["git", "-C", path, *args],
            capture_output=True,
            text=True,
            env=environ,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitFailed(args, path, str(exc)) from None
    if done.returncode != 0:
        said = [ln for ln in done.stderr.strip().splitlines() if not ln.startswith("hint:")]
        why = (said or ["(no message)"])[-1]
        raise GitFailed(args, path, why, done.stdout + done.stderr)
    return done.stdout


def url_auth_env(url: str, token: str) -> dict[str, str]:
    """git's environment for ``url``: the token as an HTTP header when it is https."""
    if not token or not url.startswith("https://"):
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    given = os.environ.get("GIT_CONFIG_COUNT", "0")
    n = int(given) if given.isdigit() else 0  # after the user's own GIT_CONFIG_* entries
    return {
        "GIT_CONFIG_COUNT": str(n + 1),
        f"GIT_CONFIG_KEY_{n}": "http.extraHeader",
        f"GIT_CONFIG_VALUE_{n}": f"Authorization: Basic {basic}",
    }

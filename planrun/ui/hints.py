"""The commands a person types to see more of a task or to let it go on, ready to copy.

The plan is named as the user named it on the command line (and ``--state-dir`` repeated
when it was given); keys and paths are shell-quoted, so a fan-out key such as ``t[/tmp]``
pastes as it is.
"""

from __future__ import annotations

import shlex

from planrun.core.frozen import frozen


@frozen
class Hints:
    plan: str = "PLAN"
    state_dir: str | None = None

    def _command(self, verb: str, *args: str) -> str:
        where = ["--state-dir", self.state_dir] if self.state_dir else []
        return shlex.join(["planrun", verb, *where, self.plan, *args])

    def answer(self, key: str) -> str:
        return f"{self._command('answer', key)} TEXT"

    def approve(self, key: str) -> str:
        return self._command("approve", key)

    def logs(self, key: str) -> str:
        return self._command("logs", key)

    def apply(self) -> str:
        return self._command("apply")

    def status(self) -> str:
        return self._command("status")

"""GitHub Actions workflow commands: an annotation per failed task, log tails in groups.

Escaping follows the runner's rules: in a command's message ``%``, ``\\r`` and ``\\n``
become ``%25``, ``%0D`` and ``%0A``; in a property value (``title=``) ``:`` and ``,``
become ``%3A`` and ``%2C`` as well. A task's output is data: lines it printed are shown
between ``::stop-commands::TOKEN`` and ``::TOKEN::`` with a token it cannot know, so a
line such as ``::add-mask::`` or ``::set-env`` in it is shown, never obeyed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error(title: str, message: str) -> str:
    """``::error title=TITLE::MESSAGE``, one line whatever the texts hold."""
    return f"::error title={escape_property(title)}::{escape_data(message)}"


def group(title: str, lines: Iterable[str]) -> list[str]:
    """``lines`` folded under ``title``, with workflow commands off while they are shown."""
    token = secrets.token_hex(16)
    return [
        f"::group::{escape_data(title)}",
        f"::stop-commands::{token}",
        *lines,
        f"::{token}::",
        "::endgroup::",
    ]

"""Git's rules for branch names, checked in pure Python when a plan is validated.

A plan names branches (a task's or project's ``base_branch``, a project's ``target_branch``);
git refuses a bad name only when ``apply`` runs it, after other work may have happened. These
are the rules of ``git check-ref-format --branch`` (git-check-ref-format(1)), so that the
plan is refused up front instead:

- not empty; no ASCII control character (below U+0020, or DEL), space, ``~ ^ : ? * [`` or
  ``\\``; no ``..``; no ``@{``; not ``@`` alone;
- not starting with ``-`` (git would also read the name as an option);
- not starting or ending with ``/``, no ``//``; no component starting with ``.`` or ending
  with ``.lock``; not ending with ``.``;
- not ``HEAD`` (git's name for the current commit, not a branch).

The one difference from ``git check-ref-format --branch``: it accepts ``@`` (git would create
``refs/heads/@``), but everywhere else git reads ``@`` as ``HEAD``, so it is refused here.
Names are text: git's rules are about bytes, and every byte of a character beyond ASCII is
allowed, so only ASCII is looked at.
"""

from __future__ import annotations

import re

#: The characters git refuses anywhere in a ref name (besides control characters and space).
FORBIDDEN = "~^:?*[\\"
_FORBIDDEN_OR_CONTROL = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def branch_problem(name: str) -> str | None:
    """Why git refuses ``name`` as a branch name (which rule it breaks), or None if valid."""
    if not name:
        return "it is empty"
    bad = _FORBIDDEN_OR_CONTROL.search(name)
    if bad is not None:
        return _character(bad.group(), bad.start())
    if name.startswith("-"):
        return "it starts with '-', which git would read as an option"
    if name == "@":
        return "'@' alone is git's short name for HEAD"
    if name == "HEAD":
        return "HEAD is git's name for the current commit, not a branch"
    if ".." in name:
        return "it contains '..'"
    if "@{" in name:
        return "it contains '@{', which git reads as a reflog or upstream reference"
    if name.startswith("/"):
        return "it starts with '/'"
    if name.endswith("/"):
        return "it ends with '/'"
    if "//" in name:
        return "it contains '//' (an empty component)"
    for part in name.split("/"):
        which = f"the component {part!r}" if "/" in name else "it"
        if part.startswith("."):
            return f"{which} starts with '.'"
        if part.endswith(".lock"):
            return f"{which} ends with '.lock'"
    if name.endswith("."):
        return "it ends with '.'"
    return None


def _character(char: str, index: int) -> str:
    where = f" (character {index + 1})"
    if char == "\0":
        return f"it contains a NUL character (\\0){where}"
    if char == " ":
        return f"it contains a space{where}"
    if char < " " or char == "\x7f":
        return f"it contains the control character U+{ord(char):04X}{where}"
    allowed_none = " ".join(FORBIDDEN)
    return f"it contains '{char}'{where}; git allows none of {allowed_none} in a branch name"


def branch_message(name: str, problem: str) -> str:
    """``'a..b' is not a valid git branch name: it contains '..'``."""
    return f"{name!r} is not a valid git branch name: {problem}"

"""Which files a ``glob`` fan-out sees (SPEC §2): what git sees, the same run after run.

In a git work tree the candidates are ``git ls-files --cached --others --exclude-standard``:
tracked files plus untracked ones that are not ignored. So a ``.venv/`` or ``build/`` that
``.gitignore`` names, which no task worktree would have, never becomes a task. Outside git,
every file under the folder. Either way:

- nothing inside the plan's state folder (its worktrees would make the list grow from the
  run's own output), nor inside a ``.git`` folder;
- no path whose real location leaves the folder (a symlink to ``/etc``);
- sorted, so the item list is identical run after run.

The pattern is matched as :meth:`pathlib.Path.glob` matches it (``*``, ``?``, ``[...]`` within
one path segment; ``**`` any number of segments), so both sources agree.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

GIT_TIMEOUT = 60.0  # seconds for ``git ls-files`` of a very large repository


class ListingError(Exception):
    """The folder's files could not be listed (git failed); the message says why."""


def glob_files(pattern: str, root: Path, exclude: Path | None = None) -> list[str]:
    """The files under ``root`` matching ``pattern``, as sorted POSIX paths relative to it."""
    listed = _git_files(root)
    if listed is None:
        candidates = _walked(root, pattern)
    else:
        wanted = glob_regex(pattern)
        candidates = [p for p in listed if wanted.fullmatch(p)]
    real_root = os.path.realpath(root)
    skip = os.path.realpath(exclude) if exclude is not None else None
    return sorted(p for p in set(candidates) if _kept(root, p, real_root, skip))


def _kept(root: Path, relative: str, real_root: str, skip: str | None) -> bool:
    if ".git" in relative.split("/"):
        return False
    real = os.path.realpath(root / relative)
    if os.path.commonpath([real_root, real]) != real_root:
        return False  # a symlink out of the folder
    if skip is not None and os.path.commonpath([skip, real]) == skip:
        return False
    return os.path.isfile(real)


def _walked(root: Path, pattern: str) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.glob(pattern)]


def _git_files(root: Path) -> list[str] | None:
    """What git sees under ``root`` (None when ``root`` is not in a git work tree)."""
    if not _in_work_tree(root):
        return None
    argv = ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others"]
    argv += ["--exclude-standard", "--deduplicate", "--", "."]
    try:
        out = subprocess.run(
            argv, capture_output=True, check=False, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ListingError(f"cannot list the files of {root} with git: {error}") from error
    if out.returncode != 0 and b"not a git repository" in out.stderr:
        return None  # a .git that is not one: walk the folder
    if out.returncode != 0:
        detail = out.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ListingError(f"git ls-files failed in {root}: {detail[0]}")
    return [os.fsdecode(p) for p in out.stdout.split(b"\0") if p]


def _in_work_tree(root: Path) -> bool:
    """Whether ``root`` is inside a git work tree (a ``.git`` above it, not in git's data)."""
    for folder in (root, *root.parents):
        if (folder / ".git").exists():
            return True
        if folder.name == ".git":
            return False
    return False


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching the relative POSIX paths :meth:`Path.glob` would yield for files."""
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    regex = ""
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        if part == "**":
            # a last ``**`` yields folders only (pathlib), never a file
            regex += "(?!)" if last else "(?:[^/]+/)*"
            continue
        regex += _segment(part) + ("" if last else "/")
    return re.compile(regex)


def _segment(part: str) -> str:
    out, i = "", 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[" and (end := part.find("]", i + 2)) != -1:
            body = part[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out += "[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out

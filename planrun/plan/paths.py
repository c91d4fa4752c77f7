"""Folders a plan names that planrun must not work in, found at validation (no git call).

- A project's ``path`` must not be a bare repository, nor a folder of git's own data (a
  ``.git`` folder or anything in one): a task would run there, and worktrees and commits
  would go wrong.
- ``settings.state_dir`` must not be in git's own data (worktrees would land in it), nor a
  system folder (``/``, ``/etc``, anything in ``/proc``, ...), nor the home folder itself.

A git directory is recognised as git recognises one while looking for a repository: a
folder holding ``HEAD`` (a file), ``objects/`` and ``refs/``, met before any folder holding
a ``.git`` (whose work tree it would be).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Folders that are never a state folder themselves (their subfolders may be).
SYSTEM_FOLDERS = frozenset(
    Path(p)
    for p in (
        "/", "/bin", "/boot", "/dev", "/dev/shm", "/etc", "/home", "/lib", "/lib32",
        "/lib64", "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys",
        "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/var", "/var/lib",
        "/var/tmp",
    )
)  # fmt: skip
#: Virtual filesystems: nothing in them is a state folder (but /dev/shm, a tmpfs, may hold one).
VIRTUAL_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))
_TMPFS = Path("/dev/shm")


def git_dir_holding(path: Path) -> Path | None:
    """The git directory that ``path`` (absolute) is, or is in, or None.

    Looks at ``path`` (or the nearest folder above it that exists) and the folders above
    it, as git does; stops at the first folder holding a ``.git`` (a work tree). A folder
    named ``.git`` counts even before it exists.
    """
    for folder in (path, *path.parents):
        if folder.name == ".git":
            return folder
        if (folder / ".git").exists():
            return None
        if _is_git_dir(folder):
            return folder
    return None


def project_path_problem(path: Path) -> str | None:
    """Why tasks cannot run in the project folder ``path`` (absolute), or None."""
    git_dir = git_dir_holding(path)
    if git_dir is None:
        return None
    if git_dir == path and path.name != ".git":
        return (
            f"{path} is a bare git repository, which has no work tree for tasks to run in; "
            "point path at a clone of it"
        )
    return (
        f"{path} is inside the git directory {git_dir}, where git keeps its own data; "
        "point path at the work tree"
    )


def state_dir_problem(path: Path) -> str | None:
    """Why ``path`` (absolute) cannot be a state folder, or None."""
    git_dir = git_dir_holding(path)
    if git_dir is not None:
        return (
            f"{path} is inside the git directory {git_dir}, where git keeps its own data; "
            "choose a folder outside it, such as .planrun next to the plan"
        )
    virtual = any(path == v or v in path.parents for v in VIRTUAL_FOLDERS)
    if path in SYSTEM_FOLDERS or (virtual and _TMPFS not in (path, *path.parents)):
        return (
            f"{path} is a system folder; choose a folder of its own, "
            "such as .planrun next to the plan"
        )
    home = os.environ.get("HOME")
    if home and Path(home).resolve() == path:
        return (
            f"{path} is your home folder; choose a folder of its own, "
            "such as .planrun next to the plan"
        )
    return None


def _is_git_dir(folder: Path) -> bool:
    return (
        (folder / "HEAD").is_file() and (folder / "objects").is_dir() and (folder / "refs").is_dir()
    )

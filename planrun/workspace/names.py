"""The task's worktree folder inside the state folder (names from :mod:`planrun.core.names`)."""

from __future__ import annotations

import os
from pathlib import Path

from planrun.core.names import sanitize_component


def worktree_dir(state_dir: Path, key: str) -> Path:
    """The task's worktree folder ``<state_dir>/worktrees/<key>``, sanitised.

    Raises ValueError if the result would resolve outside ``state_dir`` (for instance because
    ``<state_dir>/worktrees`` is a symlink to somewhere else).
    """
    path = state_dir / "worktrees" / sanitize_component(key)
    root = os.path.realpath(state_dir)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise ValueError(f"worktree folder {path} escapes the state folder {state_dir}")
    return path

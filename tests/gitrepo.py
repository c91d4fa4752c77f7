"""Real git repositories for tests: a bare origin and a clone of it, in a temporary folder.

Synchronous on purpose (setup and assertions, not code under test). Use with the ``clean_env``
fixture so that git reads no user configuration and has an identity.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Repos:
    """``origin`` is bare; ``clone`` is a clone of it on ``main`` with one commit pushed."""

    origin: Path
    clone: Path


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run ``git -C cwd args...``; return stdout (stripped). Raise on failure if ``check``."""
    out = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False
    )
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out.stdout.strip()


def make_repos(root: Path, files: dict[str, str] | None = None) -> Repos:
    """Create ``root/origin.git`` (bare) and ``root/clone`` with ``files`` committed on main.

    The pair is built once per session for each set of files and git environment, and
    copied (a copy of ~70 small files is ~8x cheaper than the six git processes); where
    the user's git configuration could make a difference (a ``~/.gitconfig``), it is built
    in place every time."""
    contents = files or {"README": "hello\n", ".gitignore": "ignored/\n"}
    key = _template_key(contents)
    if key is None:
        return _build(root, contents)
    template = _TEMPLATES.get(key)
    if template is None:
        folder = Path(tempfile.mkdtemp(prefix="repos-", dir=_template_root()))
        template = _TEMPLATES[key] = _build(folder, contents)
    origin = root / "origin.git"
    clone = root / "clone"
    shutil.copytree(template.origin, origin, symlinks=True)
    shutil.copytree(template.clone, clone, symlinks=True)
    config = clone / ".git" / "config"
    text = config.read_text()
    assert str(template.origin) in text, text
    config.write_text(text.replace(str(template.origin), str(origin)))
    return Repos(origin, clone)


#: the session's template pairs of make_repos, by files and git environment
_TEMPLATES: dict[tuple[object, ...], Repos] = {}
_TEMPLATE_ROOT: list[tempfile.TemporaryDirectory[str]] = []


def _template_root() -> str:
    if not _TEMPLATE_ROOT:
        _TEMPLATE_ROOT.append(tempfile.TemporaryDirectory(prefix="planrun-test-repos-"))
    return _TEMPLATE_ROOT[0].name


def _template_key(contents: dict[str, str]) -> tuple[object, ...] | None:
    """What a fresh pair depends on, or None if a git configuration file could change it."""
    home = Path(os.environ.get("HOME", "/nonexistent"))
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    if (home / ".gitconfig").exists() or (xdg / "git" / "config").exists():
        return None
    git_env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("GIT_")))
    return tuple(sorted(contents.items())), git_env


def _build(root: Path, contents: dict[str, str]) -> Repos:
    origin = root / "origin.git"
    clone = root / "clone"
    git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    git(root, "clone", "-q", str(origin), str(clone))
    git(clone, "symbolic-ref", "HEAD", "refs/heads/main")
    for name, text in contents.items():
        write(clone / name, text)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "initial")
    git(clone, "push", "-q", "origin", "main")
    return Repos(origin, clone)


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def commit_file(cwd: Path, name: str, text: str, message: str) -> str:
    """Write one file in the worktree at ``cwd``, commit it, return the new HEAD."""
    write(cwd / name, text)
    git(cwd, "add", "--", name)
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def tip(cwd: Path, ref: str) -> str | None:
    """The commit ``ref`` names, or None."""
    out = git(cwd, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
    return out or None


def subjects(cwd: Path, ref: str) -> list[str]:
    """Commit subjects reachable from ``ref``, newest first (first-parent history)."""
    return git(cwd, "log", "--first-parent", "--format=%s", ref).splitlines()


def parents(cwd: Path, ref: str) -> list[str]:
    """The parents of commit ``ref``."""
    return git(cwd, "rev-list", "--no-walk", "--parents", ref).split()[1:]


def branches(cwd: Path, prefix: str = "refs/heads/") -> list[str]:
    """Short names of the branches under ``prefix``."""
    out = git(cwd, "for-each-ref", "--format=%(refname:short)", prefix)
    return out.splitlines()


def linked_worktrees(cwd: Path) -> list[Path]:
    """Folders of the linked worktrees (the main worktree left out)."""
    lines = git(cwd, "worktree", "list", "--porcelain").splitlines()
    paths = [Path(line.removeprefix("worktree ")) for line in lines if line.startswith("worktree ")]
    return paths[1:]


def find(root: Path, name: str) -> list[Path]:
    """Every file or folder called ``name`` under ``root``."""
    return sorted(root.rglob(name))


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves to somewhere inside ``root`` (resolved)."""
    return path.resolve().is_relative_to(root.resolve())

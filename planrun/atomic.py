"""Writing files so that a crash never leaves half of one: atomic replace, whole writes,
private folders, and the folder fsync that makes a rename durable. Shared by every edge
that writes (the state store and its lock, reports, the namespace claim)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents, each new folder with mode 0700.

    Existing folders keep their mode. Raises OSError when a component is not a folder.
    """
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if not folder.is_dir():
                raise
        else:
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")


def fsync_dir(path: Path) -> None:
    """fsync a folder so that a file just created or renamed in it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new, never half.

    Writes a temporary file ``.<name>.<random>.tmp`` in the same folder (recovery removes
    one a killed planrun left), fsyncs it, ``os.replace``s it over ``path`` and fsyncs the
    folder. The temporary file is removed if anything fails.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (one write for a regular file, unless the disk is full)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

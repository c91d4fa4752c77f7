"""Sizes written as text: ``100MB``, ``5MiB``, ``512KB``, ``1GB`` (a number and a unit)."""

from __future__ import annotations

import re

SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)\s*$"
_SIZE = re.compile(SIZE_PATTERN)
_UNIT = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def parse_size(text: str) -> int:
    """Bytes in ``text``; raises ValueError with a message fit for a user."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size; write it like 100MB, 5MiB or 512KB")
    number = text.strip()[: -len(match.group(2))].strip()
    size = int(float(number) * _UNIT[match.group(2)])
    if size <= 0:
        raise ValueError(f"{text!r}: a size must be more than zero bytes")
    return size


def format_size(size: int) -> str:
    """``size`` bytes in the largest decimal unit that divides it, as :func:`parse_size`
    reads it back: ``100MB``, ``1500KB``, ``7B``."""
    for unit in ("GB", "MB", "KB"):
        if size % _UNIT[unit] == 0:
            return f"{size // _UNIT[unit]}{unit}"
    return f"{size}B"

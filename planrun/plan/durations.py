"""Durations written as text: ``90s``, ``10m``, ``1h30m``, ``1.5h``, ``250ms``, ``2d``."""

from __future__ import annotations

import re

DURATION_PATTERN = r"^\s*(\d+(\.\d+)?(ms|s|m|h|d)\s*)+$"
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(DURATION_PATTERN)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError with a message fit for a user."""
    if not _WHOLE.match(text):
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 10m, 1h30m or 250ms")
    seconds = sum(float(n) * _UNIT[unit] for n, unit in _PART.findall(text.replace(" ", "")))
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest text that :func:`parse_duration` reads back as ``seconds`` (to the ms)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:.3g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)

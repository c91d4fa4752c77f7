"""Plain YAML scalars → values, by the YAML 1.2 core schema (spec 10.3.2).

``no``, ``on`` and ``yes`` stay text, there are no timestamps and no ``1_000``: only null,
booleans, integers (decimal, ``0o``, ``0x``) and floats (with ``.inf`` and ``.nan``). The
text of a float that reads back differently (``3.10`` → 3.1) can be told apart
(:func:`is_lossy_float`), so that errors can say "quote it".
"""

from __future__ import annotations

import math
import re
from typing import Any

_NULLS = {"": None, "~": None, "null": None, "Null": None, "NULL": None}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)
_NUMBER_START = frozenset("-+.0123456789")
_LOSSY_FLOAT = re.compile(r"^[-+]?\d+\.\d*0$")


def core_value(text: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema (``no`` and ``on`` are text)."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text[0] in _NUMBER_START:
        if _INT.fullmatch(text):
            return _int(text)
        if _FLOAT.fullmatch(text):
            return _float(text)
    return text


def _int(text: str) -> int:
    clean = text.replace("_", "")
    sign = -1 if clean.startswith("-") else 1
    digits = clean.lstrip("+-")
    lower = digits.lower()
    if lower.startswith("0o"):
        return sign * int(digits[2:], 8)
    if lower.startswith("0x"):
        return sign * int(digits[2:], 16)
    if lower.startswith("0b"):
        return sign * int(digits[2:], 2)
    return sign * int(digits, 10)


def _float(text: str) -> float:
    lower = text.lower().replace("_", "")
    if lower in (".inf", "+.inf"):
        return math.inf
    if lower == "-.inf":
        return -math.inf
    if lower == ".nan":
        return math.nan
    return float(lower)


def is_lossy_float(text: str) -> bool:
    """True for number text that reads back differently as a float (``3.10`` → ``3.1``)."""
    if not _LOSSY_FLOAT.match(text):
        return False
    return repr(float(text)) != text.lstrip("+")

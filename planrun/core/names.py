"""Deterministic, safe names for the folders and branches planrun derives from task keys.

Pure: no git, no files. A task key can hold anything a fan-out item id holds (``LOG-1[a b]``,
``../x``, ``--upload-pack=...``, unicode); what comes out of :func:`sanitize_component` is one
path component and one git ref component that cannot be an option, cannot climb out of a folder
and cannot collide with the name of a different key:

- it matches ``[A-Za-z0-9_][A-Za-z0-9._-]*``, has no ``..``, does not end in ``.`` or ``.lock``
  and is at most :data:`MAX_COMPONENT` characters long;
- a key that already has that shape (and does not end in ``-`` + 8 hex digits) is kept as is;
  any other key is rewritten and gets ``-`` + the first 8 hex digits of its sha256 appended.
  Kept names never end in ``-<8 hex>`` and rewritten names always do, so a kept name can never
  equal a rewritten one; two rewritten names collide only if the 32-bit hashes of two different
  keys collide (and their rewritten prefixes are equal too).
"""

from __future__ import annotations

import hashlib
import re

MAX_COMPONENT = 80
_HASH_LEN = 8
_PREFIX_MAX = MAX_COMPONENT - _HASH_LEN - 1

_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
_KEPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_HASHED_TAIL = re.compile(r"-[0-9a-f]{8}$")


def _can_keep(key: str) -> bool:
    return (
        len(key) <= MAX_COMPONENT
        and _KEPT.fullmatch(key) is not None
        and ".." not in key
        and not key.endswith((".", ".lock"))
        and _HASHED_TAIL.search(key) is None
    )


def _rewrite(key: str) -> str:
    text = _UNSAFE_RUN.sub("-", key)
    text = _DOTS.sub(".", text)
    text = text.lstrip("-.")[:_PREFIX_MAX].rstrip(".")
    if text.endswith(".lock"):
        text = text[: -len(".lock")] + "-lock"
    return text


def sanitize_component(key: str) -> str:
    """Return the safe, deterministic folder/ref component for ``key`` (see the module doc)."""
    if _can_keep(key):
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    prefix = _rewrite(key)
    return f"{prefix or 'key'}-{digest}"


def branch_name(plan: str, key: str) -> str:
    """The task branch ``planrun/<plan>/<key>``, both parts sanitised."""
    return f"planrun/{sanitize_component(plan)}/{sanitize_component(key)}"


#: Where plans keep their state by default: ``<this>/<plan name>`` next to the plan file.
STATE_PARENT = ".planrun"


def state_folder(plan_name: str, configured: str | None) -> str:
    """A plan's state folder, relative to the plan's folder: ``settings.state_dir`` when
    set, else ``.planrun/<plan name>`` (sanitised), so that plans never share one."""
    return configured or f"{STATE_PARENT}/{sanitize_component(plan_name)}"

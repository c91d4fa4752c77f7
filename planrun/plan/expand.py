"""``for_each`` fan-out: turn one task into one task per item, with stable item ids.

Sources: ``items`` (a list in the plan), ``glob`` (files under the task's project, relative,
sorted), ``matrix`` (the product of named lists, in written order), ``lines`` (non-empty,
non-comment lines of a file) and ``same_as`` (the items of another fanned-out task, each item
needing the item with the same id). ``batch: N`` groups N consecutive items into one task.

Item ids are what keys and branch names are built from, so they are derived from the item
itself (a path, a value, ``a=1,b=x``), never from the order alone, except for batches.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from planrun.plan import probes
from planrun.plan.files import ListingError
from planrun.plan.item import Item
from planrun.plan.model import ForEach


class ItemError(Exception):
    """A fan-out source produced no items or unusable ones.

    ``field`` names the source key (``glob``, ``items``...); ``index``, when known, the
    written element of ``items`` at fault.
    """

    def __init__(self, field: str, message: str, index: int | None = None) -> None:
        self.field = field
        self.message = message
        self.index = index
        super().__init__(message)


MAX_ITEMS = 100_000
MAX_ID_LENGTH = 200


def items_for(
    spec: ForEach,
    root: Path,
    plan_dir: Path,
    root_name: str = "",
    exclude: Path | None = None,
) -> list[Item]:
    """The items of a fan-out (not ``same_as``, which the compiler resolves).

    ``root`` is the folder a glob runs in (the task's project, else the plan's folder) and
    ``root_name`` how messages name it; a glob never lists ``exclude`` (the plan's state
    folder; see :mod:`planrun.plan.files`); ``lines`` files are read relative to ``plan_dir``.
    Raises ItemError when the source yields no items, too many, or ids that cannot name a
    task.
    """
    if spec.items is not None:
        items = _from_values(spec.items)
    elif spec.glob is not None:
        items = _from_glob(spec.glob, root, root_name or str(root), exclude)
    elif spec.matrix is not None:
        items = _from_matrix(spec.matrix)
    elif spec.lines is not None:
        items = _from_lines(spec.lines, plan_dir)
    else:
        raise ItemError("same_as", "same_as is expanded by the compiler")
    _check_ids(items, _source_name(spec))
    return batched(items, spec.batch) if spec.batch else items


def _source_name(spec: ForEach) -> str:
    for name in ("items", "glob", "matrix", "lines"):
        if getattr(spec, name) is not None:
            return name
    return "same_as"


def _from_values(values: Sequence[Any]) -> list[Item]:
    if not values:
        raise ItemError("items", "for_each.items is empty: a fan-out needs at least one item")
    items = []
    for index, value in enumerate(values):
        if isinstance(value, dict):
            ident = value.get("id", value.get("name"))
            if ident is None:
                raise ItemError(
                    "items",
                    f"item {index} is a mapping without an 'id' or 'name' to name it by",
                    index,
                )
            items.append(Item(str(ident), {**value, "id": str(ident), "index": index}))
        elif isinstance(value, list):
            raise ItemError("items", f"item {index} is a list; use a mapping with an 'id'", index)
        else:
            text = _scalar_text(value)
            items.append(Item(text, {"id": text, "value": value, "name": text, "index": index}))
    return items


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _from_glob(pattern: str, root: Path, root_name: str, exclude: Path | None) -> list[Item]:
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise ItemError(
            "glob", f"glob {pattern!r} must stay inside {root_name} (no absolute paths or ..)"
        )
    if probes.file_kind(root) != "folder":
        raise ItemError("glob", f"cannot glob {pattern!r}: {root_name} does not exist")
    try:
        paths = probes.glob_files(pattern, root, exclude)
    except ListingError as exc:
        raise ItemError("glob", str(exc)) from exc
    if not paths:
        raise ItemError("glob", f"glob {pattern!r} matches no file in {root_name}")
    if len(paths) > MAX_ITEMS:
        raise ItemError("glob", f"glob {pattern!r} matches {len(paths)} files (max {MAX_ITEMS})")
    return [
        Item(
            path,
            {
                "id": path,
                "path": path,
                "name": Path(path).name,
                "stem": Path(path).stem,
                "suffix": Path(path).suffix,
                "dir": Path(path).parent.as_posix(),
                "index": index,
            },
        )
        for index, path in enumerate(paths)
    ]


def _from_matrix(matrix: dict[str, list[Any]]) -> list[Item]:
    for name, values in matrix.items():
        if not values:
            raise ItemError("matrix", f"matrix axis {name!r} is empty")
    count = math.prod(len(values) for values in matrix.values())
    if count > MAX_ITEMS:
        raise ItemError("matrix", f"the matrix has {count:,} combinations (max {MAX_ITEMS:,})")
    names = list(matrix)
    items = []
    for index, combo in enumerate(itertools.product(*(matrix[n] for n in names))):
        ident = ",".join(f"{n}={_scalar_text(v)}" for n, v in zip(names, combo, strict=True))
        items.append(
            Item(ident, {**dict(zip(names, combo, strict=True)), "id": ident, "index": index})
        )
    return items


def _from_lines(name: str, plan_dir: Path) -> list[Item]:
    path = probes.resolved(plan_dir / name)
    if probes.file_kind(path) not in ("file", "missing"):
        raise ItemError("lines", f"{name!r} is not a regular file")
    try:
        text = probes.read_text(path)
    except FileNotFoundError:
        raise ItemError(
            "lines", f"file {name!r} does not exist (paths are relative to the plan's folder)"
        ) from None
    except UnicodeDecodeError:
        raise ItemError("lines", f"file {name!r} is not UTF-8 text") from None
    except OSError as exc:
        raise ItemError("lines", f"cannot read file {name!r}: {exc.strerror}") from None
    lines = [ln.strip() for ln in text.splitlines()]
    values = [ln for ln in lines if ln and not ln.startswith("#")]
    if not values:
        raise ItemError("lines", f"file {name!r} has no lines to fan out over")
    return [
        Item(v, {"id": v, "value": v, "name": v, "line": v, "index": i})
        for i, v in enumerate(values)
    ]


def _check_ids(items: list[Item], field: str) -> None:
    """Ids name tasks, branches and folders: non-empty, bounded, unique, no brackets."""
    seen: dict[str, int] = {}
    for item in items:
        ident = item.id
        index = item["index"] if field == "items" else None
        if not ident or len(ident) > MAX_ID_LENGTH or any(c in ident for c in "[]\n\r\t\0"):
            raise ItemError(
                field,
                f"item id {ident!r} cannot name a task: ids are 1-{MAX_ID_LENGTH} characters "
                "without brackets or control characters",
                index,
            )
        if ident in seen:
            raise ItemError(
                field,
                f"item {item['index']} has the same id {ident!r} as item {seen[ident]}; "
                "item ids must be unique",
                index,
            )
        seen[ident] = item["index"]


def batched(items: list[Item], size: int) -> list[Item]:
    """Groups of ``size`` consecutive items; ids are the batch numbers."""
    return [
        Item(
            " ".join(str(i) for i in chunk),
            {
                "id": str(number),
                "index": number,
                "items": chunk,
                "ids": [i.id for i in chunk],
                "paths": [i["path"] for i in chunk if "path" in i],
                "name": ", ".join(str(i.get("name", i.id)) for i in chunk),
            },
        )
        for number, chunk in enumerate(_chunks(items, size))
    ]


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def expanded_key(key: str, item_id: str) -> str:
    return f"{key}[{item_id}]"

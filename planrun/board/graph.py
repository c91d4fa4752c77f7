"""The task graph as boxes and arrows the server lays out (the page loads no script or
font from elsewhere: it must work offline).

Each group (a fan-out, or a parent and its children) is drawn as one box that counts its
work tasks per status (``document ×3: 2 done, 1 running``), coloured by the status that
most needs attention (:data:`planrun.core.mermaid.ATTENTION`), so a fan-out of 300 items
is one box. Boxes stand in columns by depth (the longest chain of needs before them),
left to right; an edge joins a box to each box it waits for. Past :data:`MAX_BOXES` the
rest is counted in one last box rather than drawn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from planrun.core.frozen import frozen
from planrun.core.mermaid import ATTENTION

MAX_BOXES = 300
BOX_W, BOX_H = 200, 40
GAP_X, GAP_Y = 60, 14
LABEL_MAX = 30


@frozen
class Box:
    key: str
    label: str
    detail: str  # the status, or the counts of a group
    status: str
    x: int
    y: int
    href: str | None  # a work task's page; None for a group


@frozen
class Edge:
    path: str  # SVG path data


@frozen
class Drawing:
    width: int
    height: int
    boxes: list[Box]
    edges: list[Edge]
    left_out: int  # tasks not drawn


def draw(planned: Sequence[Mapping[str, Any]], statuses: Mapping[str, str], href: Any) -> Drawing:
    """Lay out the run_plan's tasks (in dependency order) with their ``statuses``;
    ``href(key)`` gives a work task's page."""
    rep = _representatives(planned)
    order = [str(t["key"]) for t in planned if rep[str(t["key"])] == str(t["key"])]
    members: dict[str, list[str]] = {}
    for t in planned:
        if t.get("kind", "work") == "work":
            members.setdefault(rep[str(t["key"])], []).append(str(t["key"]))
    waits = _waits(planned, rep)
    depth: dict[str, int] = {}
    for key in order:  # dependency order: what a box waits for is placed before it
        depth[key] = 1 + max((depth[w] for w in waits.get(key, ()) if w in depth), default=-1)
    drawn = order[:MAX_BOXES]
    rows: Counter[int] = Counter()
    place: dict[str, tuple[int, int]] = {}
    for key in drawn:
        col = depth[key]
        place[key] = (col * (BOX_W + GAP_X) + 10, rows[col] * (BOX_H + GAP_Y) + 10)
        rows[col] += 1
    groups = {str(t["key"]) for t in planned if t.get("kind") == "group"}
    boxes = [_box(k, k in groups, members.get(k, []), statuses, place[k], href) for k in drawn]
    edges = [
        Edge(_curve(place[w], place[k]))
        for k in drawn
        for w in sorted(waits.get(k, ()))
        if w in place
    ]
    width = (max(depth[k] for k in drawn) + 1) * (BOX_W + GAP_X) if drawn else 0
    height = max(rows.values(), default=0) * (BOX_H + GAP_Y) + 10
    left = sum(len(members.get(k, [])) for k in order[MAX_BOXES:])
    return Drawing(width, height, boxes, edges, left)


def _representatives(planned: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each key → the box that draws it: its outermost group, else itself."""
    parent = {str(t["key"]): str(t["parent"]) for t in planned if t.get("parent")}
    known = {str(t["key"]) for t in planned}
    rep = {}
    for key in known:
        top = key
        while top in parent and parent[top] in known:
            top = parent[top]
        rep[key] = top
    return rep


def _waits(planned: Sequence[Mapping[str, Any]], rep: Mapping[str, str]) -> dict[str, set[str]]:
    """Box → the boxes it waits for (a group's own wait on its children is inside it)."""
    waits: dict[str, set[str]] = {}
    for t in planned:
        mine = rep[str(t["key"])]
        for need in t.get("waits_for", ()) or ():
            theirs = rep.get(str(need))
            if theirs is not None and theirs != mine:
                waits.setdefault(mine, set()).add(theirs)
    return waits


def _box(
    key: str,
    group: bool,
    members: list[str],
    statuses: Mapping[str, str],
    at: tuple[int, int],
    href: Any,
) -> Box:
    if group or len(members) != 1 or members[0] != key:
        counts = Counter(statuses.get(k, "pending") for k in members)
        present = set(counts)
        status = next((s for s in ATTENTION if s in present), "pending")
        detail = ", ".join(f"{n} {s}" for s, n in counts.most_common()) or "no tasks"
        label = f"{key} ×{len(members)}"
        return Box(key, _cut(label), detail, status, at[0], at[1], None)
    status = statuses.get(key, "pending")
    return Box(key, _cut(key), status, status, at[0], at[1], href(key))


def _curve(start: tuple[int, int], end: tuple[int, int]) -> str:
    """An edge from the right of the box at ``start`` to the left of the box at ``end``.

    Between neighbouring columns it is one curve; past that it runs along the gap under
    its start's row, which no box covers (every column shares the same rows), so it
    never seems to join a box it passes.
    """
    x1, y1 = start[0] + BOX_W, start[1] + BOX_H // 2
    x2, y2 = end[0], end[1] + BOX_H // 2
    if x2 - x1 <= GAP_X:
        mid = (x1 + x2) // 2
        return f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
    lane = start[1] + BOX_H + GAP_Y // 2
    bend = GAP_X // 2
    return (
        f"M{x1},{y1} C{x1 + bend},{y1} {x1},{lane} {x1 + bend},{lane} "
        f"L{x2 - bend},{lane} C{x2},{lane} {x2 - bend},{y2} {x2},{y2}"
    )


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"

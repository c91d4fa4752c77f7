"""The task graph as a Mermaid flowchart, small enough to render (``planrun graph``,
``--summary``).

Mermaid (and GitHub, which renders it in Markdown) refuses a chart of more than 500 edges
or 50,000 characters, and a chart of a few hundred side-by-side nodes is tens of thousands
of pixels wide. So the drawing:

- collapses a group (a parent or a fan-out) of more than :data:`COLLAPSE_OVER` children
  into one node that counts its work tasks per status (``document ×300: 280 done, 20
  failed``); if the chart is still too big, every group with more than one child;
- then, if it must, draws the tasks in dependency order until one more would pass
  :data:`MAX_EDGES`, :data:`MAX_NODES` or :data:`MAX_TEXT`, and ends with one node that
  counts the tasks left out;
- colours each node by status (``classDef``); a collapsed node takes the status that most
  needs attention among its tasks;
- writes every label quoted, cut to :data:`LABEL_MAX` characters, with each character that
  means something to Mermaid, Markdown or HTML as a numeric entity code (``#35;`` for
  ``#``), as Mermaid's documentation says to escape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from planrun.core.frozen import frozen

COLLAPSE_OVER = 12
MAX_EDGES = 499
MAX_NODES = 200
MAX_TEXT = 40_000
LABEL_MAX = 80

#: the status a collapsed node shows: the first of these that any of its tasks has
ATTENTION = (
    "failed",
    "cancelled",
    "needs_input",
    "in_review",
    "running",
    "retrying",
    "skipped",
    "ready",
    "pending",
    "done",
)

#: fill, stroke and text colour per status (pending and ready keep Mermaid's default)
STYLES = {
    "done": "fill:#dcfce7,stroke:#16a34a,color:#14532d",
    "failed": "fill:#fee2e2,stroke:#dc2626,color:#7f1d1d",
    "cancelled": "fill:#ffedd5,stroke:#ea580c,color:#7c2d12",
    "skipped": "fill:#f3f4f6,stroke:#9ca3af,color:#4b5563",
    "running": "fill:#dbeafe,stroke:#2563eb,color:#1e3a8a",
    "retrying": "fill:#dbeafe,stroke:#2563eb,color:#1e3a8a,stroke-dasharray:4 2",
    "needs_input": "fill:#fef9c3,stroke:#ca8a04,color:#713f12",
    "in_review": "fill:#fef9c3,stroke:#ca8a04,color:#713f12",
}

#: characters an edge line (``  t12 --> t345``) or a class entry (``t12,``) takes, at most
_EDGE_TEXT, _CLASS_TEXT = 24, 8

_PLAIN = frozenset(" _-.,:/()[]+=@'!?*×…")


@frozen(slots=True)
class Node:
    """One task to draw: its key, whether it is a group, and what it waits for, each with
    whether that is one of its children (a dashed edge) rather than a need."""

    key: str
    group: bool
    waits: tuple[tuple[str, bool], ...] = ()


def draw(nodes: Sequence[Node], statuses: Mapping[str, str] | None = None) -> str:
    """The flowchart of ``nodes`` (in dependency order), labelled with ``statuses``."""
    chart = _Chart(nodes, COLLAPSE_OVER)
    if not chart.fits():
        chart = _Chart(nodes, 1)
    return chart.render(statuses)


class _Chart:
    """``nodes`` with every group of more than ``over`` children drawn as one node."""

    def __init__(self, nodes: Sequence[Node], over: int) -> None:
        self.nodes = nodes
        self.rep = _representatives(nodes, over)
        self.shown = [n for n in nodes if self.rep[n.key] == n.key]
        self.edges = _edges(nodes, self.rep)
        self.members: dict[str, list[str]] = {}
        for node in nodes:
            if not node.group:
                self.members.setdefault(self.rep[node.key], []).append(node.key)

    def fits(self) -> bool:
        return len(self.edges) <= MAX_EDGES and len(self.shown) <= MAX_NODES

    def render(self, statuses: Mapping[str, str] | None) -> str:
        labels = [self._label(node, statuses) for node in self.shown]
        boxes = [
            _node_line(f"t{n}", label, node.group)
            for n, (node, (label, _)) in enumerate(zip(self.shown, labels, strict=True))
        ]
        kept = self._kept([len(box) for box in boxes])
        ids = {node.key: n for n, node in enumerate(self.shown[:kept])}
        lines = ["graph TD", *boxes[:kept]]
        left = [k for node in self.shown[kept:] for k in self.members.get(node.key, [])]
        if left:
            label = f"… {len(left)} more tasks not drawn" + _counts(left, statuses)
            lines.append(f'  more["{_escape(label, len(label))}"]')
        drawn = [
            (ids[b], ids[a], dashed)
            for (b, a), dashed in self.edges.items()
            if b in ids and a in ids
        ]
        for before, after, dashed in sorted(drawn):
            lines.append(f"  t{before} {'-.->' if dashed else '-->'} t{after}")
        classes: dict[str, list[str]] = {}
        for n, (_, status) in enumerate(labels[:kept]):
            if status in STYLES:
                classes.setdefault(status, []).append(f"t{n}")
        for status, members in classes.items():
            lines.append(f"  classDef {status} {STYLES[status]}")
            lines.append(f"  class {','.join(members)} {status}")
        return "\n".join(lines) + "\n"

    def _kept(self, sizes: Sequence[int]) -> int:
        """How many of ``shown`` (a prefix, its node lines ``sizes`` long) fit the limits."""
        incident: dict[str, list[str]] = {}
        for before, after in self.edges:
            incident.setdefault(before, []).append(after)
            incident.setdefault(after, []).append(before)
        kept: set[str] = set()
        edges = text = 0
        for n, node in enumerate(self.shown):
            new = sum(1 for other in incident.get(node.key, []) if other in kept)
            edges += new
            text += sizes[n] + 1 + _EDGE_TEXT * new + _CLASS_TEXT
            if n >= MAX_NODES or edges > MAX_EDGES or text > MAX_TEXT:
                return n
            kept.add(node.key)
        return len(self.shown)

    def _label(self, node: Node, statuses: Mapping[str, str] | None) -> tuple[str, str | None]:
        members = self.members.get(node.key, [])
        if not (node.group and members):
            status = None if statuses is None else statuses.get(node.key, "")
            return (node.key if status is None else f"{node.key}: {status}"), status
        label = f"{node.key} ×{len(members)}" + _counts(members, statuses)
        if statuses is None:
            return label, None
        present = {statuses.get(k, "") for k in members}
        return label, next((s for s in ATTENTION if s in present), None)


def _representatives(nodes: Sequence[Node], over: int) -> dict[str, str]:
    """Each key → the node that draws it: its outermost ancestor group of more than
    ``over`` children, else itself."""
    parent = {child: node.key for node in nodes for child, is_child in node.waits if is_child}
    size = Counter(parent.values())
    rep: dict[str, str] = {}
    for node in nodes:
        top, at = node.key, node.key
        while True:
            if size[at] > over:
                top = at
            if at not in parent:
                break
            at = parent[at]
        rep[node.key] = top
    return rep


def _edges(nodes: Sequence[Node], rep: Mapping[str, str]) -> dict[tuple[str, str], bool]:
    """The edges between drawn nodes, each once; dashed only if every edge it stands for
    joins a child to its group."""
    edges: dict[tuple[str, str], bool] = {}
    for node in nodes:
        for before, is_child in node.waits:
            if before not in rep:
                continue
            pair = (rep[before], rep[node.key])
            if pair[0] != pair[1]:
                edges[pair] = edges.get(pair, True) and is_child
    return edges


def _counts(keys: Sequence[str], statuses: Mapping[str, str] | None) -> str:
    if statuses is None:
        return ""
    counts = Counter(statuses.get(k) or "unknown" for k in keys)
    return ": " + ", ".join(f"{n} {status}" for status, n in counts.most_common())


def _node_line(ident: str, label: str, group: bool) -> str:
    text = _escape(label, LABEL_MAX)
    return f'  {ident}[["{text}"]]' if group else f'  {ident}["{text}"]'


def _escape(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, safe inside a quoted Mermaid label in Markdown:
    letters, digits and a few harmless marks stay, anything else is ``#<code>;``."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "".join(c if c.isalnum() or c in _PLAIN else f"#{ord(c)};" for c in text)

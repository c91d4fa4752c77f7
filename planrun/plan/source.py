"""YAML text → plain Python data, keeping a way back from any data path to ``file:line:col``.

The plan is composed into ruamel.yaml's node tree (YAML 1.2, C parser when available) and
converted here rather than by ruamel's constructors, so that planrun decides every rule:

- duplicate keys are errors (merged keys overridden by explicit ones are not duplicates);
- anchors, aliases and ``<<`` merge keys work, but the expanded document is bounded in node
  count and depth, so an alias bomb is a clear error instead of a hang;
- only the YAML 1.2 core scalars exist (``no`` stays a string); explicit tags other than the
  standard ones are errors; mapping keys are always the key's text as written;
- a plain float whose text loses information as a number (``3.10`` → 3.1) is remembered so
  that errors can say "quote it".

Nothing here reads files: the caller passes the text and a name to report it under.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from planrun.errors import Diagnostic, Location, PlanError

MAX_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 64
#: The expanded document may have this many nodes beyond a multiple of the written ones.
NODE_ALLOWANCE = 200_000
NODE_FACTOR = 16

_TAG = "tag:yaml.org,2002:"
_LOSSY_FLOAT = re.compile(r"^[-+]?\d+\.\d*0$")


@dataclass(frozen=True)
class Source:
    """A composed YAML document: the data and the node tree it came from."""

    name: str
    text: str
    data: Any
    root: Node

    def locate(self, path: tuple[str | int, ...], *, key: bool = False) -> Location:
        """The location of the value at ``path`` (or of its key, with ``key=True``).

        Walks as far as the path exists in the tree and returns the deepest place found,
        so a missing key reports the mapping that should have held it.
        """
        node: Node = self.root
        key_node: Node | None = None
        for part in path:
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
        target = key_node if key and key_node is not None else node
        return self.location_of(target)

    def location_of(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.name, mark.line + 1, mark.column + 1)

    def raw_text(self, path: tuple[str | int, ...]) -> str | None:
        """The scalar text at ``path`` exactly as written, or None if it is not a scalar."""
        node: Node = self.root
        for part in path:
            found = _child(node, part)
            if found is None:
                return None
            node = found[1]
        return node.value if isinstance(node, ScalarNode) else None


def parse(text: str | bytes, name: str) -> Source:
    """Compose and convert a YAML document; raise PlanError with every problem found."""
    if len(text) > MAX_BYTES:
        raise PlanError.single(
            Location(name), f"the file is {len(text)} bytes; plans are limited to {MAX_BYTES}"
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PlanError.single(
                Location(name), f"not UTF-8 text (byte {exc.start}: {exc.reason})"
            ) from None
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise PlanError.single(Location(name, 1, 1), "the plan is empty")
    root = _compose(text, name)
    converter = _Converter(name, _count_nodes(root))
    data = converter.convert(root, 0)
    if converter.diagnostics:
        raise PlanError(converter.diagnostics)
    return Source(name, text, data, root)


def _compose(text: str, name: str) -> Node:
    yaml = YAML(typ="safe")
    yaml.version = (1, 2)
    try:
        nodes = list(yaml.compose_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (
            Location(name, mark.line + 1, mark.column + 1) if mark is not None else Location(name)
        )
        problem = exc.problem or exc.context or "invalid YAML"
        raise PlanError.single(where, f"YAML syntax error: {problem}") from None
    except YAMLError as exc:
        raise PlanError.single(Location(name), f"YAML error: {exc}") from None
    except RecursionError:
        raise PlanError.single(Location(name), "the YAML is nested too deeply") from None
    if len(nodes) != 1:
        where = Location(name, 1, 1)
        if len(nodes) > 1:
            mark = nodes[1].start_mark
            where = Location(name, mark.line + 1, mark.column + 1)
        raise PlanError.single(where, "a plan file holds exactly one YAML document")
    root = nodes[0]
    if root is None:
        raise PlanError.single(Location(name, 1, 1), "the plan is empty")
    return root  # type: ignore[no-any-return]


def _count_nodes(root: Node) -> int:
    """Distinct nodes as written (aliases share their node), iteratively."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for k, v in node.value:
                stack.append(k)
                stack.append(v)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return len(seen)


class _Converter:
    def __init__(self, name: str, written: int) -> None:
        self.name = name
        self.budget = written * NODE_FACTOR + NODE_ALLOWANCE
        self.expanded = 0
        self.diagnostics: list[Diagnostic] = []
        self._active: set[int] = set()

    def _loc(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.name, mark.line + 1, mark.column + 1)

    def _fail(self, node: Node, message: str) -> None:
        self.diagnostics.append(Diagnostic(self._loc(node), message))

    def convert(self, node: Node, depth: int) -> Any:
        self.expanded += 1
        if self.expanded > self.budget:
            raise PlanError.single(
                self._loc(node),
                "the document expands to too many nodes through aliases (an alias bomb?); "
                f"limit is {self.budget}",
            )
        if depth > MAX_DEPTH:
            raise PlanError.single(self._loc(node), f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self._active:
            raise PlanError.single(self._loc(node), "an alias refers to itself (recursive YAML)")
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                self._check_tag(node, "seq")
                return [self.convert(item, depth + 1) for item in node.value]
            if isinstance(node, MappingNode):
                self._check_tag(node, "map")
                return self._mapping(node, depth)
        finally:
            self._active.discard(id(node))
        self._fail(node, f"unsupported YAML node {type(node).__name__}")
        return None

    def _check_tag(self, node: Node, kind: str) -> None:
        if node.tag != _TAG + kind:
            self._fail(node, f"YAML tag {node.tag!r} is not supported here")

    def _mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Node] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _TAG + "merge":
                merges.append(value_node)
                continue
            key = self._key(key_node)
            if key is None:
                continue
            if key in first_seen:
                first = first_seen[key].start_mark.line + 1
                self._fail(key_node, f"duplicate key {key!r} (first defined on line {first})")
                continue
            first_seen[key] = key_node
            result[key] = self.convert(value_node, depth + 1)
        for merged in self._merge_sources(merges):
            for key, value in self._mapping(merged, depth).items():
                result.setdefault(key, value)
        return result

    def _merge_sources(self, merges: list[Node]) -> Iterator[MappingNode]:
        for value in merges:
            items = value.value if isinstance(value, SequenceNode) else [value]
            for item in items:
                if isinstance(item, MappingNode):
                    yield item
                else:
                    self._fail(item, "a merge key (<<) takes a mapping or a list of mappings")

    def _key(self, node: Node) -> str | None:
        if not isinstance(node, ScalarNode):
            self._fail(node, "mapping keys must be plain text, not a list or mapping")
            return None
        return str(node.value)

    def _scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        text: str = node.value
        if tag == _TAG + "str" or node.style in ("'", '"', "|", ">"):
            return text
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return text.lower() == "true"
        if tag == _TAG + "int":
            return _int(text)
        if tag == _TAG + "float":
            return _float(text)
        if tag == _TAG + "timestamp":
            return text
        self._fail(node, f"YAML tag {tag!r} is not supported")
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
    return bool(_LOSSY_FLOAT.match(text))


def _child(node: Node, part: str | int) -> tuple[Node, Node] | None:
    if isinstance(node, SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            item: Node = node.value[part]
            return item, item
        return None
    if isinstance(node, MappingNode):
        return _find_key(node, str(part), set())
    return None


def _find_key(node: MappingNode, key: str, seen: set[int]) -> tuple[Node, Node] | None:
    if id(node) in seen:
        return None
    seen.add(id(node))
    merges = []
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode):
            if key_node.tag == _TAG + "merge":
                merges.append(value_node)
            elif key_node.value == key:
                return key_node, value_node
    for value in merges:
        for item in value.value if isinstance(value, SequenceNode) else [value]:
            if isinstance(item, MappingNode):
                found = _find_key(item, key, seen)
                if found is not None:
                    return found
    return None

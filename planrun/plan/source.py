"""YAML text → plain Python data, keeping a way back from any data path to ``file:line:col``.

The plan is composed into ruamel.yaml's node tree (YAML 1.2, C parser when available) and
converted here rather than by ruamel's constructors, so that planrun decides every rule:

- duplicate keys are errors (merged keys overridden by explicit ones are not duplicates);
- anchors, aliases and ``<<`` merge keys work, but the expanded document is bounded in node
  count and depth, so an alias bomb is a clear error instead of a hang;
- only the YAML 1.2 core schema's scalars exist (``no`` and ``on`` stay text, no timestamps,
  no ``1_000``): plain scalars are resolved by :mod:`planrun.plan.scalars`, not by ruamel,
  which is also the larger part of the speed on big plans; explicit tags other than the
  standard ones are errors; mapping keys are always the key's text as written;
- a plain float whose text loses information as a number (``3.10`` → 3.1) can be told
  from its text (:meth:`Source.raw_text`), so that errors can say "quote it";
- text that is not UTF-8, control characters, tabs used for indentation and a second
  document are errors with a line and column, like every other problem;
- a NUL character, which only a double-quoted escape (``"\\0"``, ``"\\x00"``) can write, is an
  error in any key or text: every string of a plan may end up in a command's arguments, its
  environment or a file name, and none of them can hold one.

Nothing here reads files: the caller passes the text and a name to report it under.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag

from planrun.core.frozen import frozen
from planrun.errors import Diagnostic, Location, PlanError
from planrun.plan.load import MAX_BYTES
from planrun.plan.scalars import core_value as core_value  # both re-exported: tests use them
from planrun.plan.scalars import is_lossy_float as is_lossy_float
from planrun.plan.unusable import locate_failures

MAX_DEPTH = 64
#: The expanded document may hold this many values beyond a multiple of its length: a
#: document of n characters holds at most about n/2 values as written, so the factor lets
#: aliases multiply a document sixteen-fold before it counts as a bomb.
NODE_ALLOWANCE = 200_000
NODE_FACTOR = 8

_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"
#: shared tags: plain scalars are resolved by :func:`core_value`, not by ruamel
_PLAIN_TAG = Tag(suffix="tag:planrun.dev,2026:plain")
_MERGE_TAG = Tag(suffix=_MERGE)
_STR_TAG = Tag(suffix=_TAG + "str")
_SEQ_TAG = Tag(suffix=_TAG + "seq")
_MAP_TAG = Tag(suffix=_TAG + "map")
_NUL_IN_TEXT = (
    "this text contains a NUL character (\\0), which cannot be passed to a process; remove it"
)
_NUL_IN_KEY = "this key contains a NUL character (\\0), which cannot be used in a name; remove it"


class _CoreResolver(VersionedResolver):
    """Tags every plain scalar as "plain" (resolved later, by the YAML 1.2 core schema).

    ruamel's own resolver costs more than parsing itself on large plans and knows tags the
    core schema does not (``=``, timestamps, ``1_000``); this one returns shared tags.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Tag:
        if kind is ScalarNode:
            if implicit[0]:
                return _MERGE_TAG if value == "<<" else _PLAIN_TAG
            return _STR_TAG
        return _SEQ_TAG if kind is SequenceNode else _MAP_TAG


@frozen
class Source:
    """A composed YAML document: the data and the node tree it came from.

    Lookups from a data path back to nodes index each mapping the first time it is searched,
    so locating every key of a 100,000-task plan stays linear.
    """

    name: str
    text: str
    data: Any
    root: Node
    #: Duplicate keys: the document holds each key's first value, so what validating it
    #: finds is reported with them, in one pass.
    problems: tuple[Diagnostic, ...] = ()
    #: Values that YAML itself refuses (a tag, a NUL character, a merge of a non-mapping):
    #: each at its data path, and whether the problem is that path's key. Validation cuts
    #: them away and reports them with its own problems (:mod:`planrun.plan.salvage`).
    unusable: tuple[tuple[tuple[str | int, ...], bool, Diagnostic], ...] = ()
    _keys: dict[int, dict[str, tuple[Node, Node]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def locate(self, path: tuple[str | int, ...], *, key: bool = False) -> Location:
        """The location of the value at ``path`` (or of its key, with ``key=True``).

        Walks as far as the path exists in the tree and returns the deepest place found,
        so a missing key reports the mapping that should have held it.
        """
        node: Node = self.root
        key_node: Node | None = None
        for part in path:
            found = self._child(node, part)
            if found is None:
                break
            key_node, node = found
        target = key_node if key and key_node is not None else node
        return self.location_of(target)

    def locate_line(self, path: tuple[str | int, ...], line: int | None) -> Location | None:
        """Where line ``line`` of the text at ``path`` is in the file, if that is knowable.

        Exact for one-line scalars and literal blocks (``|``), whose lines are the file's;
        None for folded or multi-line flow scalars and for paths that are not scalars.
        """
        node = self._node(path)
        if not isinstance(node, ScalarNode) or not line:
            return None
        if node.style == "|":
            index = node.start_mark.line + line  # 0-based: the indicator's line, then content
            lines = self.text.splitlines()
            if index >= len(lines):
                return None
            text = lines[index]
            return Location(self.name, index + 1, len(text) - len(text.lstrip(" ")) + 1)
        if line == 1 and node.start_mark.line == node.end_mark.line:
            return self.location_of(node)
        return None

    def location_of(self, node: Node) -> Location:
        """The 1-based place where ``node`` starts."""
        mark = node.start_mark
        return Location(self.name, mark.line + 1, mark.column + 1)

    def locate_each(self, path: tuple[str | int, ...]) -> list[Location]:
        """The location of every element of the sequence at ``path`` (empty if none)."""
        node = self._node(path)
        if not isinstance(node, SequenceNode):
            return []
        return [self.location_of(item) for item in node.value]

    def raw_text(self, path: tuple[str | int, ...]) -> str | None:
        """The scalar text at ``path`` exactly as written, or None if it is not a scalar."""
        node = self._node(path)
        return node.value if isinstance(node, ScalarNode) else None

    def _node(self, path: tuple[str | int, ...]) -> Node | None:
        node: Node = self.root
        for part in path:
            found = self._child(node, part)
            if found is None:
                return None
            node = found[1]
        return node

    def _child(self, node: Node, part: str | int) -> tuple[Node, Node] | None:
        keys = self._keys.get(id(node))
        if keys is not None:
            return keys.get(str(part))
        if isinstance(node, MappingNode):
            if len(node.value) <= _SCAN_LIMIT and node is not self.root:
                found, merges = _scan_mapping(node, str(part))
                if found is not None or not merges:
                    return found
            keys = self._keys[id(node)] = _index_mapping(node, set())
            return keys.get(str(part))
        if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            item: Node = node.value[part]
            return item, item
        return None


def parse(text: str | bytes, name: str) -> Source:
    """Compose and convert a YAML document.

    Raises PlanError when no document can be built (a syntax error, an alias bomb); the
    problems of a document that can (duplicate keys, unsupported tags, NUL characters)
    are returned in :attr:`Source.problems` and :attr:`Source.unusable`, so that
    validation reports its own in the same pass.
    """
    if len(text) > MAX_BYTES:
        raise PlanError.single(
            Location(name, 1, 1),
            f"the file is {len(text):,} bytes; plans are limited to {MAX_BYTES:,} bytes",
        )
    if isinstance(text, bytes):
        text = _decode(text, name)
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise PlanError.single(
            Location(name, 1, 1), "the plan is empty; start with `version: 1` and `tasks:`"
        )
    root = _compose(text, name)
    converter = _Converter(name, len(text))
    data = converter.convert(root, 0)
    unusable = locate_failures(root, converter.failed, _is_merge) if converter.failed else ()
    return Source(name, text, data, root, tuple(converter.duplicates), unusable)


def _is_merge(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.ctag is _MERGE_TAG


def _decode(raw: bytes, name: str) -> str:
    """UTF-8 (a BOM is allowed) or a PlanError at the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_column(raw[: exc.start].decode("utf-8", errors="replace"))
        raise PlanError.single(
            Location(name, line, column),
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot start or continue "
            "a character); save it as UTF-8",
        ) from None


def _line_column(before: str) -> tuple[int, int]:
    """The 1-based line and column just after ``before``."""
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1) + 1


def _compose(text: str, name: str) -> Node:
    yaml = YAML(typ="safe")
    yaml.version = (1, 2)
    yaml.Resolver = _CoreResolver
    try:
        nodes = list(yaml.compose_all(text))
    except MarkedYAMLError as exc:
        raise PlanError.single(*_syntax_error(exc, text, name)) from None
    except ReaderError as exc:
        # the C reader counts bytes, the Python one characters: both agree on ASCII prefixes
        offset = (
            exc.position
            if text.isascii()
            else len(text.encode("utf-8")[: exc.position].decode("utf-8", errors="ignore"))
        )
        where = Location(name, *_line_column(text[:offset]))
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
        raise PlanError.single(
            where,
            f"the file contains the control character U+{char:04X}, which YAML does not allow",
        ) from None
    except YAMLError as exc:
        raise PlanError.single(Location(name, 1, 1), f"YAML error: {exc}") from None
    except RecursionError:
        raise PlanError.single(Location(name, 1, 1), "the YAML is nested too deeply") from None
    if len(nodes) != 1:
        where = Location(name, 1, 1)
        if len(nodes) > 1:
            mark = nodes[1].start_mark
            where = Location(name, mark.line + 1, mark.column + 1)
            raise PlanError.single(
                where,
                "a plan file holds exactly one YAML document; a second one starts here",
            )
        raise PlanError.single(where, "the plan is empty; start with `version: 1` and `tasks:`")
    root = nodes[0]
    if isinstance(root, ScalarNode) and root.ctag is _PLAIN_TAG and root.value == "":
        raise PlanError.single(
            Location(name, 1, 1), "the plan is empty; start with `version: 1` and `tasks:`"
        )
    return root  # type: ignore[no-any-return]


def _syntax_error(exc: MarkedYAMLError, text: str, name: str) -> tuple[Location, str]:
    """Where a YAML syntax error is and what it means, with a hint for the usual causes."""
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return Location(name, 1, 1), f"YAML syntax error: {exc.problem or exc.context}"
    where = Location(name, mark.line + 1, mark.column + 1)
    problem = str(exc.problem or exc.context or "invalid YAML")
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if "\t" in line[: mark.column + 1] and "cannot start any token" in problem:
        return where, "YAML syntax error: a tab indents this line; YAML indents with spaces only"
    context = f" ({exc.context})" if exc.context and exc.context_mark is not None else ""
    if exc.context_mark is not None and exc.problem_mark is not None:
        started = exc.context_mark.line + 1
        if started != mark.line + 1:
            context = f" ({exc.context} that started on line {started})"
    return where, f"YAML syntax error: {problem}{context}"


class _Converter:
    def __init__(self, name: str, length: int) -> None:
        self.name = name
        self.budget = length * NODE_FACTOR + NODE_ALLOWANCE
        self.expanded = 0
        #: Problems of a value, by the node that holds it (:attr:`Source.unusable`).
        self.failed: dict[int, list[Diagnostic]] = {}
        #: Duplicate keys (the document is read with each key's first value, as written)
        #: and keys that are not text (their entries are left out).
        self.duplicates: list[Diagnostic] = []
        self._active: set[int] = set()

    def _loc(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.name, mark.line + 1, mark.column + 1)

    def _fail(self, node: Node, message: str) -> None:
        self.failed.setdefault(id(node), []).append(Diagnostic(self._loc(node), message))

    def convert(self, node: Node, depth: int) -> Any:
        self.expanded += 1
        if self.expanded > self.budget:
            raise PlanError.single(
                self._loc(node),
                f"aliases expand the document to more than {self.budget:,} values "
                "(an alias bomb?); use fewer or smaller aliases",
            )
        if depth > MAX_DEPTH:
            raise PlanError.single(
                self._loc(node), f"the document nests deeper than {MAX_DEPTH} levels"
            )
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self._active:
            raise PlanError.single(
                self._loc(node), "an alias refers to the node that contains it (recursive YAML)"
            )
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
        if node.ctag is not _SEQ_TAG and node.ctag is not _MAP_TAG and node.tag != _TAG + kind:
            self._fail(node, _tag_message(str(node.tag)))

    def _mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Node] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.ctag is _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self._key(key_node)
            if key is None:
                continue
            if key in first_seen:
                first = first_seen[key].start_mark.line + 1
                message = f"duplicate key {key!r} (first defined on line {first})"
                self.duplicates.append(Diagnostic(self._loc(key_node), message))
                continue
            first_seen[key] = key_node
            result[key] = self.convert(value_node, depth + 1)
        for merged in self._merge_sources(merges):
            for key, value in self._merged(merged, depth + 1).items():
                result.setdefault(key, value)
        return result

    def _merged(self, node: MappingNode, depth: int) -> dict[str, Any]:
        """A mapping merged in with ``<<``, guarded like any other node."""
        if id(node) in self._active:
            raise PlanError.single(
                self._loc(node), "a merge key (<<) merges the mapping that contains it"
            )
        if depth > MAX_DEPTH:
            raise PlanError.single(
                self._loc(node), f"the document nests deeper than {MAX_DEPTH} levels"
            )
        self._active.add(id(node))
        try:
            return self._mapping(node, depth)
        finally:
            self._active.discard(id(node))

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
            found = Diagnostic(self._loc(node), "a key must be plain text, not a list or a mapping")
            self.duplicates.append(found)
            return None
        if "\0" in node.value:
            self._fail(node, _NUL_IN_KEY)
        return str(node.value)

    def _scalar(self, node: ScalarNode) -> Any:
        ctag = node.ctag
        text: str = node.value
        if "\0" in text:
            self._fail(node, _NUL_IN_TEXT)
            return text
        if ctag is _PLAIN_TAG:
            return core_value(text)
        if ctag is _STR_TAG or ctag is _MERGE_TAG or node.style in ("'", '"', "|", ">"):
            return text
        return self._tagged(node, str(node.tag), text)

    def _tagged(self, node: ScalarNode, tag: str, text: str) -> Any:
        """A scalar with an explicit standard tag (``!!str 3``, ``!!int "7"``)."""
        kind = tag.removeprefix(_TAG)
        if kind in ("str", "timestamp"):
            return text
        if kind in ("null", "bool", "int", "float"):
            value = core_value(text)
            expected = {"null": type(None), "bool": bool, "int": int, "float": float}[kind]
            if kind == "float" and type(value) is int:
                return float(value)
            if type(value) is expected:
                return value
            self._fail(node, f"{text!r} is not a valid !!{kind}")
            return text
        self._fail(node, _tag_message(tag))
        return text


def _tag_message(tag: str) -> str:
    shown = "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
    return f"the YAML tag {shown} is not supported; plans are plain YAML (remove the tag)"


#: Mappings this small are searched in place rather than indexed (a task's own keys).
_SCAN_LIMIT = 24


def _scan_mapping(node: MappingNode, key: str) -> tuple[tuple[Node, Node] | None, bool]:
    """The written entry for ``key``, and whether the mapping has merge keys (``<<``)."""
    merges = False
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode):
            if key_node.ctag is _MERGE_TAG:
                merges = True
            elif key_node.value == key:
                return (key_node, value_node), merges
    return None, merges


def _index_mapping(node: MappingNode, seen: set[int]) -> dict[str, tuple[Node, Node]]:
    """Key text → (key node, value node); written keys win over merged ones (``<<``)."""
    seen.add(id(node))
    keys: dict[str, tuple[Node, Node]] = {}
    merges = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            continue
        if key_node.ctag is _MERGE_TAG:
            merges.append(value_node)
        else:
            keys.setdefault(str(key_node.value), (key_node, value_node))
    for value in merges:
        for item in value.value if isinstance(value, SequenceNode) else [value]:
            if isinstance(item, MappingNode) and id(item) not in seen:
                for name, pair in _index_mapping(item, seen).items():
                    keys.setdefault(name, pair)
    return keys

"""Where in the data each value is that YAML refused but the document could still hold.

The converter of :mod:`planrun.plan.source` notes a refused value (an unsupported tag, a
NUL character, a merge of something that is not a mapping) by its node; validation needs
its data path, to cut it away and go on (:mod:`planrun.plan.salvage`). The tree is walked
again for that only when something was refused, so a valid plan pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from planrun.errors import Diagnostic

Where = tuple[str | int, ...]
Unusable = tuple[Where, bool, Diagnostic]


def locate_failures(
    root: Node, failed: dict[int, list[Diagnostic]], is_merge: Callable[[Node], bool]
) -> tuple[Unusable, ...]:
    """Each refused value's data path, whether the problem is that path's key, and the
    problem; a merge (``<<``) of a non-mapping is the problem of the mapping it is in.
    A node reached through several aliases is reported at each of its paths."""
    found: list[Unusable] = []

    def note(node: Node, where: Where, is_key: bool = False) -> None:
        found.extend((where, is_key, problem) for problem in failed.get(id(node), ()))

    def walk(node: Node, where: Where) -> None:
        note(node, where)
        if isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*where, index))
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if is_merge(key_node):
                    merged = (
                        value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                    )
                    for item in merged:
                        walk(item, where) if isinstance(item, MappingNode) else note(item, where)
                elif isinstance(key_node, ScalarNode):
                    key = str(key_node.value)
                    note(key_node, (*where, key), is_key=True)
                    walk(value_node, (*where, key))

    walk(root, ())
    return tuple(found)

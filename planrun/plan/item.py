"""A fan-out item (:mod:`planrun.plan.expand` makes them); its own module because compiled
tasks hold items and must load without the plan's schema models (a cached plan)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Item(dict[str, Any]):
    """A fan-out item: a mapping of fields for templates (``item.path``) that prints as its text.

    A ``dict`` so that it serialises as its fields (fingerprints, reports). In templates a
    field wins over a dict method of the same name (``item.items`` of a batch is its list of
    items; see :mod:`planrun.plan.templates`).
    """

    def __init__(self, text: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self._text = text

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Item({self._text!r}, {dict(self)!r})"

    def __hash__(self) -> int:  # type: ignore[override]
        return hash((self._text, self.get("id")))

    @property
    def id(self) -> str:
        """The stable id that names the expanded task: ``KEY[id]``."""
        return str(self["id"])


def repo_context(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"repo": item}`` for a repository's task (docs/batch-changes.md), else nothing."""
    if item is not None and item.get("repository") is True:
        return {"repo": item}
    return {}


__all__ = ["Item", "repo_context"]

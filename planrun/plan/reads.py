"""The files a plan points at, next to it: ``prompt_file``, and a fan-out's ``lines`` and ``glob``.

This is the only I/O of compiling. The step that builds tasks receives a :class:`PlanFiles`
and never opens a file itself; :class:`DiskFiles` is the one that reads the disk, and
hands a tracker fan-out to :func:`planrun.trackers.source.fetch_items` (the network: a
plan with ``for_each: {tracker: ...}`` depends on more than its files).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from planrun.errors import text_position
from planrun.plan import probes
from planrun.plan.expand import ItemError, items_for
from planrun.plan.item import Item
from planrun.plan.model import ForEach, Repositories, Tracker, TrackerSelect

#: The items of each agent's fan-out (``for_each: {agent: NAME}``), by agent name.
Mentions = Mapping[str, list[Item]]


class ReadError(Exception):
    """A file the plan names cannot be used; the message says why, in the plan's terms."""


class PlanFiles(Protocol):
    """What compiling reads."""

    def prompt(self, name: str) -> str:
        """The text of prompt_file ``name``; ReadError when it cannot be a prompt."""
        ...

    def items(self, for_each: ForEach, root: Path, root_name: str) -> list[Item]:
        """A fan-out's items (not ``same_as``): see :func:`planrun.plan.expand.items_for`.

        ``root`` is the folder a glob runs in and ``root_name`` how messages name it.
        """
        ...

    def tracker_items(
        self, name: str, tracker: Tracker, select: TrackerSelect | None
    ) -> list[Item]:
        """The items of tracker ``name`` that ``select`` chooses; ItemError (field
        ``token`` or ``tracker``) when they cannot be read."""
        ...

    def repositories(self, project: str, spec: Repositories) -> list[tuple[str, str, str | None]]:
        """The repositories (``owner/name``, clone URL, default branch) a project's
        ``repositories:`` query selects; ItemError (field ``token``) when they cannot be
        read."""
        ...

    def agent_items(self, name: str) -> list[Item]:
        """The mentions of agent ``name`` that ``planrun serve`` handles (none otherwise)."""
        ...


class DiskFiles:
    """The files under the plan's folder ``directory``; a glob never lists ``state``."""

    def __init__(self, directory: Path, state: Path, mentions: Mentions | None = None) -> None:
        self.directory = directory
        self.state = state
        self.mentions = mentions or {}
        self._tracked: dict[tuple[str, str], list[Item]] = {}  # one read per selection
        self._queried: dict[str, list[tuple[str, str, str | None]]] = {}

    def prompt(self, name: str) -> str:
        path = probes.resolved(self.directory / name)
        if probes.file_kind(path) == "other":
            raise ReadError(f"prompt_file {name!r} is not a regular file")
        try:
            text = probes.read_text(path)
        except FileNotFoundError:
            raise ReadError(
                f"prompt_file {name!r} does not exist (paths are relative to the plan's folder)"
            ) from None
        except IsADirectoryError:
            raise ReadError(f"prompt_file {name!r} is a folder, not a file") from None
        except UnicodeDecodeError:
            raise ReadError(f"prompt_file {name!r} is not UTF-8 text") from None
        except OSError as exc:
            raise ReadError(f"cannot read prompt_file {name!r}: {exc.strerror}") from None
        nul = text.find("\0")
        if nul >= 0:
            raise ReadError(_nul_in_file(name, text, nul))
        return text

    def items(self, for_each: ForEach, root: Path, root_name: str) -> list[Item]:
        return items_for(for_each, root, self.directory, root_name, exclude=self.state)

    def tracker_items(
        self, name: str, tracker: Tracker, select: TrackerSelect | None
    ) -> list[Item]:
        # the one read of a tracker while compiling: a plan that has one is not cacheable
        from planrun.trackers.source import fetch_items

        probes.not_cacheable("it reads a tracker")

        select = select or TrackerSelect()
        read = (name, select.model_dump_json())
        if read not in self._tracked:
            self._tracked[read] = fetch_items(name, tracker, select)
        return self._tracked[read]

    def repositories(self, project: str, spec: Repositories) -> list[tuple[str, str, str | None]]:
        # the one read of a code host while compiling: such a plan is not cacheable
        probes.not_cacheable("it queries GitHub for repositories")
        read = spec.model_dump_json()
        if read not in self._queried:
            try:
                from planrun.changes.repolist import fetch_repositories
            except ImportError as exc:  # httpx: the extra
                raise ItemError(
                    "repositories", f"a repositories query needs 'planrun[github]' ({exc})"
                ) from None
            self._queried[read] = fetch_repositories(project, spec)
        return self._queried[read]

    def agent_items(self, name: str) -> list[Item]:
        # serve's to give: what it knows changes between two compiles
        probes.not_cacheable("it fans out over an agent's mentions")
        return list(self.mentions.get(name, ()))


def _nul_in_file(name: str, text: str, index: int) -> str:
    """Where the first NUL of prompt_file ``name`` is, and why it cannot stay."""
    line, column = text_position(text, index)
    hint = (
        " (the file looks like UTF-16: save it as UTF-8)"
        if text.count("\0") * 4 > len(text)
        else ""
    )
    return (
        f"prompt_file {name!r} contains a NUL character (\\0) on line {line}, column {column}, "
        f"which cannot be passed to a process; remove it{hint}"
    )

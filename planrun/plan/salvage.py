"""A plan the schema refuses, cut down until it fits, so that one pass finds every problem.

``planrun validate`` reports every problem of a plan at once (issue 15): a misspelt key does
not hide a dependency cycle, an unknown provider or an undefined template name. Each value
the schema refuses is reported and cut away, the schema is asked again (a check that needs
every field valid, such as "one source of items", speaks only then), and the rest of the
plan compiles as usual (:func:`planrun.plan.compile.compile_plan`).

What is cut, by where the problem lies:

- a field of a task: that field. When the field decides what the task does or where
  (``run``, ``prompt``, ``prompt_file``, ``provider``, ``project``, ``for_each``,
  ``parent``), the task becomes a *stand-in*: it keeps its needs, parent and inherited
  fields and runs ``true``, so the graph is checked as written and nothing about its work
  is guessed. A task that is not a mapping is a stand-in with no fields; a task whose key
  is invalid is cut, with the references to it;
- a provider or a project: the whole entry; the tasks that use it are stand-ins;
- a field of ``settings``, ``defaults`` or ``hooks``, or an unknown top-level key: that
  field (the tasks inheriting a cut ``defaults.provider`` or ``project`` are stand-ins;
  with ``settings.secrets`` cut, every granted secret counts as declared);
- ``name``: a placeholder name. A missing ``version`` is taken as 1; any other problem
  with ``version``, or with ``tasks`` as a whole, ends the checks there.

Cutting never invents a problem; it can only hide one (a stand-in's templates, a cycle
through a dropped need). The problem that hides others says so, once:
``...; this hides the other checks of task a``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from planrun.errors import Diagnostic
from planrun.plan.diagnose import EXCLUSIVE_FIELDS, exclusive_diagnostic, located_diagnostics
from planrun.plan.load import HIDES_EVERYTHING, Salvaged
from planrun.plan.model import PlanFile
from planrun.plan.source import Source

Where = tuple[str | int, ...]

#: How often the schema is asked again after a cut; each round cuts at least one value.
_ROUNDS = 8
#: A task's fields that decide what it does or where: cutting one makes it a stand-in.
_WORK = frozenset({"run", "prompt", "prompt_file", "provider", "project", "for_each", "parent"})
_INHERITED_WORK = ("provider", "project")
#: What a stand-in drops: its work and every template of it.
_STAND_IN_DROPS = (
    "title",
    "description",
    "run",
    "prompt",
    "prompt_file",
    "hooks",
    "verify",
    "for_each",
)
#: The name a plan whose ``name:`` is invalid is checked under.
PLACEHOLDER_NAME = "plan"


def salvage(source: Source) -> Salvaged:
    """Validate ``source.data`` (a mapping), cutting away what YAML refused
    (:attr:`Source.unusable`) and what the schema refuses (:func:`planrun.plan.load
    .validate_source` tries the whole plan first: this module is for a plan with problems)."""
    return _Cutter(source).run()


class _Cutter:
    """One salvage: the data as cut so far, the problems found and what each cut hides."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.data: dict[str, Any] = dict(source.data)
        self.found: list[tuple[Where, Diagnostic]] = []
        self.fatal: Where | None = None
        #: task → the cut that hides its checks (stand-ins, and tasks cut whole)
        self.hidden: dict[str, Where] = {}
        self.removed: set[str] = set()
        self.broken: dict[str, dict[str, Where]] = {"provider": {}, "project": {}}
        #: (task, or None for defaults; provider or project) → the cut field
        self.cut_fields: dict[tuple[str | None, str], Where] = {}
        self.secrets_cut = False

    def run(self) -> Salvaged:
        for where, is_key, found in self.source.unusable:
            self.found.append((where, found))
            self._cut(where, is_key)
        self._cut_exclusive()
        model = None if self.fatal is not None else self._validate()
        if model is not None and self._stand_ins():
            model = self._validate()
        cut = replace(self.source, data=self.data)
        return Salvaged(cut, model, tuple(self._noted()))

    def _validate(self) -> PlanFile | None:
        for _ in range(_ROUNDS):
            try:
                return PlanFile.model_validate(self.data)
            except ValidationError as exc:
                current = replace(self.source, data=self.data)
                for where, is_key, found in located_diagnostics(exc, current, PlanFile):
                    self.found.append((where, found))
                    self._cut(where, is_key)
            if self.fatal is not None:
                return None
        return None

    def _cut_exclusive(self) -> None:
        """Exclusive fields set together (needs and blocked_by, ...): the second is cut.

        The schema checks these only once every field of the task is valid; looking for
        them first reports them in the same pass as the task's other problems.
        """
        tasks = self.data.get("tasks")
        if not isinstance(tasks, dict):
            return
        for key, spec in list(tasks.items()):
            for first, second, message in EXCLUSIVE_FIELDS:
                if isinstance(spec, dict) and first in spec and second in spec:
                    found = exclusive_diagnostic(self.source, str(key), second, message)
                    self.found.append((("tasks", key, second), found))
                    spec = {k: v for k, v in spec.items() if k != second}
                    self.data["tasks"] = tasks = {**tasks, key: spec}

    def _cut(self, where: Where, is_key: bool) -> None:
        """Cut what the problem at ``where`` makes unusable (see the module's list)."""
        head = where[0] if where else None
        if head == "version":
            self._cut_version()
        elif head is None:
            self.fatal = ()
        elif head == "tasks":
            self._cut_task(where, is_key)
        elif head == "name":
            self.data["name"] = PLACEHOLDER_NAME
        elif head in ("providers", "projects") and len(where) > 1:
            self._cut_entry(str(head), str(where[1]), is_key and len(where) == 2)
        elif head in ("settings", "defaults", "hooks") and len(where) > 1:
            self._cut_field(str(head), str(where[1]))
        else:  # an unknown top-level key, or a section that is not a mapping
            self.data.pop(str(head), None)
            if head == "settings":
                self.secrets_cut = True
            elif head == "defaults":
                self.cut_fields.update({(None, f): ("defaults",) for f in _INHERITED_WORK})
            elif head in ("providers", "projects"):
                self._break_all(str(head))

    def _cut_version(self) -> None:
        """A missing version is taken as 1; another one is a format this planrun does not
        know, whose other rules it cannot check."""
        if "version" in self.data:
            self.fatal = ("version",)
        else:
            self.data["version"] = 1

    def _cut_field(self, section: str, name: str) -> None:
        values = self.data.get(section)
        if not isinstance(values, dict):
            self.data.pop(section, None)
            return
        self.data[section] = {k: v for k, v in values.items() if k != name}
        if section == "defaults" and name in _INHERITED_WORK:
            self.cut_fields[None, name] = (section, name)
        self.secrets_cut |= (section, name) == ("settings", "secrets")

    def _cut_entry(self, section: str, name: str, bad_name: bool) -> None:
        """A provider or project the schema refuses: every task that uses it is a stand-in.

        A project is replaced by one in the plan's folder that clones nothing, so that the
        stand-ins still name a project that exists; a provider is dropped (stand-ins run
        ``true`` with the shell provider)."""
        entries = self.data.get(section)
        if not isinstance(entries, dict):
            return
        kind = section.removesuffix("s")
        self.broken[kind].setdefault(name, (section, name))
        rest = {k: v for k, v in entries.items() if k != name}
        if kind == "project" and not bad_name:
            rest[name] = {"path": ".", "worktrees": False}
        self.data[section] = rest

    def _break_all(self, section: str) -> None:
        written = self.source.data.get(section)
        kind = section.removesuffix("s")
        for name in written if isinstance(written, dict) else ():
            self.broken[kind].setdefault(str(name), (section,))
        if kind == "project" and self.broken[kind]:
            stand_in = {"path": ".", "worktrees": False}
            self.data[section] = {name: stand_in for name in self.broken[kind]}

    def _cut_task(self, where: Where, is_key: bool) -> None:
        tasks = self.data.get("tasks")
        if len(where) == 1 or not isinstance(tasks, dict):
            self.fatal = ("tasks",)
            return
        key = str(where[1])
        spec = tasks.get(key)
        if len(where) == 2 and is_key and tasks.keys() <= {key}:
            self.fatal = ("tasks",)  # its only task: nothing is left to check
        elif len(where) == 2 and is_key:
            self.data["tasks"] = {k: v for k, v in tasks.items() if k != key}
            self.removed.add(key)
            self.hidden.setdefault(key, where[:2])
        elif len(where) == 2 or not isinstance(spec, dict):
            self.data["tasks"] = {**tasks, key: spec if isinstance(spec, dict) else {}}
            self.hidden.setdefault(key, where[:2])
        else:
            field = str(where[2])
            self.data["tasks"] = {**tasks, key: {k: v for k, v in spec.items() if k != field}}
            if field in _WORK:
                self.hidden.setdefault(key, where[:3])
            if field in _INHERITED_WORK:
                self.cut_fields[key, field] = where[:3]
            if field == "parent":
                self._orphaned(key, spec.get("parent"), where[:3])

    def _orphaned(self, key: str, parent: Any, cause: Where) -> None:
        """A cut ``parent`` may have been a task's only child link: the task it names is
        hidden too (else it would be checked as work with nothing to do); when it names
        none, so is each task that looks like a group (it sets nothing to do)."""
        tasks: dict[str, Any] = self.data["tasks"]
        written = parent if isinstance(parent, list) else [parent]
        names = [n for n in written if isinstance(n, str) and n in tasks]
        if not names:
            names = [k for k, spec in tasks.items() if _looks_like_group(spec)]
        for name in names:
            if name != key:
                self.hidden.setdefault(name, cause)

    def _stand_ins(self) -> bool:
        """Hide what the cuts make unknowable and replace hidden tasks by stand-ins;
        whether anything changed."""
        tasks: dict[str, dict[str, Any]] = self.data["tasks"]
        self._spread(tasks)
        if not (self.hidden or self.secrets_cut):
            return False
        unfanned = {k for k in self.hidden if _fans_out(self.source.data, k)}
        kept = {k: self._without_dangling(spec, unfanned) for k, spec in tasks.items()}
        parents = {s.get("parent") for s in kept.values() if s.get("parent") not in self.removed}
        for key in kept.keys() & self.hidden.keys():
            kept[key] = self._stand_in(kept[key], is_parent=key in parents)
        self.data["tasks"] = kept
        if self.secrets_cut:
            self._declare_granted(kept)
        return True

    def _spread(self, tasks: dict[str, dict[str, Any]]) -> None:
        """Hide, until nothing changes, each task whose checks depend on a hidden thing:
        a cut parent, a broken or cut provider or project it uses, a hidden ``same_as``."""
        changed = True
        while changed:
            changed = False
            for key, spec in tasks.items():
                if key not in self.hidden:
                    cause = self._cause(key, spec, tasks)
                    if cause is not None:
                        self.hidden[key] = cause
                        changed = True

    def _cause(self, key: str, spec: dict[str, Any], tasks: dict[str, Any]) -> Where | None:
        parent = spec.get("parent")
        if parent in self.removed:
            return self.hidden[parent]
        for field in _INHERITED_WORK:
            cause = self._inherited_cause(key, field, tasks)
            if cause is not None:
                return cause
        for_each = spec.get("for_each")
        same_as = for_each.get("same_as") if isinstance(for_each, dict) else None
        if same_as in self.hidden and _fans_out(self.source.data, same_as):
            return self.hidden[same_as]
        return None

    def _inherited_cause(self, key: str, field: str, tasks: dict[str, Any]) -> Where | None:
        """The cut that hides the provider or project ``key`` runs with, if one does."""
        own = tasks[key]
        if field == "provider" and "run" in own and "provider" not in own:
            return None  # a task with run and no provider of its own runs with shell
        at: str | None = key
        seen: set[str] = set()
        while at is not None and at in tasks and at not in seen:
            seen.add(at)
            cut = self.cut_fields.get((at, field))
            if cut is not None:
                return cut
            if tasks[at].get(field) is not None:
                return self.broken[field].get(tasks[at][field])
            at = tasks[at].get("parent")
        cut = self.cut_fields.get((None, field))
        if cut is not None:
            return cut
        defaults = self.data.get("defaults")
        value = defaults.get(field) if isinstance(defaults, dict) else None
        return self.broken[field].get(value) if isinstance(value, str) else None

    def _without_dangling(self, spec: dict[str, Any], unfanned: set[str]) -> dict[str, Any]:
        """``spec`` without needs on a cut task, nor on an item of a hidden fan-out."""

        def dangling(need: str) -> bool:
            base = need.split("[", 1)[0]
            return base in self.removed or ("[" in need and base in unfanned)

        for field in ("needs", "blocked_by"):
            needs = spec.get(field)
            if isinstance(needs, list) and any(dangling(n) for n in needs):
                spec = {**spec, field: [n for n in needs if not dangling(n)]}
        return spec

    def _stand_in(self, spec: dict[str, Any], is_parent: bool) -> dict[str, Any]:
        """A hidden task as the graph sees it: needs, parent and what children inherit."""
        stand_in = {k: v for k, v in spec.items() if k not in _STAND_IN_DROPS}
        if stand_in.get("parent") in self.removed:
            del stand_in["parent"]
        if not is_parent:
            stand_in.update(run=["true"], provider="shell")
        return stand_in

    def _declare_granted(self, tasks: dict[str, dict[str, Any]]) -> None:
        """With ``settings.secrets`` cut, every secret granted counts as declared."""
        defaults = self.data.get("defaults")
        lists = [s.get("secrets") for s in (*tasks.values(), defaults or {})]
        granted = sorted({n for names in lists if isinstance(names, list) for n in names})
        self.data["settings"] = {**(self.data.get("settings") or {}), "secrets": granted}

    def _noted(self) -> list[Diagnostic]:
        """The problems found, each that hides checks saying which, once: a cut that ends
        the checks (at the root or at ``version``) on its own problem, any other on the
        first problem at or under the cut value."""
        hidden: dict[Where, list[str]] = {}
        for key, cause in self.hidden.items():
            hidden.setdefault(cause, []).append(key)
        pending = {cause: _hides(cause, keys) for cause, keys in hidden.items()}
        exact = self.fatal is not None
        if self.fatal is not None:
            pending = {self.fatal: HIDES_EVERYTHING} if self.fatal != ("tasks",) else {}
        result = [found for _, found in self.found]
        for n, (where, found) in enumerate(self.found):
            under = (c for c in pending if where[: len(c)] == c and not exact)
            at: Where | None = where if exact else next(under, None)
            if at in pending:
                result[n] = replace(found, message=f"{found.message}; {pending.pop(at)}")
        return result


def _looks_like_group(spec: Any) -> bool:
    """A task written with nothing to do: a parent, perhaps of a child whose link is cut."""
    return isinstance(spec, dict) and not _WORK.intersection(spec) - {"parent", "project"}


def _fans_out(data: Any, key: str) -> bool:
    """Whether task ``key`` is written with ``for_each`` in the plan as written."""
    tasks = data.get("tasks") if isinstance(data, dict) else None
    spec = tasks.get(key) if isinstance(tasks, dict) else None
    return isinstance(spec, dict) and "for_each" in spec


def _hides(cause: Where, keys: list[str]) -> str:
    """``this hides the other checks of tasks a, b and c`` (at most three names)."""
    own = len(cause) >= 2 and cause[0] == "tasks" and cause[1] in keys
    shown = keys if len(keys) <= 3 else [*keys[:3], f"{len(keys) - 3} more"]
    names = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    task = "task" if len(keys) == 1 else "tasks"
    return f"this hides the {'other ' if own else ''}checks of {task} {names}"

"""A task's fingerprint: a hash of everything that decides what the task *does* (SPEC §5).

Included: its command or prompt (the templates as written, before rendering), the fan-out
item, title and description (they feed prompts and templates), the provider's invocation
(command, prompt delivery, follow-up command, autonomy flag, prompt template, env), the
project (folder, base branch, integration, target branch, setup), the task's base branch,
env, the names of the secrets it is granted (never their values) and its ``verify`` command.

Not included: how the task is scheduled: priority, needs, caps, timeouts, retry, hooks,
backend, review, tags, budget. Tuning those never re-runs finished work. (A template that
renders ``{{ task.priority }}`` therefore does not re-run when only the priority changes.)

Each field is also hashed on its own, so that ``apply`` and ``planrun plan`` can say which
fields changed. ``FORMAT`` is part of the hash: changing what goes into a fingerprint bumps
it, which re-runs every task once, on purpose.

The project's folder is hashed relative to the plan's folder when it is inside it
(:func:`portable_path`): clones at different paths (the machines of a shared run) and a
repository moved with its plan agree. Fingerprints recorded before hashed the absolute
path; :func:`legacy_fingerprint` computes that form, which the decision still accepts for
a task done then (upgrading re-runs nothing; FORMAT stays 1 for the same reason).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from planrun.plan.resolved import CompiledPlan, Task

FORMAT = 1


def definition(plan: CompiledPlan, task: Task, *, legacy: bool = False) -> dict[str, Any]:
    """The fields of ``task`` that decide what it does, as plain JSON-able data
    (``legacy``: with the project's absolute path, as before paths were portable)."""
    return {
        "run": task.run.as_data() if task.run else None,
        "prompt": task.prompt,
        "title": task.title,
        "description": task.description,
        # the item by what it is, not where it stands: inserting an item must not re-run
        # every item after it
        "item": _without_position(task.item),
        "provider": _provider(plan, task),
        "project": _project(plan, task, legacy),
        "base_branch": task.base_branch,
        "env": dict(task.env),
        "secrets": sorted(task.secrets),
        "verify": task.verify.as_data() if task.verify else None,
    }


def _provider(plan: CompiledPlan, task: Task) -> dict[str, Any] | None:
    """How the agent is started; None for a shell task (its ``run`` says it all)."""
    if task.run is not None:
        return None
    provider = plan.providers[task.provider]
    return {
        "command": list(provider.command),
        "prompt_via": provider.prompt_via,
        "prompt_command": list(provider.prompt_command or ()),
        "yolo_flag": list(provider.yolo_flag) if task.autonomous else [],
        "template": provider.autonomous_prompt_template if task.prompt is None else None,
        "env": dict(provider.env),
    }


def _project(plan: CompiledPlan, task: Task, legacy: bool = False) -> dict[str, Any] | None:
    """Where the work happens and how it lands; None when the task has no project."""
    project = plan.projects.get(task.project) if task.project else None
    if project is None:
        return None
    return {
        "path": project.path if legacy else portable_path(str(plan.directory), project.path),
        "base_branch": project.base_branch,
        "integrate": project.integrate,
        "target_branch": project.target_branch,
        "setup": [c.as_data() for c in project.setup],
    }


#: ``json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)``, with the
#: encoder made once instead of once per call (the text, and so every hash, is the same).
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(value: Any) -> str:
    """The hash of ``value`` as JSON: what :func:`fingerprint` computes for the whole
    definition and for each field (tests check that the two agree)."""
    return _hash(_encode(value))


@cache
def portable_path(plan_dir: str, path: str) -> str:
    """``path`` (absolute) as the fingerprint names it: relative to the plan's folder when
    it is inside it (``"."``, ``"repo"``), so that clones at other paths, or a repository
    moved with its plan, keep their fingerprints; else as it is."""
    real = os.path.realpath(plan_dir)
    for base in dict.fromkeys((plan_dir, real)):
        if path == base or path.startswith(base.rstrip(os.sep) + os.sep):
            return Path(os.path.relpath(path, base)).as_posix()
    return path


def legacy_fingerprint(plan: CompiledPlan, task: Task) -> str | None:
    """The fingerprint ``task`` had before project paths were portable (the project's
    absolute path hashed), when it differs from today's; None when it is the same.

    A store written before keeps those fingerprints for tasks done then; the decision
    recognises them (:func:`planrun.core.decision.decide_run`), so upgrading re-runs
    nothing."""
    project = plan.projects.get(task.project) if task.project else None
    if project is None or portable_path(str(plan.directory), project.path) == project.path:
        return None
    return _digest({"format": FORMAT, **definition(plan, task, legacy=True)})


def fingerprint(plan: CompiledPlan, task: Task) -> tuple[str, dict[str, str]]:
    """The task's fingerprint (64 hex digits) and a 16-digit hash per field of
    :func:`definition`. Deterministic across processes and machines.

    The fingerprint is ``_digest({"format": FORMAT, **fields})``. Its text is put together
    from each field's own text (a mapping with sorted keys encodes as ``"key":value`` items
    in key order), so that each field is encoded once.
    """
    fields = definition(plan, task)
    # None (most fields of most tasks) is "null" without building an encoder for it
    texts = {name: "null" if value is None else _encode(value) for name, value in fields.items()}
    items = {"format": _encode(FORMAT), **texts}
    whole = ",".join([f"{_key(name)}:{items[name]}" for name in sorted(items)])
    return _hash(f"{{{whole}}}"), {name: _field_hash(text) for name, text in texts.items()}


#: Field hashes of texts met before: most fields of most tasks are alike (null, the same
#: provider, the same retry policy), and each task keeps its field hashes for the run; one
#: string per distinct text instead of one per task and field (about 1 KB per task).
_field_hashes: dict[str, str] = {}
_FIELD_HASHES_KEPT = 4096


def _field_hash(text: str) -> str:
    found = _field_hashes.get(text)
    if found is None:
        found = _hash(text)[:16]
        if len(_field_hashes) < _FIELD_HASHES_KEPT and len(text) <= 4096:
            _field_hashes[text] = found
    return found


@cache
def _key(name: str) -> str:
    return _encode(name)


def _without_position(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: _without_position(v) for k, v in item.items() if k != "index"}
    if isinstance(item, list):
        return [_without_position(v) for v in item]
    return item

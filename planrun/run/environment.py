"""The environment each session and hook gets: nothing is inherited unless allowed.

Order (later wins): ``settings.env.inherit`` (names copied from planrun's environment),
``settings.env.set``, the provider's ``env``, the task's ``env``, the secrets granted to the
task (declared in ``settings.secrets`` and named by the task or its provider), and finally
the ``PLANRUN_*`` context variables, which always describe the truth.

Each ``PLANRUN_*`` value is at most :data:`CONTEXT_VAR_LIMIT` bytes (UTF-8): a longer one (a
long task description or item) is cut on a character boundary and ends with
``… [truncated: N bytes in all]``. Linux refuses to start a process with any one environment
string over 128 KiB (``MAX_ARG_STRLEN``), and the whole text still reaches an agent through
its prompt (``prompt_via: stdin`` or ``file``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from planrun.core.redact import Redactor
from planrun.errors import InternalError, PlanError, PlanrunError, RedactedError
from planrun.plan.resolved import CompiledPlan, ProviderSpec, Task

#: The most bytes (UTF-8) of one ``PLANRUN_*`` value; Linux allows 128 KiB per variable.
CONTEXT_VAR_LIMIT = 32 * 1024


def bounded(value: str, limit: int = CONTEXT_VAR_LIMIT) -> str:
    """``value`` if it has at most ``limit`` bytes in UTF-8, else its head, cut on a
    character boundary, and ``… [truncated: N bytes in all]``, ``limit`` bytes at most."""
    if len(value) * 4 <= limit:  # no character takes more than 4 bytes: nothing to count
        return value
    data = value.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return value
    marker = f"… [truncated: {len(data)} bytes in all]"
    cut = max(limit - len(marker.encode("utf-8")), 0)
    while cut > 0 and data[cut] & 0xC0 == 0x80:  # not inside a character
        cut -= 1
    return data[:cut].decode("utf-8", "surrogatepass") + marker


def secret_values(plan: CompiledPlan, environ: Mapping[str, str]) -> tuple[str, ...]:
    """Values of every declared secret present in the environment (all are redacted)."""
    return tuple(environ[name] for name in plan.secrets if environ.get(name))


def granted_secrets(plan: CompiledPlan, task: Task, provider: ProviderSpec | None) -> list[str]:
    declared = set(plan.secrets)
    wanted = list(task.secrets) + list(provider.secrets if provider else ())
    return [name for name in dict.fromkeys(wanted) if name in declared]


def base_env(plan: CompiledPlan, environ: Mapping[str, str]) -> dict[str, str]:
    env = {name: environ[name] for name in plan.settings.env.inherit if name in environ}
    env.update(plan.settings.env.set)
    return env


def context_vars(context: Mapping[str, Any]) -> dict[str, str]:
    """``PLANRUN_*`` variables from a template context (task, run, attempt, ...), each
    :func:`bounded`."""
    task = context.get("task") or {}
    run = context.get("run") or {}
    plan = context.get("plan") or {}
    item = context.get("item")
    values = {
        "PLANRUN_PLAN": plan.get("path"),
        "PLANRUN_PLAN_NAME": plan.get("name"),
        "PLANRUN_RUN_ID": run.get("id"),
        "PLANRUN_TASK_KEY": task.get("key"),
        "PLANRUN_TASK_TITLE": task.get("title"),
        "PLANRUN_TASK_DESCRIPTION": task.get("description"),
        "PLANRUN_TASK_PRIORITY": task.get("priority"),
        "PLANRUN_ITEM_ID": task.get("item_id"),
        "PLANRUN_ITEM": None if item is None else str(item),
        "PLANRUN_ATTEMPT": context.get("attempt"),
        "PLANRUN_WORKTREE": context.get("worktree"),
        "PLANRUN_BRANCH": context.get("branch"),
        "PLANRUN_STATUS": task.get("status") or run.get("status"),
        "PLANRUN_REASON": task.get("reason"),
        "PLANRUN_LOG": context.get("log_path"),
    }
    values.update(tracker_item_vars(item))
    values.update(repo_vars(item))
    return {k: bounded(str(v)) for k, v in values.items() if v is not None}


#: The fields of a tracker item given to sessions as ``PLANRUN_ITEM_<FIELD>``.
TRACKER_ITEM_FIELDS = ("key", "number", "title", "body", "url", "author")


def tracker_item_vars(item: Any) -> dict[str, Any]:
    """A tracker item's text as variables (untrusted text reaches a shell only this way:
    ``"$PLANRUN_ITEM_BODY"``, never as a word of a command); labels comma-joined."""
    if not isinstance(item, Mapping) or "tracker" not in item:
        return {}
    found: dict[str, Any] = {f"PLANRUN_ITEM_{f.upper()}": item.get(f) for f in TRACKER_ITEM_FIELDS}
    found["PLANRUN_ITEM_LABELS"] = ",".join(item.get("labels") or ())
    return found


#: A repository's fields given to its tasks as ``PLANRUN_REPO_<FIELD>``.
REPO_FIELDS = ("name", "owner", "repo", "url", "default_branch")


def repo_vars(item: Any) -> dict[str, Any]:
    """A repository task's ``repo.*`` as variables (docs/batch-changes.md)."""
    if not isinstance(item, Mapping) or item.get("repository") is not True:
        return {}
    return {f"PLANRUN_REPO_{f.upper()}": item.get(f) for f in REPO_FIELDS}


def task_env(
    plan: CompiledPlan,
    task: Task,
    provider: ProviderSpec | None,
    context: Mapping[str, Any],
    environ: Mapping[str, str],
) -> dict[str, str]:
    env = base_env(plan, environ)
    if provider is not None:
        env.update(dict(provider.env))
    env.update(dict(task.env))
    for name in granted_secrets(plan, task, provider):
        if name in environ:
            env[name] = environ[name]
    env.update(context_vars(context))
    return env


@contextmanager
def secrets_masked(plan: CompiledPlan) -> Iterator[Callable[[str], str]]:
    """For commands that run outside an apply (approve, clean): yields the plan's redactor
    for what they print, and masks the message of any error that leaves, since a git error
    may quote a file name that holds a secret."""
    redact = Redactor(secret_values(plan, os.environ)).redact
    try:
        yield redact
    except (PlanError, InternalError):
        raise
    except PlanrunError as error:
        text = str(error)
        if redact(text) == text:
            raise
        raise RedactedError(redact(text), error.exit_code) from None

"""A task's fingerprint: a hash of everything that decides what the task *does*.

Included: its command or prompt (the templates as written and the fan-out item), title and
description (they feed prompts), the provider's invocation, the project and base branch,
the task's env, secrets granted (names only), verify and autonomy. Not included: how it is
scheduled (priority, caps, timeouts, retry, hooks, backend), so tuning those never re-runs
finished work. Each field is also hashed alone so ``planrun plan`` can say what changed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from planrun.plan.compile import CompiledPlan
from planrun.plan.resolved import Task


def definition(plan: CompiledPlan, task: Task) -> dict[str, Any]:
    provider = plan.providers[task.provider]
    project = plan.projects.get(task.project) if task.project else None
    agent = None
    if task.run is None:
        agent = {
            "command": list(provider.command),
            "prompt_via": provider.prompt_via,
            "prompt_command": list(provider.prompt_command or ()),
            "yolo_flag": list(provider.yolo_flag) if task.autonomous else [],
            "template": provider.autonomous_prompt_template if task.prompt is None else None,
            "env": dict(provider.env),
        }
    return {
        "run": task.run.as_data() if task.run else None,
        "prompt": task.prompt,
        "title": task.title,
        "description": task.description,
        "item": task.item,
        "provider": agent,
        "project": None
        if project is None
        else {
            "path": project.path,
            "base_branch": project.base_branch,
            "integrate": project.integrate,
            "target_branch": project.target_branch,
            "setup": [c.as_data() for c in project.setup],
        },
        "base_branch": task.base_branch,
        "env": dict(task.env),
        "secrets": sorted(task.secrets),
        "verify": task.verify.as_data() if task.verify else None,
    }


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(plan: CompiledPlan, task: Task) -> tuple[str, dict[str, str]]:
    """The task's fingerprint and a short hash per field."""
    fields = definition(plan, task)
    return _digest(fields), {name: _digest(value)[:16] for name, value in fields.items()}

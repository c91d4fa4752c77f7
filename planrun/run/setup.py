"""A project's ``setup`` commands, run in each new worktree (``after_create``).

The workspace calls a :class:`planrun.workspace.base.Setup`; this is the run layer's: the
commands run like hooks (the same runner, timeout and log), with the task's context, and
the first failure fails the attempt as ``startup_failed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from planrun.errors import SessionStartError
from planrun.plan.item import repo_context
from planrun.plan.resolved import CompiledPlan, ProjectSpec, Task
from planrun.run.hooks import run_hooks
from planrun.sessions.base import Session


class SetupCommands:
    def __init__(
        self,
        plan: CompiledPlan,
        state_dir: Path,
        *,
        session: Session,
        env: Mapping[str, str],
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.plan = plan
        self.state_dir = state_dir
        self.session = session
        self.env = dict(env)
        self.secrets = secrets

    async def __call__(self, task: Task, project: ProjectSpec, path: Path, branch: str) -> None:
        if not project.setup:
            return
        env = {
            **self.env,
            "PLANRUN_TASK_KEY": task.key,
            "PLANRUN_WORKTREE": str(path),
            "PLANRUN_BRANCH": branch,
        }
        results = await run_hooks(
            "setup",
            project.setup,
            session=self.session,
            context={
                "task": task.template_context(),
                "worktree": str(path),
                "branch": branch,
                "project": {"name": project.name, "path": project.path},
                "plan": self.plan.plan_context(),
                "item": task.item,
                **repo_context(task.item),
            },
            env=env,
            cwd=path,
            log_path=self.state_dir / "logs" / "setup" / f"{path.name}.log",
            timeout=project.setup_timeout,
            secrets=self.secrets,
            kill_grace=self.plan.settings.kill_grace,
            log_limit=self.plan.settings.log_limit,
        )
        failed = [r for r in results if not r.ok]
        if failed:
            raise SessionStartError((), failed[0].reason.replace("setup hook", "setup command"))

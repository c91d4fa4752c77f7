"""The edges of one run, wired: which session backends, which workspace, and the trio
entry point that turns SIGINT/SIGTERM into a graceful stop and a second one into a kill."""

from __future__ import annotations

import signal
import sys
from typing import Any

import trio

from planrun.plan.resolved import CompiledPlan
from planrun.run.context import RunSettings
from planrun.run.scheduler import Scheduler
from planrun.sessions.base import Session
from planrun.workspace.base import Bases, PlainWorkspace, Workspace


def workspace_for(
    plan: CompiledPlan,
    settings: RunSettings,
    sessions: dict[str, Session],
    *,
    dry_run: bool,
    bases: Bases,
) -> Workspace:
    if dry_run or not _uses_worktrees(plan):
        return PlainWorkspace(plan)  # the same as git's for such a plan, and 12 imports fewer
    from planrun.run.environment import base_env, secret_values
    from planrun.run.setup import SetupCommands
    from planrun.workspace.gitworkspace import GitWorkspace

    secrets = secret_values(plan, settings.environ)
    setup = SetupCommands(
        plan,
        settings.state_dir,
        session=sessions["subprocess"],
        # the run id marks setup processes too, so recovery finds what a dead run left
        env={**base_env(plan, settings.environ), "PLANRUN_RUN_ID": settings.run_id},
        secrets=secrets,
    )
    return GitWorkspace(
        plan,
        settings.state_dir,
        setup=setup,
        run_id=settings.run_id,
        secrets=secrets,
        bases=bases,
    )


def shared_workspace(workspace: Workspace, fence: Any, options: Any) -> Workspace:
    """A git workspace of a shared run lands on the shared remote (workspace/remote.py)."""
    from planrun.workspace.gitworkspace import GitWorkspace
    from planrun.workspace.remote import RemoteWorkspace

    if not isinstance(workspace, GitWorkspace):
        return workspace
    return RemoteWorkspace(workspace, fence, options.remote)


def _uses_worktrees(plan: CompiledPlan) -> bool:
    """Whether some work task's project may give it a worktree (a project with
    ``worktrees: true``; whether its folder is a git repository is seen at run time)."""
    return any(
        task.project is not None and plan.projects[task.project].worktrees
        for task in plan.tasks.values()
        if task.kind == "work"
    )


def sessions_for(dry_run: bool, plan: CompiledPlan) -> dict[str, Session]:
    """The session backends. pty and tmux are imported only when a task uses them (a
    plan of plain commands never pays for ptyprocess, ~10 ms of start-up)."""
    if dry_run:
        from planrun.sessions.dryrun import DryRunSession

        dry = DryRunSession()
        return {"subprocess": dry, "pty": dry, "tmux": dry}
    from planrun.sessions.subprocess import SubprocessSession

    sessions: dict[str, Session] = {"subprocess": SubprocessSession()}
    used = {task.backend for task in plan.tasks.values() if task.kind == "work"}
    if "pty" in used:
        from planrun.sessions.pty import PtySession

        sessions["pty"] = PtySession()
    if "tmux" in used:
        from planrun.sessions.tmux import TmuxSession

        sessions["tmux"] = TmuxSession(tmux_socket(plan))
    return sessions


def tmux_socket(plan: CompiledPlan) -> str:
    """planrun's own tmux server (-L): never the user's, whose config and options differ."""
    return plan.settings.tmux_socket or "planrun"


async def run_with_signals(scheduler: Scheduler) -> None:
    from planrun.sessions.process import become_subreaper

    become_subreaper()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                count = 0
                async for signum in signals:
                    count += 1
                    name = signal.Signals(signum).name
                    if count == 1:
                        print(
                            f"planrun: {name}: stopping; cancelling running tasks "
                            "(again to kill at once)",
                            file=sys.stderr,
                        )
                        scheduler.interrupt()
                    else:
                        print(f"planrun: {name} again: killing every task now", file=sys.stderr)
                        scheduler.kill_now()

            nursery.start_soon(watch)
            nursery.start_soon(scheduler.claims.serve)  # a shared run's heartbeat, wake-ups
            await scheduler.run()
            nursery.cancel_scope.cancel()

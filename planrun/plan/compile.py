"""A validated :class:`PlanFile` → a :class:`CompiledPlan`: resolved tasks and their graph.

Every problem found is collected, with its location, and raised together as one PlanError.
The steps, in the order their problems are reported:

1. resolve the plan's name, providers and projects (:mod:`planrun.plan.resolve`) and check its
   state folder (:mod:`planrun.plan.checks`);
2. check the ``parent`` links (:mod:`planrun.plan.link`);
3. build the tasks: groups, fan-out items, work with inherited fields, each checked as it is
   built (:mod:`planrun.plan.tasks`);
4. check the plan's hooks, link needs and build the graph (:mod:`planrun.plan.link`).

The only I/O is reading what the plan points at next to it (glob, ``lines``, ``prompt_file``),
through :class:`~planrun.plan.reads.DiskFiles`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from planrun.core.names import state_folder
from planrun.errors import Location, PlanError
from planrun.plan.agents import check_agents
from planrun.plan.changesets import check_tokens, publish_policy
from planrun.plan.checks import TemplateChecks, check_state_dir
from planrun.plan.link import check_parents, link, task_graph
from planrun.plan.model import PlanFile, Provider, Settings
from planrun.plan.problems import Problems
from planrun.plan.reads import DiskFiles, Mentions
from planrun.plan.repositories import plan_repositories
from planrun.plan.resolve import resolve
from planrun.plan.resolved import (
    BudgetSpec,
    CommandSpec,
    CompiledPlan,
    EnvSpec,
    PlanSettings,
)
from planrun.plan.source import Source
from planrun.plan.taskchangesets import task_changesets
from planrun.plan.tasks import TaskBuilder
from planrun.plan.trackers import check_trackers

Locate = Callable[..., Location]
RUN_HOOKS = (
    "on_run_start",
    "on_task_start",
    "on_task_retry",
    "on_task_success",
    "on_task_failure",
    "on_run_end",
)


def compile_plan(
    source: Source, plan: PlanFile, path: Path, mentions: Mentions | None = None
) -> CompiledPlan:
    """Resolve, expand and link a validated plan; PlanError with every problem found.

    ``path`` anchors relative paths (globs, ``lines``, ``prompt_file``, project folders);
    ``mentions`` are the items of each agent (``for_each: {agent: NAME}``), which only
    ``planrun serve`` knows (none otherwise).
    """
    problems = Problems(source)
    compiled = _compile(problems, plan, path, mentions or {})
    if problems:
        raise PlanError(problems.found)
    assert compiled is not None
    return compiled


def _compile(
    problems: Problems, plan: PlanFile, written: Path, mentions: Mentions
) -> CompiledPlan | None:
    """The steps of compiling; None when a problem was found."""
    resolved = resolve(problems, plan, written)
    name, directory = resolved.name, resolved.directory
    check_state_dir(problems, plan.settings, name, directory)
    checks = TemplateChecks(problems, name, resolved.path)
    parents = check_parents(problems, plan.tasks)
    check_trackers(problems, plan)
    check_agents(problems, plan)
    check_tokens(problems, plan)
    state = directory / state_folder(name, plan.settings.state_dir)
    files = DiskFiles(directory, state, mentions)
    plan_repositories(problems, plan, resolved, files, state)
    tasks = TaskBuilder(problems, plan, resolved, parents, checks, files).build()
    hooks = {
        moment: tuple(CommandSpec.of(c) for c in getattr(plan.hooks, moment) or ())
        for moment in RUN_HOOKS
    }
    checks.hooks(hooks)
    graph = task_graph(problems, tasks, link(problems, plan.tasks, tasks, parents.children))
    own = task_changesets(problems, plan, name, resolved.projects, tasks)
    if graph is None or problems:
        return None
    return CompiledPlan(
        name=name,
        path=resolved.path,
        directory=directory,
        sha256=hashlib.sha256(problems.source.text.encode()).hexdigest(),
        settings=plan_settings(plan.settings),
        providers=resolved.providers,
        projects=resolved.projects,
        hooks=hooks,
        tasks=tasks,
        graph=graph,
        secrets=tuple(plan.settings.secrets),
        trackers=dict(plan.trackers),
        agents=dict(plan.agents),
        agent_tasks={
            t.for_each.agent: k
            for k, t in plan.tasks.items()
            if t.for_each is not None and t.for_each.agent is not None
        },
        publishing=publish_policy(plan),
        repositories=resolved.repositories,
        task_changesets=own,
    )


def plan_settings(settings: Settings) -> PlanSettings:
    """The validated ``settings:`` as the plain values a run reads."""
    budget = settings.budget
    limits = (
        None if budget is None else BudgetSpec(budget.wall_time, budget.cost_usd, budget.tokens)
    )
    return PlanSettings(
        max_concurrent=settings.max_concurrent,
        on_failure=settings.on_failure,
        state_dir=settings.state_dir,
        tmux_socket=settings.tmux_socket,
        budget=limits,
        env=EnvSpec(tuple(settings.env.inherit), dict(settings.env.set)),
        secrets=tuple(settings.secrets),
        hook_timeout=settings.hook_timeout,
        kill_grace=settings.kill_grace,
        log_limit=settings.log_limit,
        serve_interval=settings.serve.interval,
    )


__all__ = ["CompiledPlan", "Provider", "compile_plan"]

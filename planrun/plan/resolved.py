"""The compiled plan: every task with every field resolved, ready to schedule.

Plain frozen dataclasses (not pydantic) because a plan may hold 100,000 tasks and these are
built after validation has already happened, and because nothing here may import the
plan's schema models: a run, and a plan loaded from the cache (:mod:`planrun.plan.cache`),
never pay for building them.
"""

from __future__ import annotations

import re
from dataclasses import field, fields
from functools import cached_property
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from planrun.core.frozen import frozen
from planrun.core.outcomes import DEFAULT_RETRY_ON, Outcome
from planrun.errors import Location

if TYPE_CHECKING:
    from planrun.core.graph import TaskGraph
    from planrun.plan.model import PlaneAgent, ShellCommand, Tracker

Kind = Literal["work", "group"]


@frozen
class CommandSpec:
    """A command as written: argv (executed directly) or shell text (``/bin/sh -c``)."""

    argv: tuple[str, ...] | None = None
    shell: str | None = None

    @classmethod
    def of(cls, value: list[str] | ShellCommand) -> CommandSpec:
        if isinstance(value, list):
            return cls(argv=tuple(value))
        return cls(shell=value.shell)

    def describe(self) -> str:
        return self.shell if self.shell is not None else " ".join(self.argv or ())

    def as_data(self) -> list[str] | dict[str, str]:
        return {"shell": self.shell} if self.shell is not None else list(self.argv or ())


@frozen
class RetryPolicy:
    attempts: int = 1
    initial: float = 5.0
    factor: float = 2.0
    max: float = 300.0
    jitter: float = 0.2
    on: frozenset[Outcome] = frozenset(DEFAULT_RETRY_ON)

    def retries(self, outcome: Outcome) -> bool:
        return outcome in self.on


@frozen
class BudgetSpec:
    wall_time: float | None = None
    cost_usd: float | None = None
    tokens: int | None = None


@frozen
class EnvSpec:
    """``settings.env``: the names inherited from planrun's environment, and values set."""

    inherit: tuple[str, ...] = ("PATH", "HOME", "LANG", "TERM")
    set: dict[str, str] = field(default_factory=dict)


@frozen
class PlanSettings:
    """``settings:`` of the plan, resolved (see :class:`planrun.plan.model.Settings`)."""

    max_concurrent: int = 4
    on_failure: Literal["continue", "stop", "cancel"] = "continue"
    state_dir: str | None = None
    tmux_socket: str | None = None
    budget: BudgetSpec | None = None
    env: EnvSpec = field(default_factory=EnvSpec)
    secrets: tuple[str, ...] = ()
    hook_timeout: float = 300.0
    kill_grace: float = 5.0
    log_limit: int | None = 100 * 1000**2
    serve_interval: float = 60.0  # settings.serve.interval: seconds between serve's polls


@frozen
class AnswerSpec:
    expect: str
    send: str


@frozen
class ProviderSpec:
    name: str
    command: tuple[str, ...]
    prompt_via: Literal["argv", "stdin", "file", "type"]
    prompt_command: tuple[str, ...] | None
    yolo_flag: tuple[str, ...]
    autonomous_prompt_template: str
    success_exit_codes: frozenset[int]
    success_pattern: str | None
    failure_pattern: str | None
    input_pattern: str | None
    answers: tuple[AnswerSpec, ...]
    usage: str
    max_concurrent: int | None
    backend: str | None
    env: tuple[tuple[str, str], ...]
    secrets: tuple[str, ...]
    preset: str | None

    @property
    def is_agent(self) -> bool:
        """A provider that takes a prompt (everything except plain commands)."""
        return bool(self.command)

    def compiled(self, name: str) -> re.Pattern[str] | None:
        pattern: str | None = getattr(self, name)
        return re.compile(pattern) if pattern else None


@frozen
class ChangesetSpec:
    """A project's ``changeset:``, resolved (docs/batch-changes.md): ``branch`` rendered,
    ``published`` chosen for ``repo``; ``title`` and ``body`` stay templates, rendered
    when the changeset is recorded (``body`` None: planrun's own list of the tasks)."""

    repo: str
    token: str
    remote: str
    branch: str
    base: str
    title: str
    body: str | None
    labels: tuple[str, ...]
    reviewers: tuple[str, ...]
    published: bool | Literal["draft"]
    url: str
    on_base_change: Literal["rebase", "rerun", "ignore"] = "rebase"
    commit_message: str | None = None  # a template: one squashed commit is proposed
    fork: Literal["auto", "always", "never"] = "auto"  # when the branch goes to a fork
    fork_organization: str | None = None  # where the fork is made (None: the token's user)

    def context(self, plan: str, project: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """What the title and body templates see (each task: key, title, status, reason)."""
        return {
            "plan": {"name": plan},
            "project": {"name": project, "repo": self.repo, "branch": self.branch},
            "tasks": tasks,
        }


@frozen
class PublishPolicy:
    """The plan's ``changesets:``: PRs per hour, and the outcomes that fail the run."""

    per_hour: int | None = None
    fail_on: frozenset[str] = frozenset({"failed"})
    waves: tuple[int, ...] = ()
    halt_above: float = 0.0  # a share: 0.2 for 20%
    close_unmatched: bool = False


@frozen
class RepoSpec:
    """One repository of a project's ``repositories:`` (docs/batch-changes.md): its
    ``owner/name``, where it is cloned from, and its clone in the state folder."""

    name: str
    url: str
    path: str  # absolute: <state folder>/repos/<owner>/<name>
    project: str  # the written project, e.g. "svc"; its repository's is svc[owner/name]
    default_branch: str | None = None  # as a query answered it; None for a listed URL
    token: str | None = None  # the variable whose token authenticates an https:// clone

    @property
    def key(self) -> str:
        """The repository's own project: ``svc[owner/name]``."""
        return f"{self.project}[{self.name}]"


@frozen
class ProjectSpec:
    name: str
    path: str  # absolute
    base_branch: str | None
    worktrees: bool
    integrate: Literal["merge", "squash", "rebase", "none"]
    target_branch: str  # rendered
    setup: tuple[CommandSpec, ...]
    setup_timeout: float
    max_concurrent: int | None
    changeset: ChangesetSpec | None = None


@frozen(slots=True)
class Task:
    """One node of the task graph: a unit of work, or a group (a parent or a fan-out)."""

    key: str
    kind: Kind
    title: str
    description: str
    location: Location
    project: str | None = None
    provider: str = "shell"
    backend: str = "subprocess"
    priority: int = 0
    base_branch: str | None = None
    run_when: Literal["success", "always", "failure"] = "success"
    review: bool = False
    timeout: float | None = 3600.0
    idle_timeout: float | None = None
    input_timeout: float = 600.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    env: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()
    hooks: tuple[tuple[str, tuple[CommandSpec, ...]], ...] = ()
    tags: tuple[str, ...] = ()
    max_turns: int = 3
    verify: CommandSpec | None = None
    budget: BudgetSpec | None = None
    autonomous: bool = True
    needs: tuple[str, ...] = ()  # direct needs, as expanded keys
    parent: str | None = None
    children: tuple[str, ...] = ()
    run: CommandSpec | None = None
    prompt: str | None = None  # the prompt template (prompt or prompt_file's text)
    item: Any = None  # the fan-out item this task works on
    item_id: str | None = None
    spec_key: str = ""  # the key as written (a fan-out's items share it)

    def hook_commands(self, moment: str) -> tuple[CommandSpec, ...]:
        for name, commands in self.hooks:
            if name == moment:
                return commands
        return ()

    def __getstate__(self) -> tuple[Any, ...]:
        """The fields' values, in order (pickled by the compiled-plan cache)."""
        return _TASK_FIELDS(self)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        """Set each slot straight through its descriptor: a cached plan of 1,000 tasks
        loads in 3.8 ms instead of dataclasses' 6.1 ms (which looks the fields up and
        goes through ``object.__setattr__`` for every value)."""
        for put, value in zip(_TASK_SLOTS, state, strict=True):
            put(self, value)

    def template_context(self) -> dict[str, Any]:
        """What templates see as ``task``."""
        return {
            "key": self.key,
            "title": self.title,
            "description": self.description,
            "priority": self.priority,
            "tags": list(self.tags),
            "project": self.project,
            "provider": self.provider,
            "needs": list(self.needs),
            "parent": self.parent,
            "item_id": self.item_id,
        }


_TASK_NAMES = tuple(f.name for f in fields(Task))
_TASK_FIELDS = attrgetter(*_TASK_NAMES)
_TASK_SLOTS = tuple(Task.__dict__[name].__set__ for name in _TASK_NAMES)


@frozen
class CompiledPlan:
    """Everything ``apply`` needs, resolved and checked (made by
    :func:`planrun.plan.compile.compile_plan`)."""

    name: str
    path: Path
    directory: Path
    sha256: str
    settings: PlanSettings
    providers: dict[str, ProviderSpec]
    projects: dict[str, ProjectSpec]
    hooks: dict[str, tuple[CommandSpec, ...]]
    tasks: dict[str, Task]
    graph: TaskGraph
    secrets: tuple[str, ...] = ()
    #: the plan's trackers as declared (pydantic models: a plan that reads one is never
    #: cached, see planrun.plan.probes.not_cacheable)
    trackers: dict[str, Tracker] = field(default_factory=dict)
    #: the plan's agents as declared (pydantic models; a plan with an agent's fan-out is
    #: never cached either)
    agents: dict[str, PlaneAgent] = field(default_factory=dict)
    #: agent name → the key of the task that fans out over its mentions
    agent_tasks: dict[str, str] = field(default_factory=dict)
    publishing: PublishPolicy = field(default_factory=PublishPolicy)
    #: each ``repositories:`` project's repositories, in order (planrun.plan.repositories)
    repositories: dict[str, tuple[RepoSpec, ...]] = field(default_factory=dict)
    #: each task's own changeset, by task key (planrun.plan.taskchangesets)
    task_changesets: dict[str, ChangesetSpec] = field(default_factory=dict)

    def changeset_of(self, name: str) -> ChangesetSpec | None:
        """The changeset of project ``name``, else of task ``name`` (None: none)."""
        project = self.projects.get(name)
        if project is not None:
            return project.changeset
        return self.task_changesets.get(name)

    @property
    def has_changesets(self) -> bool:
        """Whether a project or a task has a changeset."""
        return bool(self.task_changesets) or any(p.changeset for p in self.projects.values())

    @cached_property
    def work(self) -> tuple[str, ...]:
        """The keys of the work tasks (not groups), in dispatch order."""
        return tuple(k for k in self.graph.topological() if self.tasks[k].kind == "work")

    @cached_property
    def fingerprints(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Each work task's fingerprint and field hashes (:mod:`planrun.core.fingerprint`):
        made once, when the plan is compiled, and kept with it in the compiled-plan cache
        (a run of a cached plan does not hash its tasks again). Do not change it."""
        from planrun.core.fingerprint import fingerprint

        return {k: fingerprint(self, self.tasks[k]) for k in self.work}

    def plan_context(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "dir": str(self.directory)}

    def project_context(self, name: str | None) -> dict[str, Any]:
        if name is None:
            return {"name": None, "path": str(self.directory)}
        project = self.projects[name]
        return {
            "name": project.name,
            "path": project.path,
            "base_branch": project.base_branch,
            "target_branch": project.target_branch,
        }

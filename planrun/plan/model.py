"""The plan file as pydantic models (format version 1, SPEC §2).

These models describe what a user may *write*: every field of a task is optional here,
because values are inherited (built-in defaults → ``defaults`` → parent → task). The
resolved, fully-defaulted view of a task lives in :mod:`planrun.plan.resolve`.

Unknown keys are errors everywhere (``extra="forbid"``); values are never coerced between
types (``strict=True``), so ``priority: "3"`` or ``review: "yes"`` are errors, not guesses.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from planrun.outcomes import NEVER_RETRIED, RETRYABLE, Outcome
from planrun.plan.durations import DURATION_PATTERN, parse_duration

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

NEED_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\[\]\n]+\])?$"

Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN, max_length=128)]
#: a task key, or one item of a fanned-out task: ``KEY[item-id]``
NeedRef = Annotated[str, StringConstraints(pattern=NEED_PATTERN, max_length=400)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            f"a duration is text like 90s, 10m or 1h30m, not {type(value).__name__} {value!r}"
        )
    return parse_duration(value)


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["90s", "1h30m"]}),
]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_regex)]


class ShellCommand(BaseModel):
    """A command run by ``/bin/sh -c``; values inserted by templates are shell-quoted."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    shell: NonEmptyStr


def _command(value: object) -> object:
    if isinstance(value, list):
        if not value:
            raise ValueError("a command needs at least one element (the program)")
        if not all(isinstance(v, str) for v in value):
            raise ValueError("every element of an argv command must be text (quote numbers)")
        return value
    if isinstance(value, str):
        raise ValueError(
            f"write a command as a list (argv), e.g. [{value.split()[0] if value.split() else 'cmd'}"
            f", ...], or as {{shell: {value!r}}} to run it through the shell"
        )
    if isinstance(value, dict):
        return value
    raise ValueError("a command is a list of strings (argv) or {shell: '...'}")


Command = Annotated[
    list[str] | ShellCommand,
    BeforeValidator(_command),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {
                    "type": "object",
                    "properties": {"shell": {"type": "string", "minLength": 1}},
                    "required": ["shell"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Budget(Model):
    """Limits on a task or the whole run; once one is exceeded nothing new starts."""

    wall_time: Duration | None = None
    cost_usd: Annotated[float, Field(gt=0)] | None = None
    tokens: Annotated[int, Field(gt=0)] | None = None


class EnvSettings(Model):
    inherit: list[EnvName] = Field(default_factory=lambda: ["PATH", "HOME", "LANG", "TERM"])
    set: dict[EnvName, str] = Field(default_factory=dict)


class Settings(Model):
    max_concurrent: Annotated[int, Field(ge=1)] = 4
    on_failure: Literal["continue", "stop", "cancel"] = "continue"
    state_dir: NonEmptyStr = ".planrun"
    tmux_socket: NonEmptyStr | None = None
    budget: Budget | None = None
    env: EnvSettings = Field(default_factory=EnvSettings)
    secrets: list[EnvName] = Field(default_factory=list)
    hook_timeout: Duration = 300.0
    kill_grace: Duration = 5.0


class Backoff(Model):
    initial: Duration | None = None
    factor: Annotated[float, Field(ge=1)] | None = None
    max: Duration | None = None
    jitter: Annotated[float, Field(ge=0, le=1)] | None = None


def _retry_on(values: list[Outcome]) -> list[Outcome]:
    for value in values:
        if value in NEVER_RETRIED:
            raise ValueError(f"{value.value} is never retried blindly; remove it from retry.on")
        if value not in RETRYABLE:
            allowed = ", ".join(sorted(o.value for o in RETRYABLE))
            raise ValueError(f"{value.value} cannot be retried; retry.on takes {allowed}")
    return values


class Retry(Model):
    attempts: Annotated[int, Field(ge=1, le=100)] | None = None  # TOTAL attempts
    backoff: Backoff | None = None
    on: Annotated[list[Annotated[Outcome, Field(strict=False)]], AfterValidator(_retry_on)] | None = (
        None
    )


class TaskHooks(Model):
    on_task_start: list[Command] | None = None
    on_task_retry: list[Command] | None = None
    on_task_success: list[Command] | None = None
    on_task_failure: list[Command] | None = None


class Hooks(TaskHooks):
    on_run_start: list[Command] | None = None
    on_run_end: list[Command] | None = None


class Success(Model):
    exit_codes: list[int] | None = None
    pattern: Regex | None = None


class Failure(Model):
    pattern: Regex | None = None


class AnswerRule(Model):
    expect: Regex
    send: str


Backend = Literal["subprocess", "pty", "tmux"]
PromptVia = Literal["argv", "stdin", "file", "type"]
UsageKind = Literal["none", "claude-json", "codex-json", "gemini-json"]


class Provider(Model):
    """How to start and prompt an agent CLI (or any command)."""

    preset: NonEmptyStr | None = None
    command: list[str] | None = None
    prompt_via: PromptVia | None = None
    prompt_command: list[str] | None = None
    yolo_flag: str | list[str] | None = None
    autonomous_prompt_template: str | None = None
    success: Success | None = None
    failure: Failure | None = None
    input_pattern: Regex | None = None
    answers: list[AnswerRule] | None = None
    usage: UsageKind | None = None
    max_concurrent: Annotated[int, Field(ge=1)] | None = None
    backend: Backend | None = None
    env: dict[EnvName, str] | None = None
    secrets: list[EnvName] | None = None


class Project(Model):
    """A git repository (or a plain folder) that tasks work in."""

    path: NonEmptyStr
    base_branch: NonEmptyStr | None = None
    worktrees: bool = True
    integrate: Literal["merge", "squash", "rebase", "none"] = "merge"
    target_branch: NonEmptyStr = "planrun-{{ plan.name }}"
    setup: list[Command] = Field(default_factory=list)
    setup_timeout: Duration = 600.0
    max_concurrent: Annotated[int, Field(ge=1)] | None = None


class ForEach(Model):
    """Fan a task out over items; exactly one source: items, glob, matrix, lines or same_as."""

    items: list[Any] | None = None
    glob: NonEmptyStr | None = None
    matrix: dict[Key, list[Any]] | None = None
    lines: NonEmptyStr | None = None
    same_as: Key | None = None
    batch: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ForEach:
        sources = [
            name
            for name in ("items", "glob", "matrix", "lines", "same_as")
            if getattr(self, name) is not None
        ]
        if len(sources) != 1:
            given = ", ".join(sources) if sources else "none"
            raise ValueError(
                f"for_each takes exactly one of items, glob, matrix, lines, same_as (got {given})"
            )
        if self.same_as is not None and self.batch is not None:
            raise ValueError("batch cannot be combined with same_as (items follow KEY's items)")
        return self


class TaskFields(Model):
    """Fields a task inherits: from built-in defaults, ``defaults`` and its parent."""

    project: Key | None = None
    provider: Key | None = None
    backend: Backend | None = None
    priority: int | None = None
    base_branch: NonEmptyStr | None = None
    run_when: Literal["success", "always", "failure"] | None = None
    review: bool | None = None
    timeout: Duration | None = None
    idle_timeout: Duration | None = None
    input_timeout: Duration | None = None
    retry: Retry | None = None
    env: dict[EnvName, str] | None = None
    secrets: list[EnvName] | None = None
    hooks: TaskHooks | None = None
    tags: list[NonEmptyStr] | None = None
    max_turns: Annotated[int, Field(ge=1, le=100)] | None = None
    verify: Command | None = None
    budget: Budget | None = None
    autonomous: bool | None = None


class TaskSpec(TaskFields):
    """One task as written in the plan."""

    title: str | None = None
    description: str | None = None
    needs: list[NeedRef] | None = None
    blocked_by: list[NeedRef] | None = None
    parent: Key | None = None
    run: Command | None = None
    prompt: str | None = None
    prompt_file: NonEmptyStr | None = None
    for_each: ForEach | None = None

    @model_validator(mode="after")
    def _exclusive(self) -> TaskSpec:
        if self.needs is not None and self.blocked_by is not None:
            raise ValueError("use either needs or blocked_by (its alias), not both")
        if self.prompt is not None and self.prompt_file is not None:
            raise ValueError("use either prompt or prompt_file, not both")
        return self

    @property
    def dependencies(self) -> list[str]:
        return list(self.needs or self.blocked_by or [])


class PlanFile(Model):
    """The root of a plan file."""

    version: Literal[1]
    name: Key | None = None
    settings: Settings = Field(default_factory=Settings)
    defaults: TaskFields = Field(default_factory=TaskFields)
    providers: dict[Key, Provider] = Field(default_factory=dict)
    projects: dict[Key, Project] = Field(default_factory=dict)
    hooks: Hooks = Field(default_factory=Hooks)
    tasks: Annotated[dict[Key, TaskSpec], Field(min_length=1)]


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of the plan file, for editors and CI (schemas/plan.schema.json)."""
    schema = PlanFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://planrun.dev/schemas/plan.schema.json"
    schema["title"] = "planrun plan file (version 1)"
    return schema

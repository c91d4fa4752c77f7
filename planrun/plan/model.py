"""The plan file as pydantic models (format version 1, SPEC §2).

These models describe what a user may *write*: every field of a task is optional here,
because values are inherited (built-in defaults → ``defaults`` → parent → task). The
resolved, fully-defaulted view of a task is :class:`planrun.plan.resolved.Task`, built by
:mod:`planrun.plan.tasks` as a plan compiles; :mod:`planrun.plan.diagnose` turns validation
errors into messages.

Unknown keys are errors everywhere (``extra="forbid"``); values are never coerced between
types (``strict=True``), so ``priority: "3"`` or ``review: "yes"`` are errors, not guesses.
"""

# No ``from __future__ import annotations`` here: pydantic would have to evaluate every
# field's annotation from its text while it builds the models at start-up (about a tenth
# of their build time). The annotations below are evaluated once, by Python.

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
    model_validator,
)

from planrun.core.outcomes import NEVER_RETRIED, RETRYABLE, Outcome
from planrun.plan.diagnose import EXCLUSIVE_FIELDS, describe, suggest
from planrun.plan.durations import DURATION_PATTERN, parse_duration
from planrun.plan.refs import branch_message, branch_problem
from planrun.plan.sizes import SIZE_PATTERN, parse_size

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

NEED_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\[\]\n]+\])?$"

Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN, max_length=128)]
#: a task key, or one item of a fanned-out task: ``KEY[item-id]``
NeedRef = Annotated[str, StringConstraints(pattern=NEED_PATTERN, max_length=400)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]


def _with_unit(
    parse: Callable[[str], Any], expected: str, unit: str, meaning: str
) -> Callable[[object], Any]:
    """A validator of text with a unit (``90s``, ``100MB``): a bare number is refused
    with the spelling that would have worked."""

    def validate(value: object) -> Any:
        if isinstance(value, bool) or not isinstance(value, str):
            hint = f" (write {value}{unit} for {meaning})" if isinstance(value, int | float) else ""
            # pydantic reports ValueError (not TypeError) as a validation error
            raise ValueError(f"expected {expected}; got {describe(value)}{hint}")  # noqa: TRY004
        return parse(value)

    return validate


_duration = _with_unit(parse_duration, "a duration like 90s, 10m or 1h30m", "s", "seconds")
_size = _with_unit(parse_size, "a size like 100MB, 5MiB or 512KB", "B", "bytes")
Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["90s", "1h30m"]}),
]
Size = Annotated[
    int,
    BeforeValidator(_size),
    WithJsonSchema({"type": "string", "pattern": SIZE_PATTERN, "examples": ["100MB", "5MiB"]}),
]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_regex)]


def _branch(value: str) -> str:
    problem = branch_problem(value)
    if problem is not None:
        raise ValueError(branch_message(value, problem))
    return value


#: A git branch name as written (not a template): checked with git's rules
#: (:mod:`planrun.plan.refs`) when the plan is validated, not when ``apply`` runs git.
BranchName = Annotated[NonEmptyStr, AfterValidator(_branch)]


class ShellCommand(BaseModel):
    """A command run by ``/bin/sh -c``; values inserted by templates are shell-quoted."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    shell: NonEmptyStr


def _command(value: object) -> object:
    """Steer a command to its form (argv list or ``{shell: ...}``) with a helpful error."""
    if isinstance(value, list):
        if not value:
            raise ValueError("a command needs at least one element (the program)")
        return value
    if isinstance(value, str):
        words = value.split()
        head = words[0] if words else "cmd"
        raise ValueError(  # noqa: TRY004 (pydantic reports ValueError, not TypeError)
            f"write a command as a list (argv), e.g. [{head}, ...], "
            f"or as {{shell: {value!r}}} to run it through the shell"
        )
    if isinstance(value, dict):
        unknown = [str(k) for k in value if k != "shell"]
        if unknown or "shell" not in value:
            what = (
                f"; unknown key {unknown[0]!r}{suggest(unknown[0], ['shell'])}" if unknown else ""
            )
            raise ValueError(f"a shell command is written {{shell: 'text'}}{what}")
        return value
    kind = "true/false" if isinstance(value, bool) else type(value).__name__
    raise ValueError(f"a command is a list of text (argv) or {{shell: '...'}}; got {kind}")


def _command_form(value: object) -> str:
    return "shell" if isinstance(value, dict | ShellCommand) else "argv"


_COMMAND_SCHEMA: dict[str, Any] = {
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

Command = Annotated[
    Annotated[list[str], Tag("argv")] | Annotated[ShellCommand, Tag("shell")],
    Discriminator(_command_form),
    BeforeValidator(_command),
    WithJsonSchema(_COMMAND_SCHEMA),
]


def _text_as_shell(value: object) -> object:
    return {"shell": value} if isinstance(value, str) and value.strip() else value


#: One setup command: argv, ``{shell: ...}``, or plain text run by the shell (as the SPEC's
#: ``setup: ["pip install -e ."]`` writes it).
SetupCommand = Annotated[
    Command,
    BeforeValidator(_text_as_shell),
    WithJsonSchema({"oneOf": [{"type": "string", "minLength": 1}, *_COMMAND_SCHEMA["oneOf"]]}),
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
    #: None: ``.planrun/<plan name>`` next to the plan (one state folder per plan)
    state_dir: NonEmptyStr | None = None
    tmux_socket: NonEmptyStr | None = None
    budget: Budget | None = None
    env: EnvSettings = Field(default_factory=EnvSettings)
    secrets: list[EnvName] = Field(default_factory=list)
    hook_timeout: Duration = 300.0
    kill_grace: Duration = 5.0
    #: Bytes one session may write to its log; then a marker, and the rest is not logged
    #: (it is still watched for patterns and kept in the tail). None: no limit.
    log_limit: Size | None = 100 * 1000**2


class Backoff(Model):
    initial: Duration | None = None
    factor: Annotated[float, Field(ge=1)] | None = None
    max: Duration | None = None
    jitter: Annotated[float, Field(ge=0, le=1)] | None = None


def _retry_outcome(value: object) -> object:
    """One entry of ``retry.on``: an outcome that may be retried, named as text."""
    if not isinstance(value, str):
        return value  # the Outcome validator reports the type
    allowed = ", ".join(sorted(o.value for o in RETRYABLE))
    if value in {o.value for o in NEVER_RETRIED}:
        raise ValueError(f"{value} is never retried blindly; remove it (retry.on takes {allowed})")
    if value not in {o.value for o in RETRYABLE}:
        hint = suggest(value, [o.value for o in RETRYABLE])
        raise ValueError(f"{value!r} is not an outcome retry.on takes{hint}; use {allowed}")
    return Outcome(value)


RetryOutcome = Annotated[
    Outcome,
    BeforeValidator(_retry_outcome),
    WithJsonSchema({"type": "string", "enum": sorted(o.value for o in RETRYABLE)}),
]


class Retry(Model):
    """How often a task is attempted and how long to wait between attempts."""

    attempts: Annotated[int, Field(ge=1, le=100)] | None = None  # TOTAL attempts
    backoff: Backoff | None = None
    on: list[RetryOutcome] | None = None


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
    yolo_flag: NonEmptyStr | list[str] | None = None
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
    base_branch: BranchName | None = None
    worktrees: bool = True
    integrate: Literal["merge", "squash", "rebase", "none"] = "merge"
    target_branch: NonEmptyStr = "planrun-{{ plan.name }}"
    setup: list[SetupCommand] = Field(default_factory=list)
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
    def _one_source(self) -> Self:
        sources = [
            name
            for name in ("items", "glob", "matrix", "lines", "same_as")
            if getattr(self, name) is not None
        ]
        if len(sources) != 1:
            given = " and ".join(sources) if sources else "none of them"
            raise ValueError(
                "give exactly one source of items: items, glob, matrix, lines or same_as "
                f"(this one has {given})"
            )
        if self.same_as is not None and self.batch is not None:
            raise ValueError(
                "batch cannot be combined with same_as (the items are those of the same_as task)"
            )
        return self


class TaskFields(Model):
    """Fields a task inherits: from built-in defaults, ``defaults`` and its parent."""

    project: Key | None = None
    provider: Key | None = None
    backend: Backend | None = None
    priority: int | None = None
    base_branch: BranchName | None = None
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
    def _exclusive(self) -> Self:
        for first, second, message in EXCLUSIVE_FIELDS:
            if getattr(self, first) is not None and getattr(self, second) is not None:
                raise ValueError(message)
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
    _close_pattern_objects(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://planrun.dev/schemas/plan.schema.json"
    schema["title"] = "planrun plan file (version 1)"
    return schema


def _close_pattern_objects(node: Any) -> None:
    """Mappings keyed by a pattern (task names, env names) allow no other keys, as the loader."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_objects(value)

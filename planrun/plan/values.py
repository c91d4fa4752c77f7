"""The values a plan file's fields hold, as pydantic types: keys, durations and sizes with
their units, regular expressions, branch names, commands (argv or ``{shell: ...}``) and
the outcomes ``retry.on`` takes. :mod:`planrun.plan.model` builds the plan's models
from them.
"""

# No ``from __future__ import annotations``: see planrun/plan/model.py.

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    StringConstraints,
    Tag,
    WithJsonSchema,
)

from planrun.core.outcomes import NEVER_RETRIED, RETRYABLE, Outcome
from planrun.errors import suggest
from planrun.plan.diagnose import describe
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
            "properties": {
                "shell": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Text run by /bin/sh -c; values inserted by templates"
                    " are shell-quoted.",
                }
            },
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

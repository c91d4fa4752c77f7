"""From a task attempt to the argv, prompt and environment of its session.

Plain commands (``run``) render each argv element separately, or render ``{shell: ...}``
with every inserted value shell-quoted and run it as ``/bin/sh -c``. Agent providers run
``command`` (+ ``yolo_flag`` when autonomous) and get the prompt the provider's way:
appended to argv, on stdin, in a file (``{{ prompt_file }}`` in the command, or appended),
or typed into the terminal.

Linux refuses to start a command with any one argument of 128 KiB or more
(``MAX_ARG_STRLEN``); :func:`build_launch` checks each element first and says which one is
too long and what to do instead (for a prompt: ``prompt_via: stdin`` or ``file``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planrun.plan import templates
from planrun.plan.resolved import CommandSpec, ProviderSpec, Task

SHELL = "/bin/sh"
#: Linux's limit on one argv element, in bytes, counting its terminating NUL (32 pages).
MAX_ARG_STRLEN = 32 * 4096


class ArgumentTooLong(templates.TemplateProblem):
    """An argv element longer than Linux allows. A TemplateProblem, so that the attempt
    fails as startup_failed with this message, as it does for a template that fails."""


@dataclass(frozen=True)
class Launch:
    argv: tuple[str, ...]
    stdin_text: str | None = None
    type_text: str | None = None


def command_argv(command: CommandSpec, context: dict[str, Any]) -> tuple[str, ...]:
    if command.shell is not None:
        return (SHELL, "-c", templates.render(command.shell, context, shell=True))
    return tuple(templates.render_argv(list(command.argv or ()), context))


def render_prompt(task: Task, provider: ProviderSpec, context: dict[str, Any]) -> str:
    source = task.prompt if task.prompt is not None else provider.autonomous_prompt_template
    return templates.render(source, context)


def build_launch(
    task: Task, provider: ProviderSpec, context: dict[str, Any], prompt_dir: Path
) -> Launch:
    """The argv and prompt delivery of one attempt.

    Raises TemplateProblem on bad templates, ArgumentTooLong when an argv element is
    longer than Linux allows (the process could never start).
    """
    launch = _launch(task, provider, context, prompt_dir)
    _check_lengths(launch.argv, task, provider)
    return launch


def _check_lengths(argv: tuple[str, ...], task: Task, provider: ProviderSpec) -> None:
    limit = MAX_ARG_STRLEN - 1
    for index, arg in enumerate(argv):
        size = len(arg.encode("utf-8", "surrogatepass"))
        if size <= limit:
            continue
        if task.run is not None:
            raise ArgumentTooLong(
                f"argument {index} of the command is {size} bytes: Linux refuses to start a "
                f"command with an argument over {limit} bytes (MAX_ARG_STRLEN); pass long "
                "text through a file or stdin instead"
            )
        what = (
            "the prompt"
            if provider.prompt_via == "argv" and index == len(argv) - 1
            else f"argument {index} of provider {provider.name}'s command"
        )
        raise ArgumentTooLong(
            f"{what} is {size} bytes: Linux refuses to start a command with an argument over "
            f"{limit} bytes (MAX_ARG_STRLEN); set prompt_via: stdin or prompt_via: file on "
            f"provider {provider.name} to send long prompts"
        )


def _launch(
    task: Task, provider: ProviderSpec, context: dict[str, Any], prompt_dir: Path
) -> Launch:
    if task.run is not None:
        return Launch(command_argv(task.run, context))
    prompt = render_prompt(task, provider, context)
    context = {**context, "prompt": prompt}
    flags = provider.yolo_flag if task.autonomous else ()
    if provider.prompt_via == "file":
        path = prompt_dir / f"prompt-{context.get('attempt', 1)}.md"
        prompt_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(prompt, encoding="utf-8")
        path.chmod(0o600)
        context["prompt_file"] = str(path)
        uses_file = any("prompt_file" in part for part in provider.command)
        with_file = templates.render_argv(list(provider.command), context)
        tail = () if uses_file else (str(path),)
        return Launch((*with_file, *flags, *tail))
    argv = tuple(templates.render_argv(list(provider.command), context))
    if provider.prompt_via == "argv":
        return Launch((*argv, *flags, prompt))
    if provider.prompt_via == "stdin":
        return Launch((*argv, *flags), stdin_text=prompt)
    return Launch((*argv, *flags), type_text=prompt)


def build_followup(
    task: Task, provider: ProviderSpec, context: dict[str, Any], prompt: str
) -> Launch:
    """A follow-up turn: ``prompt_command`` with ``{{ prompt }}``, or the command again.

    Yolo flags go after the rendered prompt_command (every preset's placeholder is a
    positional or an option value, so an appended flag still parses as a flag).
    """
    flags = provider.yolo_flag if task.autonomous else ()
    context = {**context, "prompt": prompt}
    if provider.prompt_command:
        return Launch((*templates.render_argv(list(provider.prompt_command), context), *flags))
    argv = tuple(templates.render_argv(list(provider.command), context))
    if provider.prompt_via == "stdin":
        return Launch((*argv, *flags), stdin_text=prompt)
    if provider.prompt_via == "type":
        return Launch((*argv, *flags), type_text=prompt)
    return Launch((*argv, *flags, prompt))


def verify_prompt(command: str, exit_info: str, tail: list[str]) -> str:
    """What the agent is told when the task's ``verify`` command failed."""
    output = "\n".join(tail[-40:]) or "(no output)"
    return (
        f"The check `{command}` failed ({exit_info}) after your changes. Its output ends with:\n\n"
        f"{output}\n\nFix the problem, then commit your work."
    )

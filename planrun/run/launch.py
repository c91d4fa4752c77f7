"""From a task attempt to the argv, prompt and environment of its session.

Plain commands (``run``) render each argv element separately, or render ``{shell: ...}``
with every inserted value shell-quoted and run it as ``/bin/sh -c``. Agent providers run
``command`` (+ ``yolo_flag`` when autonomous) and get the prompt the provider's way:
appended to argv, on stdin, in a file (``{{ prompt_file }}`` in the command, or appended),
or typed into the terminal.

Linux refuses to start a command with any one argument of 128 KiB or more
(``MAX_ARG_STRLEN``); :func:`build_launch` checks each element first and says which one is
too long and what to do instead (for a prompt: ``prompt_via: stdin`` or ``file``).

No process can be given a NUL byte (exec takes C strings). Validation refuses every NUL it
can see (in the plan, in a ``prompt_file``, in what a template produces with the plan's
values); what only a run knows is checked here: a rendered command or prompt holding a NUL
raises :class:`NulByte`, naming the field, before anything is started or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planrun.core.frozen import frozen
from planrun.errors import text_position
from planrun.plan import templates
from planrun.plan.resolved import CommandSpec, ProviderSpec, Task

SHELL = "/bin/sh"
#: Linux's limit on one argv element, in bytes, counting its terminating NUL (32 pages).
MAX_ARG_STRLEN = 32 * 4096


class ArgumentTooLong(templates.TemplateProblem):
    """An argv element longer than Linux allows. A TemplateProblem, so that the attempt
    fails as startup_failed with this message, as it does for a template that fails."""


class NulByte(templates.TemplateProblem):
    """A NUL byte in text bound for a process: ``field`` says which text (``argument 1 of
    the task's run command``, ``the prompt (...)``), ``index`` where its first NUL is.

    A TemplateProblem, so that the attempt fails as startup_failed with this message (and a
    hook or verify command fails with it), as it does for a template that fails.
    """

    def __init__(self, field: str, text: str, index: int) -> None:
        self.field = field
        self.index = index
        line, column = text_position(text, index)
        where = f"character {column}" if line == 1 else f"line {line}, column {column}"
        super().__init__(
            f"{field} contains a NUL byte (\\0) at {where}: a NUL byte cannot be passed to a "
            "process; remove it from the plan or the file it came from"
        )


def _refuse_nul(text: str, field: str) -> str:
    """``text``, or :class:`NulByte` naming ``field`` if it holds a NUL byte."""
    index = text.find("\0")
    if index >= 0:
        raise NulByte(field, text, index)
    return text


def _rendered(parts: list[str], context: dict[str, Any], what: str) -> tuple[str, ...]:
    """``parts`` rendered as argv; NulByte naming the argument of ``what`` that holds one."""
    argv = templates.render_argv(parts, context)
    return tuple(_refuse_nul(arg, f"argument {i} of {what}") for i, arg in enumerate(argv))


def _over_limit(argv: tuple[str, ...]) -> tuple[int, int] | None:
    """The first argument Linux would refuse as too long, as (index, size in bytes)."""
    for index, arg in enumerate(argv):
        size = len(arg.encode("utf-8", "surrogatepass"))
        if size >= MAX_ARG_STRLEN:
            return index, size
    return None


@frozen
class Launch:
    argv: tuple[str, ...]
    stdin_text: str | None = None
    type_text: str | None = None


def command_argv(
    command: CommandSpec, context: dict[str, Any], what: str = "the command"
) -> tuple[str, ...]:
    """The argv of a command, rendered; NulByte (naming ``what``) if it would hold a NUL."""
    if command.shell is not None:
        text = templates.render(command.shell, context, shell=True)
        return (SHELL, "-c", _refuse_nul(text, f"the shell text of {what}"))
    return _rendered(list(command.argv or ()), context, what)


def render_prompt(task: Task, provider: ProviderSpec, context: dict[str, Any]) -> str:
    source = task.prompt if task.prompt is not None else provider.autonomous_prompt_template
    return templates.render(source, context)


def build_launch(
    task: Task, provider: ProviderSpec, context: dict[str, Any], prompt_dir: Path
) -> Launch:
    """The argv and prompt delivery of one attempt.

    Raises TemplateProblem on bad templates, ArgumentTooLong when an argv element is
    longer than Linux allows, NulByte when an argv element or the prompt holds a NUL byte
    (the process could never start, or would be given text cut short).
    """
    launch = _launch(task, provider, context, prompt_dir)
    _check_lengths(launch.argv, task, provider)
    return launch


def _check_lengths(argv: tuple[str, ...], task: Task, provider: ProviderSpec) -> None:
    over = _over_limit(argv)
    if over is None:
        return
    index, size = over
    limit = MAX_ARG_STRLEN - 1
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
        return Launch(command_argv(task.run, context, "the task's run command"))
    prompt = _refuse_nul(render_prompt(task, provider, context), _prompt_field(task, provider))
    context = {**context, "prompt": prompt}
    flags = provider.yolo_flag if task.autonomous else ()
    if provider.prompt_via == "file":
        path = prompt_dir / f"prompt-{context.get('attempt', 1)}.md"
        context["prompt_file"] = str(path)
        uses_file = any("prompt_file" in part for part in provider.command)
        with_file = _provider_argv(provider, context)
        prompt_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(prompt, encoding="utf-8")
        path.chmod(0o600)
        tail = () if uses_file else (str(path),)
        return Launch((*with_file, *flags, *tail))
    argv = _provider_argv(provider, context)
    if provider.prompt_via == "argv":
        return Launch((*argv, *flags, prompt))
    if provider.prompt_via == "stdin":
        return Launch((*argv, *flags), stdin_text=prompt)
    return Launch((*argv, *flags), type_text=prompt)


def _prompt_field(task: Task, provider: ProviderSpec) -> str:
    if task.prompt is not None:
        return "the prompt (the task's prompt or prompt_file)"
    return f"the prompt (provider {provider.name}'s autonomous_prompt_template)"


def _provider_argv(provider: ProviderSpec, context: dict[str, Any]) -> tuple[str, ...]:
    return _rendered(list(provider.command), context, f"provider {provider.name}'s command")


def build_followup(
    task: Task, provider: ProviderSpec, context: dict[str, Any], prompt: str
) -> Launch:
    """A follow-up turn: ``prompt_command`` with ``{{ prompt }}``, or the command again.

    Yolo flags go after the rendered prompt_command (every preset's placeholder is a
    positional or an option value, so an appended flag still parses as a flag). Raises
    what :func:`build_launch` raises, for the same reasons.
    """
    flags = provider.yolo_flag if task.autonomous else ()
    prompt = _refuse_nul(prompt, "the follow-up prompt")
    context = {**context, "prompt": prompt}
    if provider.prompt_command:
        what = f"provider {provider.name}'s prompt_command"
        argv = _rendered(list(provider.prompt_command), context, what)
        over = _over_limit(argv)
        if over is not None:
            raise ArgumentTooLong(
                f"argument {over[0]} of {what} is {over[1]} bytes with the follow-up prompt: "
                f"Linux refuses to start a command with an argument over "
                f"{MAX_ARG_STRLEN - 1} bytes (MAX_ARG_STRLEN); a prompt_command cannot "
                "take a prompt that long"
            )
        return Launch((*argv, *flags))
    argv = _provider_argv(provider, context)
    if provider.prompt_via == "stdin":
        return Launch((*argv, *flags), stdin_text=prompt)
    if provider.prompt_via == "type":
        return Launch((*argv, *flags), type_text=prompt)
    launch = Launch((*argv, *flags, prompt))
    _check_lengths(launch.argv, task, provider)
    return launch


def verify_prompt(command: str, exit_info: str, tail: list[str]) -> str:
    """What the agent is told when the task's ``verify`` command failed."""
    output = "\n".join(tail[-40:]) or "(no output)"
    return (
        f"The check `{command}` failed ({exit_info}) after your changes. Its output ends with:\n\n"
        f"{output}\n\nFix the problem, then commit your work."
    )

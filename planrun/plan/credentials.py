"""planrun's own credentials (tracker and changeset tokens) never reach a session.

A token is a declared secret, so it is redacted everywhere; unlike other secrets, no
task, provider or ``defaults`` may grant it to a session, and ``settings.env.inherit`` may
not pass it on: it is planrun's, never an agent's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from planrun.plan.model import PlanFile
from planrun.plan.problems import Problems


def keep_from_sessions(
    problems: Problems,
    plan: PlanFile,
    holders: Mapping[str, str],
    role: Callable[[str], str],
    subject: str,
) -> None:
    """Report each token of ``holders`` (token → who holds it) that ``settings.env.inherit``
    or a ``secrets`` list would hand to a session. ``role(holder)`` says what the token is
    (``the token of tracker gh``) and ``subject`` what is never handed (``it is``)."""
    for index, name in enumerate(plan.settings.env.inherit):
        if name in holders:
            problems.fail(
                ("settings", "env", "inherit", index),
                f"{name} is {role(holders[name])}; {subject} never passed on to sessions "
                "(remove it from settings.env.inherit)",
            )
    for where, granted in grants(plan):
        for index, secret in enumerate(granted):
            if secret in holders:
                problems.fail(
                    (*where, index),
                    f"secret {secret!r} is {role(holders[secret])}; {subject} never given "
                    "to a task's session",
                )


def declared(
    problems: Problems, plan: PlanFile, where: tuple[str | int, ...], name: str, who: str
) -> bool:
    """Whether the variable ``name`` is a declared secret; else report it at ``where`` as
    ``who`` holds it (``tracker gh: token``)."""
    if name in plan.settings.secrets:
        return True
    problems.fail(
        where,
        f"{who} {name!r} is not declared in settings.secrets (declare it there, so that its "
        "value is redacted everywhere)",
    )
    return False


def grants(plan: PlanFile) -> list[tuple[tuple[str, ...], list[str]]]:
    """Every written ``secrets`` list that grants secrets to sessions, with its place."""
    found: list[tuple[tuple[str, ...], list[str]]] = []
    if plan.defaults.secrets:
        found.append((("defaults", "secrets"), plan.defaults.secrets))
    for key, task in plan.tasks.items():
        if task.secrets:
            found.append((("tasks", key, "secrets"), task.secrets))
    for name, provider in plan.providers.items():
        if provider.secrets:
            found.append((("providers", name, "secrets"), provider.secrets))
    return found


__all__ = ["declared", "grants", "keep_from_sessions"]

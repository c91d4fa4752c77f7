"""``planrun attach PLAN KEY``: attach your terminal to a task's tmux session."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO

import trio

from planrun.commands.apply import check_keys
from planrun.errors import UsageError
from planrun.plan.load import load_plan
from planrun.run.wiring import tmux_socket


def run_attach(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.run.attempt import session_name
    from planrun.sessions.tmux import attach_argv, list_sessions, tmux_name

    plan = load_plan(Path(args.plan))
    check_keys(plan, [args.key], "attach")
    task = plan.tasks[args.key]
    if task.backend != "tmux":
        raise UsageError(
            f"{args.key} runs on the {task.backend} backend; only tmux sessions "
            "can be attached (set backend: tmux)"
        )
    socket = tmux_socket(plan)
    name = tmux_name(session_name(plan.name, task, 0))
    if name not in trio.run(list_sessions, socket, name):
        raise UsageError(f"{args.key} has no live tmux session (it is not running)")
    argv = attach_argv(socket, name)
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}  # tmux refuses to nest
    os.execvpe(argv[0], argv, env)
    return 0  # not reached

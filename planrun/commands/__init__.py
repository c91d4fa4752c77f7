"""Commands that run plans (apply, status, logs, ...): registered on the main parser."""

from __future__ import annotations

import argparse
from typing import Any


def register_run_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the commands that execute plans; each lives in a module of its own."""
    from planrun.commands import answer, apply, approve, attach, clean, logs, report, status

    apply.add_parser(commands)
    approve.add_parser(commands)
    clean.add_parser(commands)
    answer.add_parser(commands)
    status.add_parser(commands)
    logs.add_parser(commands)
    report.add_parser(commands)
    attach.add_parser(commands)

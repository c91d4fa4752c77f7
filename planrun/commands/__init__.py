"""Commands that run plans (apply, status, logs, ...): registered on the main parser."""

from __future__ import annotations

import argparse
from typing import Any


def register_run_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the commands that execute plans; each lives in a module of its own."""
    from planrun.commands import answer, apply, approve, clean

    apply.add_parser(commands)
    approve.add_parser(commands)
    clean.add_parser(commands)
    answer.add_parser(commands)

"""Every command of the command line, as an argument parser.

Each parser names its handler in :mod:`planrun.commands.handlers`, which imports the
command's module only when the command runs, so ``planrun status`` or ``--version`` never
pay for the scheduler, pydantic or git.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from planrun.commands import handlers


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add every command's parser; each names its handler in :mod:`planrun.commands.handlers`."""
    _basic(commands)
    for add in (_apply, _status, _logs, _report, _approve, _answer, _attach, _clean):
        add(commands)


def _basic(commands: Any) -> None:
    p = commands.add_parser("validate", help="check plans: schema, references, cycles, templates")
    p.add_argument("plans", nargs="+", metavar="PLAN")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    p.set_defaults(handler=handlers.validate)

    p = commands.add_parser("plan", help="what apply would do, task by task, and why (read-only)")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--force", nargs="+", metavar="KEY", default=[], help="as apply --force")
    p.add_argument("--force-all", action="store_true", help="as apply --force-all")
    p.add_argument("--rerun-failed", action="store_true", help="as apply --rerun-failed")
    p.add_argument("--state-dir", type=Path, metavar="DIR", help="override settings.state_dir")
    p.set_defaults(handler=handlers.plan)

    p = commands.add_parser("graph", help="draw the task graph")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--format", choices=["mermaid", "dot", "json"], default="mermaid")
    p.set_defaults(handler=handlers.graph)

    p = commands.add_parser("schema", help="print a JSON Schema (plan or report)")
    p.add_argument("which", choices=["plan", "report"])
    p.set_defaults(handler=handlers.schema)

    p = commands.add_parser("init", help="write a commented starter plan")
    p.add_argument("path", nargs="?", default="plan.yaml")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=handlers.init)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _apply(commands: Any) -> None:
    p = commands.add_parser("apply", help="run the plan: every ready task, concurrently")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument(
        "--max-concurrent",
        "-j",
        type=_positive,
        metavar="N",
        help="override settings.max_concurrent",
    )
    p.add_argument("--only", nargs="+", metavar="KEY", help="run only these tasks and their needs")
    p.add_argument(
        "--force",
        nargs="+",
        metavar="KEY",
        default=[],
        help="run these tasks even if they are up to date",
    )
    p.add_argument("--force-all", action="store_true", help="run every task again")
    p.add_argument("--rerun-failed", action="store_true", help="give failed tasks fresh attempts")
    p.add_argument("--on-failure", choices=["continue", "stop", "cancel"])
    p.add_argument("--dry-run", action="store_true", help="show what would run; run nothing")
    p.add_argument("--report", type=Path, metavar="FILE", help="also write the JSON report here")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    p.add_argument(
        "--summary",
        type=Path,
        metavar="FILE",
        help="append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)",
    )
    p.add_argument("--events", metavar="FILE|-", help="stream every event as JSON lines")
    p.add_argument("--progress", choices=["auto", "live", "plain", "none"], default="auto")
    p.add_argument("--state-dir", type=Path, metavar="DIR", help="override settings.state_dir")
    p.set_defaults(handler=handlers.apply)


def _approve(commands: Any) -> None:
    p = commands.add_parser("approve", help="land a task held in review (review: true)")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--state-dir", type=Path, metavar="DIR")
    p.set_defaults(handler=handlers.approve)


def _clean(commands: Any) -> None:
    p = commands.add_parser(
        "clean",
        help="remove worktrees/branches planrun made (never dirty ones)",
        description="Remove the worktrees and branches planrun made for PLAN's tasks: by"
        " default those of done tasks; --failed also those of failed or cancelled tasks;"
        " --all everything under planrun/<plan>/ except work in review. A worktree with"
        " uncommitted changes is never removed: it is kept, and named on stderr with the"
        " git commands that would remove it by hand.",
        epilog="exit codes: 0 everything asked for was removed, or there was nothing to do;"
        " 1 something asked for was kept (the rest was still removed), or a git command"
        " failed; 2 usage or invalid plan; 3 an apply holds the state lock",
    )
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--failed", action="store_true", help="also those of failed tasks")
    p.add_argument("--all", action="store_true", help="everything planrun made for this plan")
    p.add_argument("--state-dir", type=Path, metavar="DIR")
    p.set_defaults(handler=handlers.clean)


def _answer(commands: Any) -> None:
    p = commands.add_parser("answer", help="answer a task that waits for input (needs_input)")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("key", metavar="KEY")
    p.add_argument("text", metavar="TEXT", help="the answer ('-' reads it from stdin)")
    p.add_argument("--state-dir", type=Path, metavar="DIR")
    p.set_defaults(handler=handlers.answer)


def _status(commands: Any) -> None:
    """Register ``status`` on the main parser's subcommands."""
    p = commands.add_parser("status", help="the last run's tasks and states (read-only)")
    p.add_argument("plan", metavar="PLAN", nargs="?", help="default: ./.planrun's last run")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--state-dir", type=Path, metavar="DIR", help="override settings.state_dir")
    p.set_defaults(handler=handlers.status)


def _logs(commands: Any) -> None:
    """Register ``logs`` on the main parser's subcommands."""
    p = commands.add_parser("logs", help="print a task attempt's log (--follow: as it grows)")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--attempt", type=int, metavar="N", help="attempt N (default: the latest)")
    p.add_argument("--run", metavar="ID", help="look in this run only")
    p.add_argument("--follow", "-f", action="store_true", help="print output until it ends")
    p.add_argument(
        "--raw",
        action="store_true",
        help="the bytes as logged, terminal escape sequences included (default: without"
        " escape sequences and control characters, progress-bar redraws collapsed)",
    )
    p.add_argument("--state-dir", type=Path, metavar="DIR", help="override settings.state_dir")
    p.set_defaults(handler=handlers.logs)


def _report(commands: Any) -> None:
    """Register ``report`` on the main parser's subcommands."""
    p = commands.add_parser("report", help="regenerate a past run's report, JUnit and summary")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--run", metavar="ID", help="the run (default: the last one)")
    p.add_argument("--json-out", metavar="FILE", help="write the JSON report here (- = stdout)")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--summary", type=Path, metavar="FILE", help="append a Markdown summary to FILE")
    p.add_argument("--state-dir", type=Path, metavar="DIR", help="override settings.state_dir")
    p.set_defaults(handler=handlers.report)


def _attach(commands: Any) -> None:
    p = commands.add_parser("attach", help="attach to a task's tmux session (backend: tmux)")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("key", metavar="KEY")
    p.set_defaults(handler=handlers.attach)

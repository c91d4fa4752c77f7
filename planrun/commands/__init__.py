"""Every command of the command line, as an argument parser.

Each parser names its handler in :mod:`planrun.commands.handlers`, which imports the
command's module only when the command runs, so ``planrun status`` or ``--version`` never
pay for the scheduler, pydantic or git. Each command's ``--help`` ends with examples and
its exit codes (:mod:`planrun.commands.helptext`).

Options may come before or after the positional arguments. An option that takes several
task keys (``--only``, ``--force``) takes one per flag, repeatable, or a comma list, so
that ``apply --only lint plan.yaml`` is not read as two keys; after PLAN, one flag may
also be followed by several keys (``apply plan.yaml --only lint test``), as it always
could: :func:`spread_lists` rewrites those as one flag per key before argparse reads them.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planrun.commands import handlers
from planrun.commands.helptext import epilog
from planrun.commands.serve_args import add_serve
from planrun.commands.words import key_list
from planrun.commands.words import spread_lists as spread_lists

PLAN_HELP = "the plan file (YAML)"
KEY_HELP = "a task's key, as in the plan (KEY or KEY[item] for one item of a fan-out)"
STATE_DIR_HELP = "the state folder (default: settings.state_dir, or .planrun/<plan> beside it)"


def register(commands: argparse._SubParsersAction[Any], only: str | None = None) -> None:
    """Add the commands' parsers (just ``only``'s when it names one: a run of ``planrun
    apply`` need not build the other 15, about 3 ms); each names its handler in
    :mod:`planrun.commands.handlers`."""
    adders = _adders()
    for name, add in adders.items():
        if only not in adders or name == only:
            add(commands)


def _adders() -> dict[str, Callable[[Any], None]]:
    """Each command's parser maker, by the command's name, in the order help lists them."""
    return {
        "validate": _validate,
        "plan": _plan,
        "graph": _graph,
        "schema": _schema,
        "init": _init,
        "apply": _apply,
        "status": _status,
        "logs": _logs,
        "report": _report,
        "approve": _approve,
        "answer": _answer,
        "attach": _attach,
        "clean": _clean,
        "changesets": _changesets,
        "completion": _completion,
        "board": _board,
        "serve": add_serve,
    }


def _command(commands: Any, name: str, summary: str, description: str = "") -> Any:
    """A command's parser; its epilog (examples, exit codes) is laid out as written, so
    the description is wrapped here."""
    text = description or summary[:1].upper() + summary[1:] + "."
    return commands.add_parser(
        name,
        help=summary,
        description=textwrap.fill(text, 79),
        epilog=epilog(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _plan_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", metavar="PLAN", help=PLAN_HELP)


def _state_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=Path, metavar="DIR", help=STATE_DIR_HELP)


def _store(p: argparse.ArgumentParser) -> None:
    """A run shared by several machines through PostgreSQL (docs/scale-out.md)."""
    p.add_argument(
        "--store",
        metavar="URL",
        help="a postgresql://USER@HOST:PORT/DB shared by every machine of the run (default:"
        " $PLANRUN_STORE; unset: this machine's state folder only)",
    )


def _keys_option(p: argparse.ArgumentParser, flag: str, what: str, default: Any) -> None:
    p.add_argument(
        flag,
        action="extend",
        type=key_list,
        metavar="KEY[,KEY...]",
        default=default,
        help=f"{what}; repeat the flag or give a comma list (after PLAN, one flag may take"
        " several keys)",
    )


def _validate(commands: Any) -> None:
    p = _command(
        commands,
        "validate",
        "check plans: schema, references, cycles, templates",
        "Check each plan as apply would, without running anything: its YAML and schema,"
        " needs, parents and cycles, providers, projects, secrets and every template. Every"
        " problem is reported in one pass, as file:line:col: message; a problem that hides"
        " other checks says which.",
    )
    p.add_argument("plans", nargs="+", metavar="PLAN", help="one or more plan files")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    p.set_defaults(handler=handlers.validate)


def _plan(commands: Any) -> None:
    p = _command(commands, "plan", "what apply would do, task by task, and why (read-only)")
    _plan_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _keys_option(p, "--force", "as apply --force", [])
    p.add_argument("--force-all", action="store_true", help="as apply --force-all")
    p.add_argument("--rerun-failed", action="store_true", help="as apply --rerun-failed")
    _state_dir(p)
    p.set_defaults(handler=handlers.plan)


def _graph(commands: Any) -> None:
    p = _command(commands, "graph", "draw the task graph")
    _plan_arg(p)
    p.add_argument(
        "--format",
        choices=["mermaid", "dot", "json"],
        default="mermaid",
        help="mermaid (default; GitHub renders it), dot (Graphviz) or json",
    )
    p.set_defaults(handler=handlers.graph)


def _schema(commands: Any) -> None:
    p = _command(commands, "schema", "print a JSON Schema (plan, report or events)")
    p.add_argument(
        "which",
        choices=["plan", "report", "events"],
        metavar="{plan,report,events}",
        help="plan: the plan file (for editors); report: the JSON run report; "
        "events: one line of --events",
    )
    p.set_defaults(handler=handlers.schema)


def _init(commands: Any) -> None:
    p = _command(
        commands,
        "init",
        "write a commented starter plan",
        "Write a commented starter plan that runs offline with shell commands only.",
    )
    p.add_argument(
        "path", nargs="?", default="plan.yaml", metavar="PATH", help="default: plan.yaml"
    )
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
    p = _command(commands, "apply", "run the plan: every ready task, concurrently")
    _plan_arg(p)
    p.add_argument(
        "--max-concurrent",
        "-j",
        type=_positive,
        metavar="N",
        help="override settings.max_concurrent",
    )
    _keys_option(p, "--only", "run only these tasks and what they need", None)
    _keys_option(p, "--force", "run these tasks even if they are up to date", [])
    p.add_argument("--force-all", action="store_true", help="run every task again")
    p.add_argument("--rerun-failed", action="store_true", help="give failed tasks fresh attempts")
    p.add_argument(
        "--follow-up",
        action="store_true",
        help="give each open changeset PR's requested changes and failing checks to one turn"
        " of its project's agent, run the checks, and update the PR",
    )
    p.add_argument(
        "--on-failure",
        choices=["continue", "stop", "cancel"],
        help="override settings.on_failure: continue (run everything not blocked), stop"
        " (start nothing new) or cancel (also cancel running tasks)",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would run; run nothing")
    _apply_outputs(p)
    _state_dir(p)
    _store(p)
    p.add_argument(
        "--run-id",
        metavar="ID",
        help="with --store: join the shared run ID (e.g. the CI pipeline's id); default: the"
        " open run of this plan, or a new one",
    )
    p.add_argument(
        "--remote",
        default="origin",
        metavar="NAME",
        help="with --store: the git remote every machine lands on (default: origin)",
    )
    p.set_defaults(handler=handlers.apply)


def _apply_outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--report", type=Path, metavar="FILE", help="also write the JSON report here")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    p.add_argument(
        "--summary",
        type=Path,
        metavar="FILE",
        help="append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)",
    )
    p.add_argument(
        "--events", metavar="FILE|-", help="stream every event as JSON lines ('-': stdout)"
    )
    p.add_argument(
        "--progress",
        choices=["auto", "live", "plain", "none"],
        default="auto",
        help="auto (default): a live table on a terminal, plain lines elsewhere (and"
        " whenever CI is set); live; plain (one line per event, for CI logs, with"
        " ::error:: annotations and log groups under GitHub Actions); none",
    )


def _approve(commands: Any) -> None:
    p = _command(commands, "approve", "land a task held in review (review: true)")
    _plan_arg(p)
    p.add_argument("key", metavar="KEY", help=KEY_HELP)
    _state_dir(p)
    _store(p)
    p.set_defaults(handler=handlers.approve)


def _clean(commands: Any) -> None:
    p = _command(
        commands,
        "clean",
        "remove worktrees/branches planrun made (never dirty ones)",
        "Remove the worktrees and branches planrun made for PLAN's tasks: by"
        " default those of done tasks; --failed also those of failed or cancelled tasks;"
        " --all everything under planrun/<plan>/ except work in review. A worktree with"
        " uncommitted changes is never removed: it is kept, and named on stderr with the"
        " git commands that would remove it by hand.",
    )
    _plan_arg(p)
    p.add_argument("--failed", action="store_true", help="also those of failed tasks")
    p.add_argument("--all", action="store_true", help="everything planrun made for this plan")
    _state_dir(p)
    _store(p)
    p.set_defaults(handler=handlers.clean)


#: What `planrun changesets --state` can choose: a PR's state on GitHub, or what planrun
#: recorded when there is none (docs/batch-changes.md).
CHANGESET_STATES = (
    "open",
    "draft",
    "merged",
    "closed",
    "unpublished",
    "waiting",
    "failed",
    "no_diff",
    "exists",
)


def _changesets(commands: Any) -> None:
    p = _command(
        commands,
        "changesets",
        "the plan's pull requests: list, merge, close or comment in bulk",
        "The changesets (pull requests) PLAN's runs recorded, with each PR's state, checks"
        " and review decision read from GitHub; merge, close or comment on the chosen ones"
        " (docs/batch-changes.md).",
    )
    _plan_arg(p)
    p.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=("list", "merge", "close", "comment"),
        help="list (the default), or merge, close or comment on each chosen PR",
    )
    p.add_argument("text", nargs="?", metavar="TEXT", help="the comment (comment only)")
    p.add_argument(
        "--state",
        choices=CHANGESET_STATES,
        metavar="S",
        help=f"only these: {', '.join(CHANGESET_STATES)}",
    )
    p.add_argument("--repo", metavar="PATTERN", help="only repositories matching (acme/web-*)")
    p.add_argument(
        "--checks",
        choices=("passing", "failing", "pending", "none"),
        help="only PRs whose check runs are these (none: no check runs, or no PR)",
    )
    _state_dir(p)
    p.set_defaults(handler=handlers.changesets)


def _answer(commands: Any) -> None:
    p = _command(commands, "answer", "answer a task that waits for input (needs_input)")
    _plan_arg(p)
    p.add_argument("key", metavar="KEY", help=KEY_HELP)
    p.add_argument("text", metavar="TEXT", help="the answer ('-' reads it from stdin)")
    _state_dir(p)
    _store(p)
    p.set_defaults(handler=handlers.answer)


def _status(commands: Any) -> None:
    p = _command(commands, "status", "the last run's tasks and states (read-only)")
    p.add_argument(
        "plan", metavar="PLAN", nargs="?", help="the plan file (default: ./.planrun's last run)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _state_dir(p)
    _store(p)
    p.set_defaults(handler=handlers.status)


def _logs(commands: Any) -> None:
    p = _command(commands, "logs", "print a task attempt's log (--follow: as it grows)")
    _plan_arg(p)
    p.add_argument("key", metavar="KEY", help=KEY_HELP)
    p.add_argument("--attempt", type=int, metavar="N", help="attempt N (default: the latest)")
    p.add_argument("--run", metavar="ID", help="look in this run only")
    p.add_argument("--follow", "-f", action="store_true", help="print output until it ends")
    p.add_argument(
        "--raw",
        action="store_true",
        help="the bytes as logged, terminal escape sequences included (default: without"
        " escape sequences and control characters, progress-bar redraws collapsed)",
    )
    _state_dir(p)
    _store(p)
    p.set_defaults(handler=handlers.logs)


def _report(commands: Any) -> None:
    p = _command(commands, "report", "regenerate a past run's report, JUnit and summary")
    _plan_arg(p)
    p.add_argument("--run", metavar="ID", help="the run (default: the last one)")
    p.add_argument("--json-out", metavar="FILE", help="write the JSON report here (- = stdout)")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--summary", type=Path, metavar="FILE", help="append a Markdown summary to FILE")
    _state_dir(p)
    _store(p)
    p.set_defaults(handler=handlers.report)


def _attach(commands: Any) -> None:
    p = _command(commands, "attach", "attach to a task's tmux session (backend: tmux)")
    _plan_arg(p)
    p.add_argument("key", metavar="KEY", help=KEY_HELP)
    p.set_defaults(handler=handlers.attach)


def _completion(commands: Any) -> None:
    p = _command(
        commands,
        "completion",
        "print a shell completion script (bash, zsh or fish)",
        "Print a completion script for SHELL, made from this parser (shtab): commands,"
        " options and their choices; plan files and folders where a path goes.",
    )
    p.add_argument(
        "shell", choices=["bash", "zsh", "fish"], metavar="SHELL", help="bash, zsh or fish"
    )
    p.set_defaults(handler=handlers.completion)


def _board(commands: Any) -> None:
    p = commands.add_parser(
        "board",
        help="a live web page of a run (read-only)",
        description=textwrap.fill(
            "Serve a read-only web page of PLAN's current or a past run: tasks in columns by"
            " status, the task graph, each task's attempts and live log, and what waits for"
            " a person with the command to continue. It updates live while apply runs."
            " Bound to loopback unless --listen names another address.",
            79,
        ),
        epilog=BOARD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _plan_arg(p)
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where to listen (default: 127.0.0.1:8642; port 0: any free port; another"
        " address than loopback is warned about: the board has no login)",
    )
    p.add_argument("--run", metavar="ID", help="show this run (default: the latest, live)")
    _state_dir(p)
    _store(p)
    p.set_defaults(handler=handlers.board)


BOARD_EPILOG = """\
examples:
  planrun board plan.yaml                     open http://127.0.0.1:8642/
  planrun board plan.yaml --listen 127.0.0.1:0   any free port (the URL is printed)
  planrun board plan.yaml --run 20261206T142319Z-55e79b
  planrun board plan.yaml --store postgresql://planrun@db:5432/runs   a shared run

exit codes:
  0   served until Ctrl-C or SIGTERM
  2   invalid plan or usage (a bad --listen, an address in use)"""

"""The command line: parse arguments, call the library, map typed errors to exit codes.

Exit codes (SPEC §6): 0 every selected task done; 1 a task failed or was skipped; 2 invalid
plan or usage; 3 the state is locked by another apply; 130 interrupted; 70 a planrun bug.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from planrun import __version__
from planrun.errors import InternalError, PlanError, PlanrunError, UsageError

Handler = Callable[[argparse.Namespace, TextIO], int]


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns every exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="planrun",
        description="Run fleets of coding agents and command-line jobs from a YAML plan.",
    )
    parser.add_argument("--version", action="version", version=f"planrun {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("validate", help="check plans: schema, references, cycles, templates")
    p.add_argument("plans", nargs="+", metavar="PLAN")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    p.set_defaults(handler=_validate)

    p = commands.add_parser("plan", help="what apply would do, task by task, and why (read-only)")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--force", nargs="+", metavar="KEY", default=[], help="as apply --force")
    p.add_argument("--force-all", action="store_true", help="as apply --force-all")
    p.add_argument("--rerun-failed", action="store_true", help="as apply --rerun-failed")
    p.add_argument("--state-dir", type=Path, metavar="DIR", help="override settings.state_dir")
    p.set_defaults(handler=_plan)

    p = commands.add_parser("graph", help="draw the task graph")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--format", choices=["mermaid", "dot", "json"], default="mermaid")
    p.set_defaults(handler=_graph)

    p = commands.add_parser("schema", help="print a JSON Schema (plan or report)")
    p.add_argument("which", choices=["plan", "report"])
    p.set_defaults(handler=_schema)

    p = commands.add_parser("init", help="write a commented starter plan")
    p.add_argument("path", nargs="?", default="plan.yaml")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=_init)

    from planrun.commands import register_run_commands

    register_run_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "handler", None) is None:
            build_parser().print_help(out)
            return 2
        return resolve(args.handler)(args, out)
    except PlanError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        count = len(exc.diagnostics)
        print(f"{count} error{'s' if count != 1 else ''}", file=sys.stderr)
        return exc.exit_code
    except InternalError as exc:
        return _internal(exc)
    except PlanrunError as exc:
        print(f"planrun: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("planrun: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        return _internal(exc)


def run() -> NoReturn:
    """The ``planrun`` console script and ``python -m planrun``: :func:`main`, then exit at
    once. By then every command has closed what it opened (files, the state store, the
    journal's thread, its child processes); tearing the interpreter down object by object
    would only cost time (0.09 s after a 1,000-task apply). ``SystemExit`` (``--help``,
    ``--version``) leaves the usual way."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe loses nothing of ours
            stream.flush()
    os._exit(code)


def resolve(handler: Handler | str) -> Handler:
    """A handler, or a ``"module:function"`` name imported now (commands load lazily)."""
    if not isinstance(handler, str):
        return handler
    import importlib

    module, _, name = handler.partition(":")
    function: Handler = getattr(importlib.import_module(module), name)
    return function


def _internal(exc: BaseException) -> int:
    traceback.print_exception(exc, file=sys.stderr)
    print(
        "planrun: internal error (a bug in planrun); please report it with the lines above",
        file=sys.stderr,
    )
    return InternalError.exit_code


# --- commands that need no execution ----------------------------------------------------


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.plan.load import load_plan

    problems: list[PlanError] = []
    for name in args.plans:
        try:
            plan = load_plan(Path(name))
        except PlanError as exc:
            problems.append(exc)
            continue
        if not args.quiet:
            work = sum(1 for t in plan.tasks.values() if t.kind == "work")
            print(f"{name}: ok ({work} task{'s' if work != 1 else ''})", file=out)
    if problems:
        raise PlanError([d for exc in problems for d in exc.diagnostics])
    return 0


def _plan(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.plan import describe_plan
    from planrun.core.decision import Choices

    choices = Choices(args.force, args.force_all, args.rerun_failed)
    return describe_plan(
        Path(args.plan), out, as_json=args.json, choices=choices, state_dir=args.state_dir
    )


def _graph(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.plan.load import load_plan

    graph = load_plan(Path(args.plan)).graph
    drawing = {"mermaid": graph.to_mermaid, "dot": graph.to_dot, "json": graph.to_json}
    out.write(drawing[args.format]())
    return 0


def _schema(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.schemas import schema_for

    out.write(json.dumps(schema_for(args.which), indent=2, sort_keys=False) + "\n")
    return 0


def _init(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.starter import STARTER_PLAN

    path = Path(args.path)
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    path.write_text(STARTER_PLAN, encoding="utf-8")
    print(f"wrote {path}; try: planrun plan {path}", file=out)
    return 0

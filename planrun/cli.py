"""The command line: parse arguments, call the library, map typed errors to exit codes.

Exit codes (SPEC §6): 0 every selected task done; 1 a task failed or was skipped; 2 invalid
plan or usage; 3 the state is locked by another apply; 4 nothing failed but tasks wait for a
person (in review, needs input); 130 interrupted; 70 a planrun bug.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn, TextIO

from planrun import __version__
from planrun.commands import register, spread_lists
from planrun.commands.helptext import TOP
from planrun.errors import InternalError, PlanError, PlanrunError, UsageError

Handler = Callable[[argparse.Namespace, TextIO], int]


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns every exit."""

    #: the commands' parsers, by name (the top-level parser's only)
    commands: Mapping[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser(words: Sequence[str] = ()) -> _Parser:
    """The command line's parser; with ``words`` (the arguments to be parsed), only the
    parser of the command they name is built, unless they name none (then help lists
    every command)."""
    parser = _Parser(
        prog="planrun",
        description="Run fleets of coding agents and command-line jobs from a YAML plan.",
        epilog=TOP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"planrun {__version__}",
        help="print planrun's version and exit",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser, title="commands"
    )
    register(commands, next((w for w in words if not w.startswith("-")), None))
    parser.commands = commands.choices
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        words = sys.argv[1:] if argv is None else argv
        parser = build_parser(words)
        args = parser.parse_args(spread_lists(parser.commands, words))
        if getattr(args, "handler", None) is None:
            parser.print_help(out)
            return 2
        handler: Handler = args.handler
        return handler(args, out)
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
    ``--version``) leaves the usual way.

    The cyclic garbage collector runs after 50,000 new objects instead of 700: starting a
    command creates some 40,000 (modules, classes, the plan) and frees almost none, and
    the collections they triggered were 3% of a 1-task apply and 2% of 1,000 tasks
    (bench/RESULTS.md). A run's garbage is still freed by reference counting; cycles
    wait a little longer (peak RSS +6 MiB)."""
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe loses nothing of ours
            stream.flush()
    os._exit(code)


def _internal(exc: BaseException) -> int:
    traceback.print_exception(exc, file=sys.stderr)
    print(
        "planrun: internal error (a bug in planrun); please report it with the lines above",
        file=sys.stderr,
    )
    return InternalError.exit_code

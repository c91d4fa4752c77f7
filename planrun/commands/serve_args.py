"""The parser of ``planrun serve`` (docs/serve.md), apart so that the commands' module
stays short; it imports nothing heavier than argparse, as every parser."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from planrun.commands import handlers


def add_serve(commands: Any) -> None:
    from planrun.commands import _plan_arg, _positive, _state_dir  # the shared arguments

    p = commands.add_parser(
        "serve",
        help="keep running: start the tasks of new or edited tracker items as they appear",
        description=textwrap.fill(
            "Run PLAN as apply does, then read its trackers again every --interval and run"
            " the tasks of items that are new or were edited, beside the tasks already"
            " running and under the same caps; a task whose item is closed meanwhile is"
            " cancelled. SIGTERM or Ctrl-C drains (nothing new starts, running tasks"
            " finish); a second one cancels them. See docs/serve.md.",
            79,
        ),
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _plan_arg(p)
    p.add_argument(
        "--interval",
        type=_seconds,
        metavar="SECONDS",
        help="seconds between two reads of the trackers (default: settings.serve.interval"
        " of the plan, else 60)",
    )
    p.add_argument("--once", action="store_true", help="one pass, then exit with apply's codes")
    p.add_argument("--pause", action="store_true", help="pause dispatch of a serve, and exit")
    p.add_argument("--resume", action="store_true", help="resume dispatch of a serve, and exit")
    p.add_argument("--max-concurrent", "-j", type=_positive, metavar="N", help="as apply -j")
    p.add_argument("--on-failure", choices=["continue", "stop", "cancel"], help="as apply's")
    p.add_argument("--events", metavar="FILE|-", help="stream every event as JSON lines")
    p.add_argument(
        "--progress",
        choices=["auto", "live", "plain", "none"],
        default="plain",
        help="plain (default: one line per event, for a service's log), live, auto or none",
    )
    _state_dir(p)
    p.set_defaults(handler=handlers.serve)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


SERVE_EPILOG = """\
examples:
  planrun serve plan.yaml                    read the trackers every minute, run what is new
  planrun serve plan.yaml --interval 300     every five minutes
  planrun serve plan.yaml --once             one pass (cron, CI), apply's exit codes
  planrun serve plan.yaml --pause            from another shell: start nothing new
  planrun serve plan.yaml --resume           ... and start again

exit codes:
  0   drained after SIGTERM/Ctrl-C (--once: every selected task done, or nothing new)
  1   --once: a task failed, was skipped or was cancelled
  2   invalid plan or usage
  3   the state folder is locked by another apply or serve
  4   --once: tasks wait for a person (approve, answer)
  130 a second signal cancelled running tasks"""

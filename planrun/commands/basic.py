"""The commands that need no run: validate, graph, schema, init and completion."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from planrun.errors import PlanError, UsageError


def run_validate(args: argparse.Namespace, out: TextIO) -> int:
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


def run_graph(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.plan.load import load_plan

    graph = load_plan(Path(args.plan)).graph
    drawing = {"mermaid": graph.to_mermaid, "dot": graph.to_dot, "json": graph.to_json}
    out.write(drawing[args.format]())
    return 0


def run_schema(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.schemas import schema_text

    out.write(schema_text(args.which))
    return 0


def run_init(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.starter import starter_plan

    path = Path(args.path)
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    path.write_text(starter_plan(), encoding="utf-8")
    print(f"wrote {path}; try: planrun plan {path}", file=out)
    return 0


#: metavar → what a shell completes there (shtab's names for "a file", "a folder")
_PATHS = {"PLAN": "FILE", "PATH": "FILE", "FILE": "FILE", "FILE|-": "FILE", "DIR": "DIRECTORY"}


def run_completion(args: argparse.Namespace, out: TextIO) -> int:
    """A completion script for ``args.shell``, made by shtab from planrun's own parser."""
    import shtab

    from planrun.cli import build_parser

    parser = build_parser()
    for action in _actions(parser):
        kind = _PATHS.get(str(action.metavar))
        if kind is not None and action.choices is None:
            action.complete = getattr(shtab, kind)
    out.write(shtab.complete(parser, shell=args.shell))
    return 0


def _actions(parser: argparse.ArgumentParser) -> list[Any]:
    """Every argument of ``parser`` and of its commands' parsers."""
    found: list[Any] = []
    for action in parser._actions:
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                found += _actions(command)
    return found

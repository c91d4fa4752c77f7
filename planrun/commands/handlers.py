"""The handler of each command: a thin function that imports the command's module when
the command runs (so the parser stays cheap) and calls it. ``planrun.commands`` names these
in its parsers; "find usages" of a command's function leads here."""

from __future__ import annotations

import argparse
from typing import TextIO


def validate(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.basic import run_validate

    return run_validate(args, out)


def plan(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.plan import run_plan

    return run_plan(args, out)


def graph(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.basic import run_graph

    return run_graph(args, out)


def schema(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.basic import run_schema

    return run_schema(args, out)


def init(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.basic import run_init

    return run_init(args, out)


def apply(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.apply import run_apply

    return run_apply(args, out)


def status(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands import shared_views

    if shared_views.store_url(args) is not None:  # a run shared by several machines
        return shared_views.run_status(args, out)
    from planrun.commands.status import run_status_command

    return run_status_command(args, out)


def logs(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands import shared_views

    if shared_views.store_url(args) is not None:  # a run shared by several machines
        return shared_views.run_logs(args, out)
    from planrun.commands.logs import run_logs

    return run_logs(args, out)


def report(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands import shared_views

    if shared_views.store_url(args) is not None:  # a run shared by several machines
        return shared_views.run_report(args, out)
    from planrun.commands.report import run_report

    return run_report(args, out)


def approve(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.approve import run_approve

    return run_approve(args, out)


def answer(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands import shared_views

    if shared_views.store_url(args) is not None:  # to the machine that runs the task
        return shared_views.run_answer(args, out)
    from planrun.commands.answer import run_answer

    return run_answer(args, out)


def attach(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.attach import run_attach

    return run_attach(args, out)


def clean(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands import shared_views

    url = shared_views.store_url(args)
    if url is not None:  # also the task branches a shared run left on the remote
        from planrun.commands.shared_clean import run_shared_clean

        return run_shared_clean(args, url, out)
    from planrun.commands.clean import run_clean

    return run_clean(args, out)


def changesets(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.changesets import run_changesets

    return run_changesets(args, out)


def completion(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.basic import run_completion

    return run_completion(args, out)


def board(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.board import run_board

    return run_board(args, out)


def serve(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.serve import run_serve

    return run_serve(args, out)

"""`apply` exits 4 when the run stopped only because tasks wait for a person (SPEC §6).

In review (``review: true``) or waiting for an answer, with nothing failed, skipped or
cancelled: 4, so that CI can tell "a person is needed" from "something broke" (1). The
report's ``exit_code`` says the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planrun.cli import main
from tests.gitrepo import make_repos
from tests.runs import last_run_folder


def _plan(tmp_path: Path, tasks: str) -> Path:
    repo = make_repos(tmp_path).clone
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"version: 1\nname: ex\nprojects: {{app: {{path: {repo}, base_branch: main}}}}\n"
        f"defaults: {{project: app}}\ntasks:\n{tasks}"
    )
    return plan


def _apply(plan: Path) -> tuple[int, int]:
    """The exit code of an apply, and the exit code its report records."""
    code = main(["apply", str(plan), "--progress", "none"])
    report = json.loads((last_run_folder(plan) / "report.json").read_text())
    return code, report["exit_code"]


REVIEWED = '  R: {run: [sh, -c, "echo r > r.txt"], review: true}\n'


def test_a_run_waiting_only_for_review_exits_4(tmp_path: Path, clean_env: Path) -> None:
    plan = _plan(
        tmp_path, REVIEWED + "  AFTER: {run: ['true'], needs: [R]}\n  OK: {run: ['true']}\n"
    )
    assert _apply(plan) == (4, 4)  # AFTER waits behind R: still only a person is needed
    assert main(["approve", str(plan), "R"]) == 0
    assert _apply(plan) == (0, 0)


@pytest.mark.parametrize(
    "other",
    [
        '  BAD: {run: [sh, -c, "exit 3"]}\n',  # failed
        '  BAD: {run: [sh, -c, "exit 3"]}\n  NEXT: {run: [sh, -c, ":"], needs: [BAD]}\n',  # skipped
    ],
)
def test_a_failure_beside_a_review_still_exits_1(
    tmp_path: Path, clean_env: Path, other: str
) -> None:
    plan = _plan(tmp_path, REVIEWED + other)
    assert _apply(plan) == (1, 1)


def test_a_run_when_that_did_not_match_is_no_failure(tmp_path: Path, clean_env: Path) -> None:
    tasks = (
        REVIEWED
        + "  OK: {run: ['true']}\n  ONFAIL: {run: ['true'], needs: [OK], run_when: failure}\n"
    )
    assert _apply(_plan(tmp_path, tasks)) == (4, 4)

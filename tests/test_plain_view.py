"""What CI shows (issue 15): ``planrun apply --progress plain`` as a real process.

A failure names its last line of output, not only its exit code; the run ends with a
summary (what failed with its last lines, what was skipped because of what, the command
to see more or to continue, the totals); a dry run says so on every line. Under GitHub
Actions each failed task is an ``::error`` annotation, escaped as the runner's rules say,
its output is folded in a ``::group::`` in which workflow commands are off, and the
``--summary`` Markdown carries the same details.
"""

from __future__ import annotations

import re
from pathlib import Path

from planrun.report.model import AttemptReport, PlanInfo, RunReport, TaskReport
from planrun.report.write import summary_markdown
from planrun.ui import github
from tests import runs
from tests.view_plans import asking, in_repo, write

NOT_GITHUB = {"GITHUB_ACTIONS": ""}  # whatever runs these tests


def lines_of(text: str) -> list[str]:
    """stderr without the time stamps of event lines."""
    return [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in text.splitlines()]


def test_a_failure_names_its_last_line_and_the_run_ends_with_a_summary(tmp_path: Path) -> None:
    tasks = """\
  OK: {run: ["true"]}
  T: {run: [sh, -c, "echo compiling; echo 'boom: the widget is broken'; echo; exit 3"]}
  AFTER: {needs: [T], run: ["true"]}
"""
    plan = write(tmp_path, "plain", tasks)
    done = runs.apply(plan, env=NOT_GITHUB)
    assert done.returncode == 1, done.stderr
    lines = lines_of(done.stderr)
    assert "T: failed: exit code 3; last output: boom: the widget is broken" in lines
    assert "T: attempt 1 failed: exit code 3; last output: boom: the widget is broken" in lines
    summary = lines[lines.index("failed (1):") :]
    assert summary[:7] == [
        "failed (1):",
        "  T: exit code 3",
        "    | compiling",
        "    | boom: the widget is broken",
        "    | ",
        f"    more: planrun logs {plan} T",
        "not run (1):",
    ]
    assert summary[7] == "  AFTER: skipped: need T failed"
    assert summary[8].startswith("planrun plain: failed in ")
    assert summary[9] == "  3 tasks: 1 done, 1 failed, 1 skipped"
    assert not any(line.startswith("::") for line in lines)


def test_cancelled_tasks_are_named_with_the_command_that_runs_them(tmp_path: Path) -> None:
    tasks = """\
  FAIL: {run: [sh, -c, "until [ -e started ]; do sleep 0.05; done; exit 3"]}
  LONG: {run: [sh, -c, "touch started; until [ -e never ]; do sleep 0.05; done"]}
"""
    plan = write(tmp_path, "stop", tasks, "settings: {on_failure: cancel}\n")
    done = runs.apply(plan, env=NOT_GITHUB)
    assert done.returncode == 1, done.stderr
    lines = lines_of(done.stderr)
    assert "not run (1):" in lines
    assert "  LONG: cancelled: cancelled: the run stopped" in lines
    assert f"  to run what was cancelled: planrun apply {plan}" in lines


def test_a_dry_run_says_so_on_every_line(tmp_path: Path) -> None:
    tasks = '  A: {run: [sh, -c, "exit 3"]}\n  B: {needs: [A], run: ["true"]}\n'
    plan = write(tmp_path, "dry", tasks)
    done = runs.apply(plan, "--dry-run", env=NOT_GITHUB)
    assert done.returncode == 0, done.stderr
    lines = lines_of(done.stderr)
    assert len(lines) > 5
    assert all(line.startswith("[dry run] ") for line in lines), done.stderr
    assert "dry run: nothing was run, nothing changed" in lines[-2]


def test_an_unanswered_question_says_how_to_answer_it(tmp_path: Path) -> None:
    plan = asking(tmp_path, "1s")
    done = runs.apply(plan, env=NOT_GITHUB)
    assert done.returncode == 1, done.stderr
    lines = lines_of(done.stderr)
    answer = f"planrun answer {plan} Q TEXT"
    assert f"Q: needs input: Proceed with the migration? [y/N]; answer: {answer}" in lines
    assert f"    answer: {answer}" in lines
    assert f"    then: planrun apply {plan}" in lines


def test_a_task_still_in_review_from_an_earlier_run_is_named_with_its_command(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = in_repo(tmp_path, "rv", '  R: {run: [sh, -c, "echo r > r.txt"], review: true}\n')
    approve = f"approve: planrun approve {plan} R"
    for _ in range(2):  # the second apply runs nothing: R waits from the first one
        done = runs.apply(plan, env=NOT_GITHUB)
        lines = lines_of(done.stderr)
        assert "waiting for you (1):" in lines, done.stderr
        assert any(line.startswith("  R: waiting for review") for line in lines)
        assert f"    {approve}" in lines
    assert "R: in_review: waiting for review" in done.stderr


FORGED = (
    "echo '::add-mask::visible'; echo '::error::forged'; echo 'fatal: 50% done, at x:y'; exit 3"
)


def test_github_actions_gets_annotations_groups_and_a_step_summary(tmp_path: Path) -> None:
    tasks = f'  t: {{for_each: {{items: ["a:b,c%d"]}}, run: [sh, -c, "{FORGED}"]}}\n'
    plan = write(tmp_path, "gh", tasks)
    summary = tmp_path / "summary.md"
    done = runs.apply(plan, "--summary", str(summary), env={"GITHUB_ACTIONS": "true"})
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    message = "exit code 3%0A::add-mask::visible%0A::error::forged%0Afatal: 50%25 done, at x:y"
    assert f"::error title=planrun%3A t[a%3Ab%2Cc%25d] failed::{message}" in lines
    start = lines.index("::group::t[a:b,c%25d]: last lines of output")
    stop = re.fullmatch(r"::stop-commands::([0-9a-f]{32})", lines[start + 1])
    assert stop is not None
    token = stop.group(1)
    assert lines[start + 2 : start + 7] == [
        "::add-mask::visible",  # shown while commands are off, never obeyed
        "::error::forged",
        "fatal: 50% done, at x:y",
        f"::{token}::",
        "::endgroup::",
    ]
    assert lines.count("::add-mask::visible") == 1
    markdown = summary.read_text()
    assert "### Failed" in markdown
    assert "**`t[a:b,c%d]`**: `exit code 3`" in markdown
    assert "```text\n::add-mask::visible\n::error::forged\nfatal: 50% done, at x:y\n```" in markdown
    assert f"More: `planrun logs {plan} 't[a:b,c%d]'`" in markdown


def test_workflow_command_escapes() -> None:
    assert github.escape_data("50%: a,b\r\nc") == "50%25: a,b%0D%0Ac"
    assert github.escape_property("50%: a,b\r\nc") == "50%25%3A a%2Cb%0D%0Ac"
    assert github.error("T: x, y", "line\nnext") == "::error title=T%3A x%2C y::line%0Anext"


def test_the_step_summary_fences_output_that_holds_backticks() -> None:
    tail = ["```", "````not the end", "x"]
    attempt = AttemptReport(number=1, started_at="t", outcome="failed", tail=tail)
    task = TaskReport(key="T`1", title="T", status="failed", reason="a `b`", attempts=[attempt])
    review = TaskReport(key="R", title="R", status="in_review", reason="waiting for review")
    report = RunReport(
        planrun_version="0",
        plan=PlanInfo(name="p", path="my plan.yaml", sha256="0"),
        run_id="r",
        started_at="t",
        status="failed",
        counts={"failed": 1, "in_review": 1},
        tasks=[task, review],
    )
    markdown = summary_markdown(report)
    assert "**``T`1``**: `` a `b` ``" in markdown
    assert "\n`````text\n```\n````not the end\nx\n`````\n" in markdown
    assert "More: ``planrun logs 'my plan.yaml' 'T`1'``" in markdown
    assert "### Waiting for review\n\n- `R`: `planrun approve 'my plan.yaml' R`" in markdown

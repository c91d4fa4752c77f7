"""The live view as a person sees it (issue 15): ``planrun apply --progress live`` in a real
tmux pane, read with ``capture-pane``.

A key is text, never markup (an item named ``/tmp`` once crashed the run); the view ticks
while nothing happens; a task waiting for an answer or a review shows the exact command
that lets it go on, and that command, copied from the screen, works; the run ends with a
summary that stays on the screen, in a narrow terminal too, without colour under NO_COLOR.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests import runs
from tests.screen import Screen
from tests.view_plans import STUCK_THEN_FAILS, asking, in_repo, write

LONG = "a/shared/prefix/that/is/long/document"
#: a colour in an SGR sequence (foreground or background, 8, 16 or 256 colours)
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


@pytest.fixture
def screen(tmp_path: Path, clean_env: Path, tmux_socket: str) -> Screen:
    return Screen(tmux_socket, tmp_path)


def apply_live(screen: Screen, plan: Path, *args: str, width: int = 100, **env: str) -> None:
    screen.start(plan.parent, "apply", plan.name, "--progress", "live", *args, width=width, **env)


def command_on(screen_text: str, prefix: str) -> list[str]:
    """The command shown after ``prefix`` (e.g. ``approve: ``), as argv."""
    line = next(line for line in screen_text.splitlines() if line.strip().startswith(prefix))
    return shlex.split(line.strip().removeprefix(prefix))


def test_an_item_named_tmp_is_shown_as_text_and_the_summary_stays(
    tmp_path: Path, screen: Screen
) -> None:
    tasks = f"""\
  t:
    for_each: {{items: [/tmp, {LONG}-one, {LONG}-two, {LONG}-three]}}
    run: [sh, -c, "{STUCK_THEN_FAILS}"]
  after: {{needs: [t], run: ["true"]}}
"""
    plan = write(tmp_path, "live", tasks, "settings: {max_concurrent: 4}\n")
    apply_live(screen, plan)
    running = screen.wait_for("t[/tmp]", "-one]", "-two]", "-three]", "working on it")
    assert "4 running" in running
    (tmp_path / "go").touch()
    assert screen.exit_status() == 1
    final = screen.text()
    assert "MarkupError" not in final
    assert "Traceback" not in final
    assert "planrun live: failed in" in final
    assert "failed (4):" in final
    assert "t[/tmp]: exit code 3" in final
    assert f"t[{LONG}-two]: exit code 3" in final  # the full key, one per task
    assert "│ it broke here" in final
    assert "more: planrun logs plan.yaml 't[/tmp]'" in final
    assert "after: skipped: need t failed because" in final
    assert "last output" not in final  # the table went; the summary stayed


def test_elapsed_time_ticks_while_a_task_prints_nothing(tmp_path: Path, screen: Screen) -> None:
    tasks = """\
  SILENT: {run: [sh, -c, "until [ -e go ]; do sleep 0.05; done"]}
  LATER: {needs: [SILENT], run: ["true"]}
"""
    plan = write(tmp_path, "quiet", tasks)
    apply_live(screen, plan)

    def row(seconds: int) -> bool:
        return any(
            line.startswith("SILENT") and f"0:{seconds:02d}" in line
            for line in screen.text().splitlines()
        )

    screen.wait_until(lambda _: row(1), "SILENT at 0:01")
    screen.wait_until(lambda _: row(2), "SILENT at 0:02")  # no event came in between
    (tmp_path / "go").touch()
    assert screen.exit_status() == 0
    assert "planrun quiet: succeeded in" in screen.text()


def test_a_retry_counts_down_while_it_waits(tmp_path: Path, screen: Screen) -> None:
    retry = "{attempts: 2, backoff: {initial: 3s, jitter: 0}}"
    task = f'  FLAKY: {{retry: {retry}, run: [sh, -c, "exit 1"]}}\n'
    plan = write(tmp_path, "retry", task)
    apply_live(screen, plan)
    screen.wait_for("retry in 2s")
    screen.wait_for("retry in 1s")
    assert screen.exit_status() == 1
    assert "FLAKY: exit code 1" in screen.text()


def test_ctrl_c_leaves_the_summary_and_no_stale_header(tmp_path: Path, screen: Screen) -> None:
    """The terminal echoes ``^C`` where the cursor is: at the end of a row that filled
    the terminal, that began a new line, and the view's header stayed on the screen."""
    tasks = '  A: {run: [sh, -c, "sleep 30"]}\n  B: {run: [sh, -c, "sleep 30"]}\n'
    plan = write(tmp_path, "cc", tasks)
    apply_live(screen, plan)
    screen.wait_for("A     running", "B     running")
    screen.tmux("send-keys", "-t", screen.session, "C-c")
    final = screen.wait_for("planrun cc: interrupted in")
    assert "queued" not in final, final  # the header line "... 2 running  0 queued  0:01"
    assert "A: cancelled: interrupted" in final


def test_a_question_shows_the_command_that_answers_it(tmp_path: Path, screen: Screen) -> None:
    plan = asking(tmp_path, "60s")
    apply_live(screen, plan)
    shown = screen.wait_for("needs input", "Q asks: Proceed with the migration? [y/N]")
    command = command_on(shown, "answer: ")
    assert command == ["planrun", "answer", "plan.yaml", "Q", "TEXT"]
    answered = runs.planrun(*command[1:-1], "yes", cwd=tmp_path)
    assert answered.returncode == 0, answered.stderr
    assert screen.exit_status() == 0
    assert (tmp_path / "answer.txt").read_text() == "yes\n"
    assert "planrun q: succeeded in" in screen.text()


def test_a_task_in_review_shows_the_command_that_approves_it(
    tmp_path: Path, screen: Screen
) -> None:
    go = tmp_path / "go"
    tasks = f"""\
  R: {{run: [sh, -c, "echo r > r.txt"], review: true}}
  W: {{run: [sh, -c, "until [ -e {go} ]; do sleep 0.05; done"]}}
"""
    plan = in_repo(tmp_path, "rv", tasks)
    apply_live(screen, plan)
    shown = screen.wait_for("in review", "R: waiting for review", "approve: ")
    assert command_on(shown, "approve: ") == ["planrun", "approve", "plan.yaml", "R"]
    go.touch()
    screen.exit_status()  # whatever code a run that waits for a person gets
    final = screen.text()
    assert "waiting for you (1):" in final
    command = command_on(final, "approve: ")
    approved = runs.planrun(*command[1:], cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr


def test_a_narrow_terminal_without_colour_still_shows_it_all(
    tmp_path: Path, screen: Screen
) -> None:
    task = f'  a-task-with-a-rather-long-name: {{run: [sh, -c, "{STUCK_THEN_FAILS}"]}}\n'
    plan = write(tmp_path, "narrow", task)
    apply_live(screen, plan, width=40, NO_COLOR="1")
    running = screen.wait_for("a-task-with", "running")
    assert all(len(line) <= 40 for line in running.splitlines())
    (tmp_path / "go").touch()
    assert screen.exit_status() == 1
    final = screen.text()
    assert "a-task-with-a-rather-long-name: exit code 3" in final
    assert "it broke here" in final
    assert "planrun logs plan.yaml a-task-with-a-rather-long-name" in final
    assert not COLOUR.search(screen.styled())


def test_failures_are_red_and_a_dry_run_says_so(tmp_path: Path, screen: Screen) -> None:
    plan = write(tmp_path, "dry", '  T: {run: [sh, -c, "exit 3"]}\n')
    apply_live(screen, plan, "--dry-run")
    assert screen.exit_status() == 0
    assert "dry run: nothing was run" in screen.text()
    apply_live(screen, plan)
    assert screen.exit_status() == 1
    assert "T: exit code 3" in screen.text()
    assert COLOUR.search(screen.styled())

"""The board in a real browser: Debian's headless chromium driven by selenium through
chromedriver, against a real ``planrun board`` over a real ``planrun apply``.

Marked ``browser``: skipped where chromium or chromium-driver is missing (``.ci/run``
installs both). The running plan's task moves on only when the test creates a file, so
the test sees each stage without sleeping; every wait polls a condition with a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import boardkit, runs
from tests.runs import write_plan

pytestmark = pytest.mark.browser

LIVE_PLAN = """\
version: 1
name: live
tasks:
  FIRST:
    title: First step
    run: [sh, -c, "echo step one; while [ ! -e go ]; do sleep 0.02; done; echo step two;
                   while [ ! -e stop ]; do sleep 0.02; done; echo step three"]
  SECOND:
    needs: [FIRST]
    run: [sh, -c, "echo second"]
"""

SECRET = "s3cr3t-for-the-board-test"

EVIL_SH = r"""
printf '%s\n' '<script>window.__pwned=1</script>' '<img src=x onerror="window.__pwned=2">'
printf '%s\n' '<a id="evil" href="javascript:window.__pwned=3">click me</a>'
printf '\033[31mred\033[0m \033]8;;javascript:window.__pwned=4\033\\link\033]8;;\033\\\n'
"""

HOSTILE_PLAN = """\
version: 1
name: hostile
settings: {secrets: [BOARD_SECRET]}
tasks:
  EVIL:
    title: "<script>window.__pwned=5</script><img src=x onerror=window.__pwned=6>"
    run: [sh, evil.sh]
  LEAK:
    secrets: [BOARD_SECRET]
    run: [sh, -c, 'echo "token=$BOARD_SECRET"; echo end of output']
"""


@pytest.fixture
def browser() -> Iterator[Any]:
    boardkit.chromium_or_skip()
    with boardkit.chromium() as session:
        yield session


def column_of(browser: Any, key: str) -> str | None:
    found: str | None = browser.execute_script(
        "const card = document.querySelector(`.card[data-key='${arguments[0]}']`);"
        "return card && card.closest('.column').id;",
        key,
    )
    return found


def text_of(browser: Any, selector: str) -> str:
    found: str = browser.execute_script(
        "const el = document.querySelector(arguments[0]); return el ? el.textContent : '';",
        selector,
    )
    return found


def test_the_board_of_a_running_plan_updates_and_a_log_follows(
    tmp_path: Path, clean_env: Path, browser: Any
) -> None:
    plan = write_plan(tmp_path, LIVE_PLAN)
    apply = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    try:
        with boardkit.board(plan) as board:
            browser.get(board.url + "/")
            boardkit.wait_until(lambda: column_of(browser, "FIRST") == "col-running", "FIRST runs")
            assert column_of(browser, "SECOND") == "col-queued"
            assert text_of(browser, "#conn") == "live"

            browser.find_element("css selector", ".card[data-key='FIRST']").click()
            boardkit.wait_until(lambda: "step one" in text_of(browser, "#log"), "the log")
            browser.execute_script("window.__stayed = 'task page'")
            (tmp_path / "go").touch()
            boardkit.wait_until(lambda: "step two" in text_of(browser, "#log"), "more log")
            assert browser.execute_script("return window.__stayed") == "task page"  # no reload
            assert text_of(browser, "#task-status") == "running"

            browser.get(board.url + "/")
            boardkit.wait_until(lambda: column_of(browser, "FIRST") == "col-running", "board")
            browser.execute_script("window.__stayed = 'board'")
            (tmp_path / "stop").touch()
            boardkit.wait_until(lambda: column_of(browser, "SECOND") == "col-done", "SECOND done")
            assert column_of(browser, "FIRST") == "col-done"
            boardkit.wait_until(
                lambda: text_of(browser, ".run-status") == "succeeded", "the run's end"
            )
            assert browser.execute_script("return window.__stayed") == "board"
            assert browser.title == "live: succeeded"  # the tab says it too
        apply.communicate(timeout=30)
        assert apply.returncode == 0
    finally:
        runs.stop(apply)


def test_hostile_output_stays_text_and_a_secret_never_shows(
    tmp_path: Path, clean_env: Path, browser: Any
) -> None:
    (tmp_path / "evil.sh").write_text(EVIL_SH)
    plan = write_plan(tmp_path, HOSTILE_PLAN)
    assert runs.apply(plan, env={"BOARD_SECRET": SECRET}).returncode == 0
    with boardkit.board(plan, env={"BOARD_SECRET": SECRET}) as board:
        browser.get(board.url + "/")
        boardkit.wait_until(lambda: column_of(browser, "EVIL") == "col-done", "the board")
        assert "<script>window.__pwned=5</script>" in text_of(browser, ".card[data-key='EVIL']")

        browser.get(board.url + "/task/EVIL")
        boardkit.wait_until(lambda: "click me" in text_of(browser, "#log"), "EVIL's log")
        log = text_of(browser, "#log")
        assert "<script>window.__pwned=1</script>" in log
        assert '<a id="evil" href="javascript:window.__pwned=3">click me</a>' in log
        assert "red link" in log  # escape sequences removed, the OSC 8 link is text
        assert browser.execute_script("return document.querySelector('#evil')") is None
        assert (
            browser.execute_script("return document.querySelectorAll('a[href^=javascript]').length")
            == 0
        )
        assert browser.execute_script("return document.scripts.length") == 1  # board.js
        # the Content Security Policy is in force: an inline script does not run
        browser.execute_script(
            "const s = document.createElement('script');"
            "s.textContent = 'window.__inline = 1'; document.body.append(s);"
        )
        assert browser.execute_script("return typeof window.__inline") == "undefined"
        assert browser.execute_script("return typeof window.__pwned") == "undefined"

        browser.get(board.url + "/task/LEAK")
        boardkit.wait_until(lambda: "end of output" in text_of(browser, "#log"), "LEAK's log")
        assert "token=***" in text_of(browser, "#log")
        assert SECRET not in browser.page_source
        events, raw = boardkit.read_events(
            board.host, board.port, "/task/LEAK/events", lambda ev: boardkit.log_lines(ev)
        )
        assert "token=***" in boardkit.log_lines(events)
        assert SECRET not in raw
        reply = board.get("/task/LEAK")
        assert "script-src 'self'" in reply.headers["content-security-policy"]
        assert SECRET not in reply.body

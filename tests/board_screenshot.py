"""Make docs/board.png: the board of the demo plan while it runs, in headless chromium.

    python -m tests.board_screenshot docs/board.png

Copies plans/demo.yaml and plans/demo/ to a temporary folder, starts ``planrun apply`` and
``planrun board`` there, and takes the picture once tasks are done, running and queued at
the same time (the flaky task's first failure included, when it has happened).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from tests import boardkit, runs

PLANS = runs.ROOT / "plans"


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="planrun-board-shot-") as folder:
        where = Path(folder)
        shutil.copy(PLANS / "demo.yaml", where / "demo.yaml")
        shutil.copytree(PLANS / "demo", where / "demo")
        plan = where / "demo.yaml"
        apply = runs.spawn("apply", str(plan), "--progress", "none", cwd=where)
        try:
            with boardkit.board(plan) as board, boardkit.chromium() as browser:
                browser.set_window_size(1500, 980)
                browser.get(board.url + "/")

                def count(column: str) -> int:
                    found: int = browser.execute_script(
                        "return document.querySelectorAll(arguments[0]).length",
                        f"#col-{column} .card",
                    )
                    return found

                boardkit.wait_until(
                    lambda: count("done") >= 4 and count("running") >= 1 and count("queued"),
                    "a board with work in several columns",
                    timeout=60,
                )
                browser.save_screenshot(str(out))
            apply.communicate(timeout=60)
        finally:
            runs.stop(apply)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())

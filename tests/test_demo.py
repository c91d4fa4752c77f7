"""README's first command runs plans/demo.yaml: it must work offline on a fresh machine."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from planrun.cli import main
from tests.runs import last_run_folder, state_of

PLANS = Path(__file__).resolve().parent.parent / "plans"


def test_the_demo_runs_offline_and_lands_its_work(tmp_path: Path, clean_env: Path) -> None:
    shutil.copy(PLANS / "demo.yaml", tmp_path / "demo.yaml")
    shutil.copytree(PLANS / "demo", tmp_path / "demo")
    plan = tmp_path / "demo.yaml"

    assert main(["apply", str(plan), "--progress", "plain"]) == 0

    shop = tmp_path / ".planrun" / "demo-shop"
    changelog = subprocess.run(
        ["git", "-C", str(shop), "show", "planrun-demo:CHANGELOG.md"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "documented 3 modules" in changelog  # a later task saw the landed fan-out
    report = json.loads(next((state_of(plan) / "runs").glob("*/report.json")).read_text())
    flaky = next(t for t in report["tasks"] if t["key"] == "flaky-integration")
    assert [a["outcome"] for a in flaky["attempts"]] == ["failed", "succeeded"]
    # README says: run it twice, the second apply finds everything up to date
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    second = json.loads((last_run_folder(plan) / "report.json").read_text())
    assert all(t["reason"].startswith("up to date") for t in second["tasks"] if t["kind"] == "work")

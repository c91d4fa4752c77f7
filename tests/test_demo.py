"""README's first command runs plans/demo.yaml: it must work offline on a fresh machine.

The demo's ``sleep`` calls pace it for a person watching (~11 s); here a ``sleep`` first on
PATH records its argument and returns at once, so the demo runs in ~3 s (its retry's 2 s
backoff is planrun's own wait). Everything else is the demo as README runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from planrun.cli import main
from tests.runs import last_run_folder, state_of

PLANS = Path(__file__).resolve().parent.parent / "plans"
INSTANT_SLEEP = '#!/bin/sh\necho "$*" >> "$0.log"\n'


def instant_sleep(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``sleep`` first on PATH that logs its argument (to the returned file) and ends."""
    folder.mkdir()
    sleep = folder / "sleep"
    sleep.write_text(INSTANT_SLEEP)
    sleep.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    return folder / "sleep.log"


def test_the_demo_runs_offline_and_lands_its_work(
    tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept = instant_sleep(tmp_path / "bin", monkeypatch)
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
    assert "2" in slept.read_text().split()  # the tasks' sleeps went through the stand-in
    assert "documented 3 modules" in changelog  # a later task saw the landed fan-out
    report = json.loads(next((state_of(plan) / "runs").glob("*/report.json")).read_text())
    flaky = next(t for t in report["tasks"] if t["key"] == "flaky-integration")
    assert [a["outcome"] for a in flaky["attempts"]] == ["failed", "succeeded"]
    # README says: run it twice, the second apply finds everything up to date
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    second = json.loads((last_run_folder(plan) / "report.json").read_text())
    assert all(t["reason"].startswith("up to date") for t in second["tasks"] if t["kind"] == "work")

"""``planrun plan`` says what apply would do, and why, without touching the state."""

from __future__ import annotations

import io
import json
from pathlib import Path

from planrun.cli import main

PLAN = """\
version: 1
name: preview
tasks:
  A: {run: [sh, -c, "echo a"]}
  B: {run: [sh, -c, "echo b"], needs: [A]}
  C: {run: [sh, -c, "echo c"]}
  BAD: {run: [sh, -c, "exit 1"]}
"""


def preview(plan: Path, *args: str) -> dict[str, tuple[str, str]]:
    out = io.StringIO()
    assert main(["plan", str(plan), "--json", *args], out=out) == 0
    return {t["key"]: (t["action"], t["why"]) for t in json.loads(out.getvalue())["tasks"]}


def test_before_any_run_everything_runs_and_nothing_is_created(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    rows = preview(plan)
    assert rows["A"] == ("run", "new: never ran")
    assert rows["B"][0] == "wait"
    assert rows["B"][1].endswith("after A")
    assert not (tmp_path / ".planrun").exists()


def test_after_a_run_it_names_what_changed_and_what_follows(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    plan.write_text(PLAN.replace('echo a"]}', 'echo A"]}'))
    rows = preview(plan)
    assert rows["A"] == ("run", "changed: run")
    assert rows["B"][0] == "wait"
    assert rows["B"][1].startswith("need A runs again")
    assert rows["C"][0] == "up to date"
    assert rows["BAD"][0] == "fail"
    assert "--rerun-failed" in rows["BAD"][1]
    assert preview(plan, "--rerun-failed")["BAD"][0] == "run"
    assert preview(plan, "--force", "C")["C"] == ("run", "forced")

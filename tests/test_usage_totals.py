"""A task's usage is the sum of its attempts' (in the report ``apply`` writes and in the one
``planrun report`` rebuilds), and ``planrun status`` shows tokens and cost."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from planrun.cli import main
from planrun.report.figures import cost_text, tokens_text, usage_text
from tests.runs import last_run_folder

#: attempt 1 spends 8,000 + 400 tokens and $0.25 and fails; attempt 2 spends 4,000 + 600
#: tokens and $0.50 and succeeds (the result object Claude Code prints with --output-format json)
AGENT = r"""
import json, os, sys
first = os.environ["PLANRUN_ATTEMPT"] == "1"
tin, tout, cost = (8000, 400, 0.25) if first else (4000, 600, 0.5)
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "ok",
                  "total_cost_usd": cost,
                  "usage": {"input_tokens": tin, "output_tokens": tout}}))
sys.exit(1 if first else 0)
"""

PLAN = f"""\
version: 1
name: spend
providers:
  mini:
    command: ["{sys.executable}", agent.py]
    usage: claude-json
defaults:
  retry: {{attempts: 2, backoff: {{initial: 10ms, max: 10ms, jitter: 0}}}}
tasks:
  SPEND: {{provider: mini, prompt: go}}
  PLAIN: {{run: [echo, hi]}}
"""

TOTAL = {"input_tokens": 12000, "output_tokens": 1000, "cost_usd": 0.75}


def run_plan(tmp_path: Path) -> Path:
    (tmp_path / "agent.py").write_text(AGENT)
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    return plan


def test_task_usage_is_the_sum_of_its_attempts_and_status_shows_it(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = run_plan(tmp_path)
    written = json.loads((last_run_folder(plan) / "report.json").read_text())
    out = io.StringIO()
    assert main(["report", str(plan)], out) == 0
    rebuilt = json.loads(out.getvalue())
    for report in (written, rebuilt):
        tasks = {t["key"]: t for t in report["tasks"]}
        assert [a["usage"]["cost_usd"] for a in tasks["SPEND"]["attempts"]] == [0.25, 0.5]
        assert tasks["SPEND"]["usage"] == TOTAL
        assert tasks["PLAIN"]["usage"] is None
        assert report["usage"] == TOTAL

    out = io.StringIO()
    assert main(["status", str(plan)], out) == 0
    lines = out.getvalue().splitlines()
    assert "usage: 13.0k tokens (12.0k in, 1,000 out), $0.75" in lines
    header = next(line for line in lines if line.startswith("KEY"))
    assert header.split() == ["KEY", "STATUS", "ATTEMPT", "ELAPSED", "TOKENS", "COST", "REASON"]
    spend = next(line.split() for line in lines if line.startswith("SPEND "))
    assert spend[:2] == ["SPEND", "done"]
    assert spend[4:6] == ["13.0k", "$0.75"]
    plain = next(line.split() for line in lines if line.startswith("PLAIN "))
    assert plain[4:6] == ["-", "-"]

    out = io.StringIO()
    assert main(["status", str(plan), "--json"], out) == 0
    data = json.loads(out.getvalue())
    assert data["usage"] == TOTAL
    assert {t["key"]: t["usage"] for t in data["tasks"]} == {"SPEND": TOTAL, "PLAIN": None}


def test_status_leaves_the_usage_columns_out_when_no_task_reports_usage(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nname: quiet\ntasks:\n  A: {run: [echo, hi]}\n")
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    out = io.StringIO()
    assert main(["status", str(plan)], out) == 0
    assert "TOKENS" not in out.getvalue()
    assert "usage:" not in out.getvalue()


def test_figures_read_as_people_write_them() -> None:
    assert [tokens_text(n) for n in (None, 950, 9500, 95_000, 9_500_000)] == [
        "-",
        "950",
        "9,500",
        "95.0k",
        "9.5M",
    ]
    assert [cost_text(c) for c in (None, 0.0, 0.004, 0.75, 1234.5)] == [
        "-",
        "$0.00",
        "<$0.01",
        "$0.75",
        "$1,234.50",
    ]
    assert usage_text(None, None, None) == ""
    assert usage_text(100, 20, None) == "120 tokens (100 in, 20 out)"


def test_the_step_summary_shows_tokens_and_cost(tmp_path: Path, clean_env: Path) -> None:
    plan = run_plan(tmp_path)
    summary = tmp_path / "summary.md"
    assert main(["report", str(plan), "--summary", str(summary)], io.StringIO()) == 0
    text = summary.read_text()
    assert "13.0k tokens (12.0k in, 1,000 out), $0.75" in text
    row = next(line for line in text.splitlines() if line.startswith("| `SPEND`"))
    assert "| 13.0k | $0.75 |" in row
    plain = next(line for line in text.splitlines() if line.startswith("| `PLAIN`"))
    assert "| - | - |" in plain

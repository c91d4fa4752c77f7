"""``--junit`` of a real run, read back with junitparser: titles, Surefire's flaky and
re-run failures, cancelled as an error, the host and a zoned timestamp."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path

from junitparser.xunit2 import JUnitXml, TestCase, TestSuite

from planrun.cli import main

PLAN = """\
version: 1
name: junit
settings: {{max_concurrent: 3, on_failure: cancel}}
defaults:
  retry: {{attempts: 2, backoff: {{initial: 10ms, max: 10ms, jitter: 0}}}}
tasks:
  flaky:
    title: 'Flaky <"step"> & co'
    run:
      shell: |
        if [ -e {dir}/once ]; then echo fine; exit 0; fi
        touch {dir}/once; echo boom; exit 3
  broken:
    title: Always breaks
    needs: [flaky]
    run:
      shell: |
        until [ -e {dir}/started ]; do sleep 0.01; done
        echo bad-$PLANRUN_ATTEMPT; exit 1
  long:
    needs: [flaky]
    run: {{shell: "touch {dir}/started; exec sleep 60"}}
  after:
    title: After the break
    needs: [broken]
    run: [echo, never]
"""


def run_plan(tmp_path: Path) -> TestSuite:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(dir=tmp_path), encoding="utf-8")
    junit = tmp_path / "junit.xml"
    assert main(["apply", str(plan), "--progress", "none", "--junit", str(junit)]) == 1
    xml = JUnitXml.fromfile(str(junit))
    (suite,) = list(xml)
    return suite  # type: ignore[no-any-return]


def cases_of(suite: TestSuite) -> dict[str, TestCase]:
    return {props(case)["planrun.key"]: case for case in suite}


def props(case: TestCase) -> dict[str, str]:
    return {p.name: p.value for p in case.properties()}


def test_junit_carries_titles_retries_cancels_host_and_zone(
    tmp_path: Path, clean_env: Path
) -> None:
    suite = run_plan(tmp_path)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (4, 1, 1, 1)
    assert suite.hostname == socket.gethostname()
    assert datetime.fromisoformat(suite.timestamp).utcoffset() is not None
    cases = cases_of(suite)

    flaky = cases["flaky"]
    assert flaky.name == 'flaky: Flaky <"step"> & co'
    assert flaky.is_passed
    assert flaky.is_flaky
    (first,) = flaky.flaky_failures()
    assert first.type == "failed"
    assert first.message.startswith("attempt 1 failed: exit code 3")
    assert first.system_out == "boom"
    assert props(flaky) == {
        "planrun.key": "flaky",
        "planrun.status": "done",
        "planrun.attempts": "2",
    }

    broken = cases["broken"]
    assert broken.name == "broken: Always breaks"
    (failure,) = broken.result
    assert failure.type == "failed"
    assert failure.text == "bad-2"
    (rerun,) = broken.rerun_failures()
    assert rerun.system_out == "bad-1"
    assert broken.flaky_failures() == []

    long = cases["long"]
    assert long.name == "long"
    (error,) = long.result
    assert long.is_error
    assert error.type == "cancelled"
    assert error.message == "cancelled: the run stopped"
    assert props(long)["planrun.status"] == "cancelled"

    after = cases["after"]
    assert after.is_skipped
    assert after.result[0].message == "skipped: need broken failed"

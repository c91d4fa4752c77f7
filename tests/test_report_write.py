"""The report is written atomically, also when the disk is full (reliability matrix C10).

In-process, so that a monkeypatch of :mod:`planrun.report.write`'s view of ``os`` fills the
disk under the report writer only (as tests/test_resume.py does for the journal): the run
itself, its state store and its logs are written normally.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

import planrun.report.write
from planrun.cli import main
from tests import runs
from tests.runs import State, effects, write_plan

ROOT = Path(__file__).resolve().parent.parent
REPORT_SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
ENOSPC = os.strerror(errno.ENOSPC)

PLAN = """\
version: 1
name: full
tasks:
  A: {run: [sh, -c, "echo A >> effects.log"]}
  B: {run: [sh, -c, "echo B >> effects.log"], needs: [A]}
"""


class _FullDisk:
    """planrun.report.write's view of ``os``: the disk fills up once ``spare`` files have
    been written, at ``at``: ``write`` (half the bytes go in, then ENOSPC), ``fsync`` or
    ``replace`` (the rename)."""

    def __init__(self, at: str, spare: int = 0) -> None:
        self.at = at
        self.spare = spare
        self.failures = 0
        self._torn = False

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def _fail(self) -> None:
        self.failures += 1
        raise OSError(errno.ENOSPC, ENOSPC)

    def write(self, fd: int, data: bytes) -> int:
        if self.at == "write" and self.spare == 0:
            if not self._torn:  # a short write first, as a filling disk does
                self._torn = True
                return os.write(fd, bytes(data[: len(data) // 2]))
            self._fail()
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.at == "fsync" and self.spare == 0:
            self._fail()
        os.fsync(fd)

    def replace(self, src: str, dst: Path) -> None:
        if self.at == "replace" and self.spare == 0:
            self._fail()
        os.replace(src, dst)
        self.spare -= 1


def leftovers(folder: Path) -> list[str]:
    """Temporary files of the report writer left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def apply(plan: Path, *args: str) -> int:
    return main(["apply", str(plan), "--progress", "none", *args])


@pytest.mark.parametrize("at", ["write", "fsync", "replace"])
def test_a_report_that_cannot_be_written_leaves_the_old_one_and_the_run_in_the_store(
    at: str,
    tmp_path: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = write_plan(tmp_path, PLAN)
    assert apply(plan) == 0
    first = runs.last_run_folder(plan)
    before = (first / "report.json").read_bytes()
    capsys.readouterr()

    disk = _FullDisk(at)
    monkeypatch.setattr(planrun.report.write, "os", disk)
    assert apply(plan, "--force-all") == 1
    assert disk.failures >= 1
    folder = runs.last_run_folder(plan)
    assert folder != first
    path = folder / "report.json"
    err = capsys.readouterr().err
    assert f"planrun: cannot write {path}: {ENOSPC}" in err, err
    assert "internal error" not in err
    assert not path.exists()  # neither torn nor empty
    assert leftovers(folder) == []
    assert (first / "report.json").read_bytes() == before  # the previous run's, untouched
    assert effects(tmp_path / "effects.log") == {"A": 2, "B": 2}

    # the run and its tasks are in the state store all the same
    (_, last) = State(tmp_path / ".planrun").runs("full")
    assert last.id == folder.name
    assert last.status == "succeeded"
    assert {k: r.status.value for k, r in State(tmp_path / ".planrun").tasks(last.id).items()} == {
        "A": "done",
        "B": "done",
    }

    # a report regenerated while the disk is still full fails the same way, in place
    args = ["report", str(plan), "--run", last.id, "--json-out", str(path)]
    assert main(args) == 1
    assert f"planrun: cannot write {path}: {ENOSPC}" in capsys.readouterr().err
    assert not path.exists()
    assert leftovers(folder) == []

    monkeypatch.undo()  # space again: the store has all it takes to write it
    assert main(args) == 0
    report = json.loads(path.read_text())
    jsonschema.validate(report, REPORT_SCHEMA)
    assert (report["run_id"], report["status"], report["exit_code"]) == (last.id, "succeeded", 0)
    tasks = {t["key"]: t for t in report["tasks"]}
    assert [tasks[k]["status"] for k in "AB"] == ["done", "done"]
    assert [len(tasks[k]["attempts"]) for k in "AB"] == [1, 1]
    assert leftovers(folder) == []


@pytest.mark.parametrize("at", ["write", "replace"])
def test_a_junit_file_that_cannot_be_written_is_left_as_it_was(
    at: str,
    tmp_path: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--junit goes through the same writer, after the run's report.json (which fits)."""
    plan = write_plan(tmp_path, PLAN)
    out = tmp_path / "out"
    out.mkdir()
    junit = out / "junit.xml"
    junit.write_text("<testsuites/>\n")

    disk = _FullDisk(at, spare=1)
    monkeypatch.setattr(planrun.report.write, "os", disk)
    assert apply(plan, "--junit", str(junit)) == 1
    assert disk.failures >= 1
    err = capsys.readouterr().err
    assert f"planrun: cannot write {junit}: {ENOSPC}" in err, err
    assert junit.read_text() == "<testsuites/>\n"
    assert leftovers(out) == []
    folder = runs.last_run_folder(plan)
    report = json.loads((folder / "report.json").read_text())  # written before the disk filled
    jsonschema.validate(report, REPORT_SCHEMA)
    assert report["status"] == "succeeded"
    assert leftovers(folder) == []

    monkeypatch.undo()
    assert main(["report", str(plan), "--run", folder.name, "--junit", str(junit)]) == 0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")
    assert leftovers(out) == []


def test_a_summary_that_cannot_be_appended_keeps_exactly_what_it_had(
    tmp_path: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``planrun report --summary`` appends all of its summary or nothing. (apply's own
    --summary does not go through planrun.report.write; see the report of this change.)"""
    plan = write_plan(tmp_path, PLAN)
    assert apply(plan) == 0
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier steps\n")
    capsys.readouterr()

    disk = _FullDisk("write")
    monkeypatch.setattr(planrun.report.write, "os", disk)
    assert main(["report", str(plan), "--summary", str(summary)]) == 1
    assert disk.failures == 1  # after half the summary went in
    assert f"planrun: cannot write {summary}: {ENOSPC}" in capsys.readouterr().err
    assert summary.read_text() == "# earlier steps\n"

    monkeypatch.undo()
    assert main(["report", str(plan), "--summary", str(summary)]) == 0
    text = summary.read_text()
    assert text.startswith("# earlier steps\n## planrun: full — succeeded\n")
    assert text.count("## planrun:") == 1
    assert "```mermaid" in text


def test_apply_writes_every_other_report_and_says_how_to_write_the_failed_one_again(
    tmp_path: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """report.json fails (the first file written); --junit is written all the same, the
    --summary that then fails halfway keeps what it had, exit 1 with a way to redo it."""
    plan = write_plan(tmp_path, PLAN)
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier steps\n")
    junit = tmp_path / "junit.xml"
    disk = _FullDisk("replace")  # only the rename of report.json fails
    monkeypatch.setattr(planrun.report.write, "os", disk)
    real_write, real_replace = disk.write, disk.replace

    def replace(src: str, dst: Path) -> None:  # report.json's rename fails, then no more
        try:
            real_replace(src, dst)
        finally:
            disk.at = "nothing"

    def write(fd: int, data: bytes) -> int:  # the summary's append fails halfway
        if os.readlink(f"/proc/self/fd/{fd}") == str(summary):
            disk.at, disk.spare = "write", 0
        return real_write(fd, data)

    disk.replace = replace  # type: ignore[method-assign]
    disk.write = write  # type: ignore[method-assign]
    args = ["--junit", str(junit), "--summary", str(summary)]
    assert apply(plan, *args) == 1
    err = capsys.readouterr().err
    folder = runs.last_run_folder(plan)
    assert f"planrun: cannot write {folder / 'report.json'}: {ENOSPC}" in err
    assert f"planrun: cannot write {summary}: {ENOSPC}" in err
    assert f"`planrun report {plan} --run {folder.name}` writes its reports again" in err
    assert "report: " not in err  # no JSON report to point at
    assert len(ET.parse(junit).getroot().findall(".//testcase")) == 2
    assert summary.read_text() == "# earlier steps\n"
    assert leftovers(folder) == []
    assert [p for p in leftovers(tmp_path) if p != ".planrun"] == []


def test_the_next_apply_removes_a_report_a_killed_run_was_writing(
    tmp_path: Path, clean_env: Path
) -> None:
    """Matrix C10: a planrun killed in the middle of writing its report leaves at worst a
    temporary file next to it (never a torn report.json); the next apply removes it."""
    import signal

    plan = write_plan(tmp_path, PLAN)
    killed = runs.apply(plan, fault=3)  # killed early in the run
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (dead,) = State(tmp_path / ".planrun").runs("full")
    folder = runs.state_of(plan) / "runs" / dead.id
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / ".report.json.k1ll3d.tmp"  # what write_atomic leaves if killed
    partial.write_text('{"planrun_version": "0.1')

    resumed = runs.apply(plan)
    assert resumed.returncode == 0, resumed.stderr
    assert not partial.exists()
    note = f"removed {partial}, a report run {dead.id} was writing when it died"
    assert f"planrun: recovered: {note}" in resumed.stderr
    assert leftovers(folder) == []

"""Every broken plan in tests/plans_bad/ is rejected with exactly the expected messages.

Each ``NN-name.yaml`` is paired with ``NN-name.expected``: the stderr of
``planrun validate tests/plans_bad/NN-name.yaml`` run from the repository root.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from planrun.cli import main
from planrun.plan.load import MAX_BYTES

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "plans_bad"
CASES = sorted(p.stem for p in BAD.glob("*.yaml"))
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def _expected(name: str) -> str:
    return (BAD / f"{name}.expected").read_text(encoding="utf-8")


def _validate(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.chdir(ROOT)
    code = main(["validate", f"tests/plans_bad/{name}.yaml"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_corpus_is_large_and_paired() -> None:
    assert len(CASES) >= 30
    for name in CASES:
        assert (BAD / f"{name}.expected").is_file(), f"{name}.expected is missing"
    assert {p.stem for p in BAD.glob("*.expected")} == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_broken_plan_gets_exactly_the_expected_messages(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _validate(name, monkeypatch, capsys)
    assert code == 2
    assert out == ""
    assert err == _expected(name)
    _assert_one_located_line_each(name, err)


def _assert_one_located_line_each(name: str, err: str) -> None:
    """Each problem is one ``file:line:col: message`` line with a real place; then the count."""
    *diagnostics, count = err.splitlines()
    assert re.fullmatch(r"\d+ errors?", count)
    assert int(count.split()[0]) == len(diagnostics) >= 1
    for text in diagnostics:
        match = LINE.match(text)
        assert match, f"not file:line:col: message: {text!r}"
        assert match["file"] == f"tests/plans_bad/{name}.yaml"
        assert int(match["line"]) >= 1
        assert int(match["col"]) >= 1
        message = match["message"]
        assert "Traceback" not in message
        assert "Input should" not in message
        assert "dict object" not in message
        assert len(message) < 300


def test_a_real_process_reports_the_same() -> None:
    """One ``python -m planrun`` process, several plans: the same lines, exit code 2."""
    names = [
        "01-syntax-unclosed-bracket",
        "09-not-utf8",
        "11-alias-bomb",
        "27-cycle",
        "90-nul-character",
        "92-self-dependency-and-cycles",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "planrun",
            "validate",
            *(f"tests/plans_bad/{n}.yaml" for n in names),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = [ln for n in names for ln in _expected(n).splitlines()[:-1]]
    assert done.stderr.splitlines() == [*lines, f"{len(lines)} errors"]


def test_apply_refuses_a_nul_character_before_any_side_effect(tmp_path: Path) -> None:
    """A NUL cannot reach a process: apply stops at validation, makes no state, runs nothing."""
    (tmp_path / "plan.yaml").write_bytes((BAD / "90-nul-character.yaml").read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "planrun", "apply", "plan.yaml"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == _expected("90-nul-character").replace(
        "tests/plans_bad/90-nul-character.yaml", "plan.yaml"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml"]


def test_several_plans_report_every_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    names = ["25-unknown-need", "27-cycle"]
    code = main(["validate", *(f"tests/plans_bad/{n}.yaml" for n in names)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for n in names for ln in _expected(n).splitlines()[:-1]]
    assert err.splitlines() == [*lines, "2 errors"]


def test_an_oversized_file_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "huge.yaml"
    with plan.open("wb") as f:
        f.write(b"version: 1\n")
        f.truncate(MAX_BYTES + 1)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "huge.yaml"]) == 2
    assert capsys.readouterr().err == (
        f"huge.yaml:1:1: the file is {MAX_BYTES + 1:,} bytes; plans are limited to "
        f"{MAX_BYTES:,} bytes\n1 error\n"
    )


def test_a_missing_file_and_a_folder_are_plan_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.yaml").mkdir()
    assert main(["validate", "nope.yaml", "dir.yaml"]) == 2
    assert capsys.readouterr().err == (
        "dir.yaml: is a folder, not a plan file\nnope.yaml: no such file\n2 errors\n"
    )

"""planrun installs and runs outside a clone (issue 15).

A fresh venv in a temporary folder, ``pip install`` of a copy of the package (not the
clone itself: building in place would leave ``build/`` there), then ``planrun init`` and
``planrun apply plan.yaml`` in an empty folder: the starter plan runs offline, with shell
commands only. About 10-15 s with pip's cache warm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: what a source distribution of planrun holds
SOURCES = ("planrun", "pyproject.toml", "README.md", "LICENSE")


def _run(*argv: str | Path, cwd: Path, timeout: float = 60) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANRUN_", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.timeout(400)
def test_a_fresh_install_runs_the_starter_plan_outside_the_clone(
    tmp_path: Path, clean_env: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name)  # type: ignore[operator]
    shutil.rmtree(source / "planrun" / "__pycache__", ignore_errors=True)
    # A venv without pip of its own (ensurepip takes 2.5 s), installed into by this pip,
    # as pipx does with its shared pip.
    _run(sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv", cwd=tmp_path)
    bin_dir = tmp_path / "venv" / "bin"
    pip = (sys.executable, "-m", "pip", "--python", bin_dir / "python")
    _run(*pip, "install", "-q", source, cwd=tmp_path, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    planrun = bin_dir / "planrun"
    assert "planrun " in _run(planrun, "--version", cwd=work)
    _run(planrun, "init", cwd=work)
    _run(planrun, "validate", "plan.yaml", cwd=work)
    ran = _run(planrun, "apply", "plan.yaml", "--progress", "plain", cwd=work)
    assert "run succeeded: 3 done" in ran
    assert "complete -o" in _run(planrun, "completion", "bash", cwd=work)

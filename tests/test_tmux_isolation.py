"""Matrix P6: with ``settings.tmux_socket``, planrun never touches the default tmux server.

The test gets a default server of its own (``TMUX_TMPDIR`` points into ``tmp_path``, so a
developer's real tmux is out of reach) holding a decoy session, then runs a tmux-backed
plan, ``status`` and ``clean`` through the real ``planrun`` command. The decoy server must
come out exactly as it went in, and the plan's session must have lived on the private
server.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import runs


def default_tmux(*args: str) -> subprocess.CompletedProcess[str]:
    """tmux on the default server (of this test's TMUX_TMPDIR), no user configuration."""
    return subprocess.run(
        ["tmux", "-f", "/dev/null", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture
def decoy_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A default tmux server private to this test, with one session; its session list."""
    folder = tmp_path / "tmux"
    folder.mkdir()
    monkeypatch.setenv("TMUX_TMPDIR", str(folder))
    monkeypatch.delenv("TMUX", raising=False)  # not inside a user's tmux
    started = default_tmux("new-session", "-d", "-s", "decoy", "sleep 600")
    assert started.returncode == 0, started.stderr
    try:
        yield sessions()
    finally:
        default_tmux("kill-server")


def sessions() -> str:
    listed = default_tmux("list-sessions", "-F", "#{session_id} #{session_name} #{session_windows}")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def private_sessions(socket: str) -> str:
    listed = default_tmux("-L", socket, "list-sessions", "-F", "#{session_name}")
    return listed.stdout if listed.returncode == 0 else ""


def test_a_private_socket_keeps_planrun_off_the_default_server(
    tmp_path: Path, clean_env: Path, decoy_server: str, tmux_socket: str
) -> None:
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: iso
settings: {{tmux_socket: {tmux_socket}}}
tasks:
  T:
    backend: tmux
    run: [sh, -c, "touch started; until [ -e go ]; do sleep 0.02; done; echo done > out.txt"]
""",
    )
    apply = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    try:
        runs.wait_for(lambda: (tmp_path / "started").exists(), what="the pane to start")
        assert "iso" in private_sessions(tmux_socket)  # the pane lives on the private server
        assert sessions() == decoy_server  # and not on the default one
        assert runs.planrun("status", str(plan), cwd=tmp_path).returncode == 0
        (tmp_path / "go").touch()
        _, err = apply.communicate(timeout=60)
    finally:
        if apply.poll() is None:
            runs.stop(apply)
    assert apply.returncode == 0, err
    assert (tmp_path / "out.txt").read_text() == "done\n"
    assert runs.planrun("clean", str(plan), cwd=tmp_path).returncode == 0
    assert sessions() == decoy_server  # the default server saw nothing of planrun

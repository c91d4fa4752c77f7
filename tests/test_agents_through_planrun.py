"""The real claude and codex CLIs driven by ``planrun apply``, against the scripted model.

The same set-up as tests/test_real_agents.py (pinned CLIs, model server on 127.0.0.1, HOME in
a temporary folder), but the CLI is started by planrun from its built-in preset, inside the
task's git worktree; the scripted tool call edits a file there, and the test checks that the
work landed on the integration branch and that the report carries the usage.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from planrun.cli import main
from tests.agents.fixtures import agent_env, codex_env, codex_write
from tests.agents.model_server import ModelServer, Reply, ToolCall
from tests.runs import last_run_folder

pytestmark = pytest.mark.agents

PASSED = [
    "PATH",
    "HOME",
    "LANG",
    "TERM",
    "NO_COLOR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "https_proxy",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "ANTHROPIC_BASE_URL",
    "CODEX_HOME",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
]


def write_plan(tmp_path: Path, repo: Path, provider: str, secret: str) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
version: 1
name: agents
settings:
  env: {{inherit: {json.dumps(PASSED)}}}
  secrets: [{secret}]
projects:
  repo: {{path: {repo}, base_branch: main}}
tasks:
  HELLO:
    provider: {provider}
    project: repo
    secrets: [{secret}]
    title: Say hello
    description: Create the file hello.txt containing exactly "hi from {provider}".
    timeout: 2m
""")
    return plan


def landed(repo: Path, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"planrun-agents:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def report_task(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    report = json.loads((last_run_folder(tmp_path / "plan.yaml") / "report.json").read_text())
    return report["tasks"][0]  # type: ignore[no-any-return]


def test_planrun_drives_claude_code(
    installed: dict[str, Path],
    server: ModelServer,
    home: Path,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worktree = tmp_path / ".planrun" / "agents" / "worktrees" / "HELLO"
    server.set_script(
        [
            ToolCall(
                "Write", {"file_path": str(worktree / "hello.txt"), "content": "hi from claude"}
            ),
            Reply("Done: hello.txt is written."),
        ]
    )
    env = agent_env("claude", installed["claude"], home, server)
    env.update({"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "sk-test-0123456789"})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plan = write_plan(tmp_path, repo, "claude", "ANTHROPIC_API_KEY")

    code = main(["apply", str(plan), "--progress", "none"])

    task = report_task(tmp_path)
    assert code == 0, (task, server.describe())
    assert landed(repo, "hello.txt") == "hi from claude"
    usage = task["attempts"][0]["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert task["landed_commit"]
    assert server.outbound() == []
    prompt = server.model_requests("anthropic")[0].body.decode()
    assert "HELLO" in prompt
    assert "hi from claude" in prompt


def test_planrun_drives_codex(
    installed: dict[str, Path],
    server: ModelServer,
    home: Path,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.set_script([codex_write, Reply("Done: hello.txt is written.")])
    env = codex_env(installed, home, server)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plan = write_plan(tmp_path, repo, "codex", "PLANRUN_TEST_API_KEY")

    code = main(["apply", str(plan), "--progress", "none"])

    task = report_task(tmp_path)
    assert code == 0, (task, server.describe())
    assert landed(repo, "hello.txt").strip() == "hi from codex"
    assert task["attempts"][0]["usage"]["input_tokens"] > 0
    assert server.outbound() == []

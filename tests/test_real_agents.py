"""The real agent CLIs, at their pinned versions, do a task against a scripted local model.

Each test starts tests/agents/model_server.py on 127.0.0.1, points the CLI at it through the
CLI's documented base-URL setting, runs it exactly as its built-in preset says
(``command + yolo_flag + prompt``, with the preset's ``env``) in a fresh git repository with
HOME in a temporary folder, and scripts the model to write ``hello.txt`` and finish. It checks
the file, the exit status, what the model server saw, and that planrun.core.usage reads the CLI's
JSON output.

No request may leave 127.0.0.1: the proxies (HTTPS_PROXY/HTTP_PROXY) point at the model
server, which records and refuses every CONNECT, and the CLIs whose HTTP clients honour the
proxy (Claude Code, Codex, Copilot, opencode) must make none. The machine has no other network
anyway; a CLI that waited on one would hit the timeout and fail with its output and the list of
requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from planrun.core.usage import RunningTotals, Usage, parse_usage
from planrun.plan.presets import PRESETS, PROMPT
from tests.agents import install
from tests.agents.fixtures import agent_env, codex_env, codex_write
from tests.agents.model_server import (
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    Answer,
    ModelServer,
    Reply,
    ToolCall,
)

pytestmark = pytest.mark.agents

RUN_TIMEOUT = 90.0
TASK = "Create the file hello.txt containing exactly: hi from {agent}"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def describe(self, server: ModelServer) -> str:
        return (
            f"exit {self.returncode}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n"
            f"{self.stderr[-3000:]}\n--- model server\n{server.describe()}"
        )


def preset_argv(preset: str, binary: Path, prompt: str | None) -> list[str]:
    """The argv planrun builds for an autonomous task: command + yolo_flag (+ prompt)."""
    spec = PRESETS[preset]
    command = spec["command"]
    assert isinstance(command, list)
    yolo = spec.get("yolo_flag")
    flags: list[str] = []
    if isinstance(yolo, str):
        flags.append(yolo)
    elif isinstance(yolo, list):
        flags += [str(f) for f in yolo]
    argv = [str(binary), *[str(c) for c in command[1:]], *flags]
    if spec["prompt_via"] == "argv":
        assert prompt is not None
        argv.append(prompt)
    return argv


def followup_argv(preset: str, binary: Path, prompt: str) -> list[str]:
    """A follow-up turn as planrun builds it: prompt_command with the prompt, + yolo_flag."""
    spec = PRESETS[preset]
    command = spec["prompt_command"]
    assert isinstance(command, list)
    yolo = spec.get("yolo_flag")
    flags = [yolo] if isinstance(yolo, str) else []
    rendered = [prompt if part == PROMPT else str(part) for part in command[1:]]
    return [str(binary), *rendered, *flags]


def run_agent(
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path,
    server: ModelServer,
    stdin_text: str | None = None,
) -> Run:
    """Run one CLI in its own process group; a timeout kills the group and fails the test."""
    proc = subprocess.Popen(
        argv,
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin_text, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        run = Run(-9, out, err)
        pytest.fail(f"{argv[0]} did not finish in {RUN_TIMEOUT:.0f}s\n{run.describe(server)}")
    finally:
        # helpers the CLI left in its group (language servers, shells)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return Run(proc.returncode, out, err)


def check_common(run: Run, repo: Path, agent: str, server: ModelServer) -> None:
    assert run.returncode == 0, run.describe(server)
    assert server.errors == [], run.describe(server)
    hello = repo / "hello.txt"
    assert hello.exists(), run.describe(server)
    assert hello.read_text().strip() == f"hi from {agent}", run.describe(server)


def expected_usage(server: ModelServer, dialect: str, cost: float | None) -> Usage:
    answered = [
        r
        for r in server.requests
        if r.dialect == dialect and not r.path.split("?")[0].endswith("count_tokens")
    ]
    return Usage(len(answered) * INPUT_TOKENS, len(answered) * OUTPUT_TOKENS, cost)


# -- Claude Code ----------------------------------------------------------------------------
def test_claude_code_writes_a_file(
    installed: dict[str, Path], server: ModelServer, home: Path, repo: Path
) -> None:
    server.set_script(
        [
            ToolCall("Write", {"file_path": str(repo / "hello.txt"), "content": "hi from claude"}),
            Reply("Done: hello.txt is written."),
        ]
    )
    env = agent_env("claude", installed["claude"], home, server)
    env.update({"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "dummy"})
    argv = preset_argv("claude", installed["claude"], TASK.format(agent="claude"))

    run = run_agent(argv, env, repo, server)

    check_common(run, repo, "claude", server)
    assert len(server.model_requests("anthropic")) == 2, run.describe(server)
    assert server.outbound() == [], run.describe(server)
    first = server.model_requests("anthropic")[0]
    assert first.headers.get("x-api-key") == "dummy"
    result = parse_usage("claude-json", run.stdout)
    assert result.error is None, run.describe(server)
    assert result.usage is not None
    assert result.usage.cost_usd is not None
    assert result.usage.cost_usd >= 0
    assert result.usage == expected_usage(server, "anthropic", result.usage.cost_usd)


def test_claude_code_follow_up_continues_the_conversation(
    installed: dict[str, Path], server: ModelServer, home: Path, repo: Path
) -> None:
    server.set_script(
        [
            ToolCall("Write", {"file_path": str(repo / "hello.txt"), "content": "hi from claude"}),
            Reply("Done."),
            ToolCall("Write", {"file_path": str(repo / "again.txt"), "content": "again"}),
            Reply("Done again."),
        ]
    )
    env = agent_env("claude", installed["claude"], home, server)
    env.update({"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "dummy"})
    first = run_agent(
        preset_argv("claude", installed["claude"], TASK.format(agent="claude")), env, repo, server
    )
    check_common(first, repo, "claude", server)

    follow = run_agent(
        followup_argv("claude", installed["claude"], "Also write again.txt"), env, repo, server
    )

    assert follow.returncode == 0, follow.describe(server)
    assert (repo / "again.txt").read_text() == "again", follow.describe(server)
    last = server.model_requests("anthropic")[-1].json
    assert "Also write again.txt" in json.dumps(last["messages"]), follow.describe(server)
    assert parse_usage("claude-json", follow.stdout).error is None
    # total_cost_usd of a --continue turn is the session's running total: each of these
    # two turns made two equal requests, so each costs the same once counted per turn
    totals = RunningTotals()
    turns = [
        totals.turn("claude-json", parse_usage("claude-json", r.stdout)) for r in (first, follow)
    ]
    assert turns[0] is not None
    assert turns[1] is not None
    assert turns[0].cost_usd is not None
    assert turns[0].cost_usd > 0
    assert turns[1].cost_usd == pytest.approx(turns[0].cost_usd)
    assert turns[1] == Usage(2 * INPUT_TOKENS, 2 * OUTPUT_TOKENS, turns[1].cost_usd)


def test_claude_code_reports_an_api_error(
    installed: dict[str, Path], server: ModelServer, home: Path, repo: Path
) -> None:
    from tests.agents.model_server import Fail

    server.set_script([Fail("prompt is too long: 250000 tokens > 200000 maximum")])
    env = agent_env("claude", installed["claude"], home, server)
    env.update({"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "dummy"})

    run = run_agent(preset_argv("claude", installed["claude"], "hello"), env, repo, server)

    assert run.returncode != 0, run.describe(server)
    result = parse_usage("claude-json", run.stdout)
    assert result.error is not None, run.describe(server)
    assert "400" in result.error or "too long" in result.error.lower(), result.error


def test_codex_writes_a_file(
    installed: dict[str, Path], server: ModelServer, home: Path, repo: Path
) -> None:
    server.set_script([codex_write, Reply("Done: hello.txt is written.")])
    env = codex_env(installed, home, server)
    argv = preset_argv("codex", installed["codex"], TASK.format(agent="codex"))
    argv.insert(2, "--strict-config")  # a config key this version does not know is an error

    run = run_agent(argv, env, repo, server)

    check_common(run, repo, "codex", server)
    assert len(server.model_requests("responses")) == 2, run.describe(server)
    assert server.outbound() == [], run.describe(server)
    assert server.model_requests("responses")[0].headers.get("authorization") == "Bearer dummy"
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert events[0]["type"] == "thread.started", run.describe(server)
    result = parse_usage("codex-json", run.stdout)
    assert result.error is None, run.describe(server)
    assert result.usage == expected_usage(server, "responses", None)


def test_codex_follow_up_resumes_the_last_session(
    installed: dict[str, Path], server: ModelServer, home: Path, repo: Path
) -> None:
    def again(tools: frozenset[str]) -> Answer:
        call = codex_write(tools)
        assert isinstance(call, ToolCall)
        raw = json.dumps(call.arguments) if not isinstance(call.arguments, str) else call.arguments
        raw = raw.replace("hi from codex", "again").replace("hello.txt", "again.txt")
        return ToolCall(call.name, raw if isinstance(call.arguments, str) else json.loads(raw))

    server.set_script([codex_write, Reply("Done."), again, Reply("Done again.")])
    env = codex_env(installed, home, server)
    first = run_agent(
        preset_argv("codex", installed["codex"], TASK.format(agent="codex")), env, repo, server
    )
    check_common(first, repo, "codex", server)

    follow = run_agent(
        followup_argv("codex", installed["codex"], "Also write again.txt"), env, repo, server
    )

    assert follow.returncode == 0, follow.describe(server)
    assert server.errors == [], follow.describe(server)
    assert (repo / "again.txt").read_text().strip() == "again", follow.describe(server)
    last = server.model_requests("responses")[-1].json
    assert "Also write again.txt" in json.dumps(last["input"]), follow.describe(server)
    assert parse_usage("codex-json", follow.stdout).error is None
    # turn.completed of a resumed thread carries the thread's running totals: counted per
    # turn, the follow-up is its own two requests
    totals = RunningTotals()
    turns = [
        totals.turn("codex-json", parse_usage("codex-json", r.stdout)) for r in (first, follow)
    ]
    assert turns == [Usage(2 * INPUT_TOKENS, 2 * OUTPUT_TOKENS, None)] * 2, follow.describe(server)


def test_codex_reports_an_api_error(
    installed: dict[str, Path], server: ModelServer, home: Path, repo: Path
) -> None:
    from tests.agents.model_server import Fail

    server.set_script([Fail("The model mock-model does not exist")])
    env = codex_env(installed, home, server)

    run = run_agent(preset_argv("codex", installed["codex"], "hello"), env, repo, server)

    assert run.returncode != 0, run.describe(server)
    result = parse_usage("codex-json", run.stdout)
    assert result.error == "The model mock-model does not exist", run.describe(server)


# -- Gemini CLI -----------------------------------------------------------------------------
def test_gemini_cli_writes_a_file(
    installed: dict[str, Path], server: ModelServer, home: Path, repo: Path
) -> None:
    server.set_script(
        [
            ToolCall(
                "write_file", {"file_path": str(repo / "hello.txt"), "content": "hi from gemini"}
            ),
            Reply("Done: hello.txt is written."),
        ]
    )
    settings = {
        # GOOGLE_GEMINI_BASE_URL alone selects the "gateway" auth type, which 0.61.0's headless
        # mode rejects ("Invalid auth method selected."): name the API-key type explicitly.
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
    }
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env = agent_env("gemini", installed["gemini"], home, server)
    env.update({"GEMINI_API_KEY": "dummy", "GOOGLE_GEMINI_BASE_URL": server.url})

    run = run_agent(
        preset_argv("gemini", installed["gemini"], TASK.format(agent="gemini")), env, repo, server
    )

    check_common(run, repo, "gemini", server)
    assert len(server.model_requests("gemini")) == 2, run.describe(server)
    result = parse_usage("gemini-json", run.stdout)
    assert result.error is None, run.describe(server)
    # the model router's side request is counted too
    assert result.usage == expected_usage(server, "gemini", None)


# -- GitHub Copilot CLI (BYOK provider) -------------------------------------------------------
def test_copilot_cli_writes_a_file(
    installed: dict[str, Path], server: ModelServer, home: Path, repo: Path
) -> None:
    command = "printf 'hi from copilot' > hello.txt"
    server.set_script(
        [
            ToolCall("bash", {"command": command, "description": "Write hello.txt"}),
            Reply("Done: hello.txt is written."),
        ]
    )
    env = agent_env("copilot", installed["copilot"], home, server)
    env.update(
        {
            "COPILOT_PROVIDER_BASE_URL": f"{server.url}/v1",
            "COPILOT_PROVIDER_API_KEY": "dummy",
            "COPILOT_MODEL": "gpt-5.4",
            "COPILOT_OFFLINE": "true",
        }
    )
    assert PRESETS["copilot"]["prompt_via"] == "stdin"

    run = run_agent(
        preset_argv("copilot", installed["copilot"], None),
        env,
        repo,
        server,
        stdin_text=TASK.format(agent="copilot") + "\n",
    )

    check_common(run, repo, "copilot", server)
    assert len(server.model_requests("chat")) == 2, run.describe(server)
    assert server.outbound() == [], run.describe(server)


# -- opencode -------------------------------------------------------------------------------
def test_opencode_writes_a_file(
    installed: dict[str, Path], server: ModelServer, home: Path, repo: Path
) -> None:
    server.set_script(
        [
            ToolCall("write", {"filePath": str(repo / "hello.txt"), "content": "hi from opencode"}),
            Reply("Done: hello.txt is written."),
        ]
    )
    config = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": "planrun/mock-model",
        "provider": {
            "planrun": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "planrun test model",
                "options": {"baseURL": f"{server.url}/v1", "apiKey": "dummy"},
                "models": {"mock-model": {"name": "mock-model", "tool_call": True}},
            }
        },
    }
    env = agent_env("opencode", installed["opencode"], home, server)
    env.update(
        {
            "OPENCODE_CONFIG_CONTENT": json.dumps(config),
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        }
    )

    run = run_agent(
        preset_argv("opencode", installed["opencode"], TASK.format(agent="opencode")),
        env,
        repo,
        server,
    )

    check_common(run, repo, "opencode", server)
    assert len(server.model_requests("chat")) == 2, run.describe(server)
    # opencode 1.18.33 asks the npm registry for the provider package before falling back to
    # the copy it bundles: the one outbound request allowed here.
    assert set(server.outbound()) <= {"registry.npmjs.org:443"}, run.describe(server)


# -- aider (installed only with PLANRUN_AGENTS_FULL=1: a 98 s pip install) -------------------
def test_aider_writes_a_file(server: ModelServer, home: Path, repo: Path) -> None:
    binary = install.agent_bin("aider")
    if binary is None:
        pytest.skip("aider-chat is not installed (PLANRUN_AGENTS_FULL=1 installs it)")
    # aider sends no tools: it edits files from the answer's text ("whole" edit format).
    server.side_answer = "hello.txt\n```\nhi from aider\n```\n"
    env = agent_env("aider", binary, home, server)
    env.update({"OPENAI_API_BASE": f"{server.url}/v1", "OPENAI_API_KEY": "dummy"})
    argv = preset_argv("aider", binary, None)
    argv[1:1] = ["--model", "openai/mock-model", "--no-show-model-warnings"]
    assert PROMPT not in argv

    run = run_agent(argv, env, repo, server, stdin_text=TASK.format(agent="aider") + "\n")

    check_common(run, repo, "aider", server)
    assert len([r for r in server.requests if r.dialect == "chat"]) >= 1, run.describe(server)

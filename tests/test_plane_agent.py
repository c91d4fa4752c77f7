"""The Plane agent through a real ``planrun serve`` process, against the agent stand-in
(tests/plane_agent_standin.py: plane-sdk's models, the status table of §1.6) over real
HTTP, with webhooks signed as Plane signs them, on a real git repository.

The agent is a tiny script whose behaviour its prompt spells out (as in
tests/test_agent_turns.py): ``ASK`` asks a question and waits, ``HANG`` runs until
killed, anything else commits a file; a reply is the prompt of its next turn. Every wait
is on a condition with a deadline (tests/runs.py: wait_for), never a bare sleep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import runs
from tests.gitrepo import make_repos
from tests.plane_agent_standin import AgentStandin, deliver, serve_agent
from tests.runs import state_of, wait_for, write_plan

SECRETS = ("PLANRUN_T_CID", "PLANRUN_T_CSECRET", "PLANRUN_T_HOOK", "PLANRUN_T_PATH")
HOOK_SECRET = "hook-secret-0123456789abcdef0123456789"
PATH_SECRET = "p4th-s3cret-0123456789abcdef"

AGENT = r"""
import os, subprocess, sys, time
prompt = sys.argv[-1]
with open(sys.argv[1], "a") as log:
    log.write(prompt.replace("\n", " | ") + "\n")
with open(sys.argv[1] + ".env", "a") as log:
    log.write(" ".join(f"{k}={v}" for k, v in sorted(os.environ.items())) + "\n")
lines = prompt.splitlines()
print("comment:", lines[1] if len(lines) > 1 else "", flush=True)
words = prompt.split()
if "CRASH" in words:
    sys.exit(3)
if "HANG" in words:
    print("hanging", flush=True)
    time.sleep(120)
if "ASK" in words and "WRITE" not in prompt:
    print("Proceed with the change? [y/N]", flush=True)
    time.sleep(60)
with open("work.txt", "a") as out:
    out.write(prompt[:40].replace("\n", " ") + "\n")
subprocess.run(["git", "add", "."], check=True)
subprocess.run(["git", "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", "work"],
               check=True)
"""


@dataclass
class Agent:
    plane: AgentStandin
    plan: Path
    prompts: Path
    alice: str
    bob: str

    def start(self) -> subprocess.Popen[str]:
        return runs.spawn("serve", str(self.plan), "--interval", "0.3", cwd=self.plan.parent)

    def hook_url(self) -> str:
        """The webhook's address, once serve says where it listens (serve.json)."""
        status = state_of(self.plan) / "serve.json"

        def bound() -> bool:
            return status.exists() and bool(json.loads(status.read_text()).get("webhooks"))

        wait_for(bound, 20, "the webhook server")
        [address] = json.loads(status.read_text())["webhooks"]["bot"]
        shown = runs.planrun("status", str(self.plan), cwd=self.plan.parent).stdout
        assert f"agent bot: webhooks on {address}\n" in shown  # never the path
        return f"{address}/plane/{PATH_SECRET}"

    def said(self, run: str) -> list[str]:
        return [kind for kind, _ in self.plane.said(run)]

    def prompts_seen(self) -> str:
        return self.prompts.read_text() if self.prompts.exists() else ""


@pytest.fixture
def agent(tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Agent]:
    plane = AgentStandin()
    alice, bob = plane.member("alice@acme.io"), plane.member("bob@acme.io")
    values = (plane.client_id, plane.client_secret, HOOK_SECRET, PATH_SECRET)
    for name, value in zip(SECRETS, values, strict=True):
        monkeypatch.setenv(name, value)
    repos = make_repos(tmp_path)
    (tmp_path / "agent.py").write_text(AGENT)
    prompts = tmp_path / "prompts.log"
    command = f'["{sys.executable}", "{tmp_path / "agent.py"}", "{prompts}"]'
    with serve_agent(plane):
        text = f"""\
version: 1
name: ag
settings: {{secrets: [{", ".join(SECRETS)}], env: {{inherit: [PATH, HOME]}}}}
providers:
  mini:
    command: {command}
    prompt_via: argv
    prompt_command: {command[:-1]}, "{{{{ prompt }}}}"]
    input_pattern: "Proceed with the change"
projects: {{app: {{path: "{repos.clone}", base_branch: main}}}}
agents:
  bot:
    kind: plane
    url: "{plane.url}"
    client_id: PLANRUN_T_CID
    client_secret: PLANRUN_T_CSECRET
    installation: "{plane.installation}"
    allow: [alice@acme.io]
    poll: 300ms
    progress: 1ms
    webhook: {{secret: PLANRUN_T_HOOK, path: PLANRUN_T_PATH, listen: "127.0.0.1:0"}}
tasks:
  MENTION:
    for_each: {{agent: bot}}
    provider: mini
    project: app
    input_timeout: 60s
    prompt: |
      {{{{ item.key }}}}: {{{{ item.title }}}}
      {{{{ item.comment }}}}
      {{% for reply in item.replies %}}{{{{ reply }}}}
      {{% endfor %}}
"""
        yield Agent(plane, write_plan(tmp_path, text), prompts, alice, bob)
    assert plane.problems == []


def test_mentions_replies_stops_and_strangers(agent: Agent) -> None:
    plane = agent.plane
    proc = agent.start()
    try:
        url = agent.hook_url()
        item = plane.add_item(7, "Fix the parser", "It crashes on tabs.")

        # a mention (webhook), a question, its answer, the response, the completion
        run, event = plane.mention(item, agent.alice, "@bot ASK please")
        assert deliver(url, HOOK_SECRET, event, forged=True) == 403
        assert deliver(url, HOOK_SECRET, event) == 200
        assert deliver(url, HOOK_SECRET, event) == 200  # Plane's retry: a new delivery id
        wait_for(lambda: plane.status(run) == "awaiting", 30, "the elicitation")
        [asked] = [body for kind, body in plane.said(run) if kind == "elicitation"]
        assert "Proceed with the change" in asked
        reply = plane.reply(run, agent.alice, "WRITE yes, go ahead")
        assert deliver(url, HOOK_SECRET, reply) == 200
        wait_for(lambda: plane.status(run) == "completed", 30, "the completion")
        kinds = agent.said(run)
        assert kinds[:2] == ["thought", "action"]  # queued, the attempt
        assert kinds.count("elicitation") == 1
        assert kinds[-1] == "response"
        assert "branch: `planrun/ag/MENTION-plane-" in plane.said(run)[-1][1]
        assert "WRITE yes, go ahead" in agent.prompts_seen()

        # a reply on the finished run: a follow-up turn, the reply in the prompt
        assert deliver(url, HOOK_SECRET, plane.reply(run, agent.alice, "WRITE more")) == 200
        wait_for(lambda: plane.status(run) == "completed", 30, "the follow-up's completion")
        assert "(turn 2)" in plane.said(run)[-1][1]
        assert "@bot ASK please | WRITE more" in agent.prompts_seen()

        # a task that fails: an error with the reason
        failing, event = plane.mention(item, agent.alice, "@bot CRASH")
        assert deliver(url, HOOK_SECRET, event) == 200
        wait_for(lambda: plane.status(failing) == "failed", 30, "the failure")
        assert "exit code 3" in plane.said(failing)[-1][1]

        # a lost webhook: the poll finds the mention; the comment is hostile, and inert
        hostile = "{{ 6 * 7 }} {% raw %} $(touch pwned) `touch pwned2`; " + plane.client_secret
        lost, _ = plane.mention(plane.add_item(8, "Docs", "$(id)"), agent.alice, hostile)
        wait_for(lambda: plane.status(lost) == "completed", 30, "the lost mention")
        assert "{{ 6 * 7 }} {% raw %} $(touch pwned) `touch pwned2`" in agent.prompts_seen()
        assert not list(agent.plan.parent.rglob("pwned*"))
        bodies = [body for _, body in plane.said(lost)]
        assert all(plane.client_secret not in b for b in bodies), bodies

        # a stranger triggers nothing; a stop cancels the running task only
        stranger, event = plane.mention(item, agent.bob, "@bot HANG")
        assert deliver(url, HOOK_SECRET, event) == 200
        hang, event = plane.mention(item, agent.alice, "@bot HANG")
        assert deliver(url, HOOK_SECRET, event) == 200
        wait_for(lambda: "hanging" in str(plane.said(hang)), 30, "the task to hang")
        assert deliver(url, HOOK_SECRET, plane.stop(hang, agent.alice)) == 200
        wait_for(lambda: plane.status(hang) == "stopped", 30, "the stop")
        assert plane.said(stranger) == [("error", plane.said(stranger)[0][1])]
        assert "not allowed" in plane.said(stranger)[0][1]
        assert agent.prompts_seen().count("HANG") == 1
        stopped = f"MENTION-plane-{hang.replace('-', '')[:8]}-"
        worktrees = (state_of(agent.plan) / "worktrees").iterdir()
        assert [p for p in worktrees if p.name.startswith(stopped)]  # its worktree is kept
    finally:
        _end(proc)
    _no_activity_twice(plane)
    environments = Path(f"{agent.prompts}.env").read_text()
    assert not [n for n in SECRETS if n in environments]  # no credential reached a task
    assert not [t for t in plane.tokens if t in environments]
    kept = [
        p for p in state_of(agent.plan).rglob("*") if p.is_file() and "worktrees" not in p.parts
    ]
    assert not [p for p in kept for t in plane.tokens if t.encode() in p.read_bytes()]


def test_a_restart_mid_conversation_repeats_nothing_and_the_answer_arrives(
    agent: Agent,
) -> None:
    plane = agent.plane
    item = plane.add_item(9, "Migrate", "")
    run, _ = plane.mention(item, agent.alice, "@bot ASK first")  # found by polling
    proc = agent.start()
    try:
        wait_for(lambda: plane.status(run) == "awaiting", 30, "the elicitation")
    finally:
        runs.kill9(proc)
    plane.reply(run, agent.alice, "WRITE after the restart")  # while planrun is down
    proc = agent.start()
    try:
        wait_for(lambda: plane.status(run) == "completed", 40, "the completion")
        proc.send_signal(signal.SIGTERM)  # drains: the agent ends with serve
        assert proc.wait(timeout=30) == 0
    finally:
        _end(proc)
    assert "WRITE after the restart" in agent.prompts_seen()
    assert agent.said(run).count("elicitation") == 1
    _no_activity_twice(plane)


def _end(proc: subprocess.Popen[str]) -> None:
    """Stop a serve (cancelling its tasks) and show its stderr (a failing test's clue)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    print(err)


def _no_activity_twice(plane: AgentStandin) -> None:
    ids = [
        a["content_metadata"]["planrun"]["id"] for a in plane.activities if a["actor"] == plane.bot
    ]
    assert len(ids) == len(set(ids)), ids

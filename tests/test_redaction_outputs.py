"""A secret reaches none of planrun's outputs, whichever text carries it (issue 13).

Real ``planrun apply`` processes, real git repositories in tmp dirs. The task writes a
file whose name is the secret, and a git clean filter that fails makes git quote that
name in its error: the failure reason must be masked on the console, in every report,
in the events and in the state store, as the git log file already is.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from planrun.core.events import Event, EventKind, HookRan, Observers, Output, redact_data
from planrun.core.redact import Redactor
from tests import runs
from tests.gitrepo import git

TOKEN = "sk-live-ABCDEF1234567890"


def failing_filter_repo(root: Path) -> Path:
    """A repository whose *.txt files go through a clean filter that always fails."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitattributes").write_text("*.txt filter=broken\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    git(repo, "config", "filter.broken.clean", "false")
    git(repo, "config", "filter.broken.required", "true")
    return repo


PLAN = """\
version: 1
name: leak
settings: {secrets: [TOKEN], env: {set: {SEEN: "{seen}"}}}
projects: {app: {path: repo, base_branch: main}}
hooks:
  on_task_failure: [[sh, -c, 'echo "hook saw $PLANRUN_REASON" | tee "$SEEN"; exit 3']]
tasks:
  T:
    project: app
    secrets: [TOKEN]
    run: [sh, -c, 'echo work > "$TOKEN.txt"']
"""


OUTPUTS = {"--report": "r.json", "--junit": "j.xml", "--summary": "s.md", "--events": "e.jsonl"}


def test_a_secret_quoted_by_git_reaches_no_output(tmp_path: Path, clean_env: Path) -> None:
    failing_filter_repo(tmp_path)
    seen = tmp_path / "seen-by-hook.txt"  # a hook may send its reason anywhere
    plan = runs.write_plan(tmp_path, PLAN.replace("{seen}", str(seen)))
    out = {option: tmp_path / name for option, name in OUTPUTS.items()}
    applied = subprocess.run(
        [*runs.PLANRUN, "apply", str(plan), "--progress", "plain"]
        + [word for option, path in out.items() for word in (option, str(path))],
        cwd=tmp_path,
        env=runs.environment(TOKEN=TOKEN),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert applied.returncode == 1, applied.stderr
    state = runs.state_of(plan)
    git_log = (state / "logs" / "git" / "T.log").read_text()
    assert "clean filter 'broken' failed" in git_log  # the failure did happen, masked
    assert "***.txt" in git_log
    assert "***.txt: clean filter 'broken' failed" in applied.stderr  # the reason, masked
    (default_report,) = state.glob("runs/*/report.json")
    texts = {
        "stdout": applied.stdout,
        "stderr": applied.stderr,
        "default report": default_report.read_text(),
        **{name: path.read_text() for name, path in out.items()},
        "state.db": (state / "state.db").read_bytes().decode("utf-8", "replace"),
        "hook's log": "".join(p.read_text() for p in state.glob("logs/*/T.attempt-*.log")),
        "hook's environment": seen.read_text(),
    }
    assert "hook saw landing failed" in texts["hook's log"]
    assert "***.txt: clean filter" in texts["hook's environment"]
    leaked = [name for name, text in texts.items() if TOKEN in text]
    assert leaked == []
    assert "***" in texts["state.db"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def event(self, event: Event) -> None:
        self.events.append(event)


def test_observers_redact_every_text_of_an_event_before_anyone_sees_it() -> None:
    recorder = Recorder()
    observers = Observers([recorder], redact=Redactor([TOKEN]).redact)
    observers(
        HookRan(key="T", moment="m", command=f"c {TOKEN}", ok=False, reason=f"git said {TOKEN}")
    )
    observers(Output(key="T", line="already redacted by the session: left as it is"))
    first, second = recorder.events
    assert first.data == {"moment": "m", "command": "c ***", "ok": False, "reason": "git said ***"}
    assert (first.kind, first.key) == (EventKind.HOOK_RAN, "T")
    assert second.data == {"line": "already redacted by the session: left as it is"}
    assert redact_data({"a": [TOKEN, 3]}, Redactor([TOKEN]).redact) == {"a": ["***", 3]}

"""Plans for the tests of what a run shows (tests/test_live_view.py, tests/test_plain_view.py).

Each task here does one thing a person watching must see: it fails with a last line worth
reading, waits for a file the test makes, or asks a question that only ``planrun answer``
answers.
"""

from __future__ import annotations

from pathlib import Path

from tests import runs
from tests.gitrepo import make_repos

#: prints, waits for ./go (made by the test), then fails with a last line worth reading
STUCK_THEN_FAILS = (
    "echo working on it; until [ -e go ]; do sleep 0.05; done; echo it broke here; exit 3"
)

#: an agent that asks (and waits on a prompt no pipe answers), or writes what it is told
ASKER = """\
import sys, time
prompt = sys.argv[-1]
if prompt == "ASK":
    print("Proceed with the migration? [y/N]", flush=True)
    time.sleep(60)
else:
    open("answer.txt", "w").write(prompt + "\\n")
"""


def write(folder: Path, name: str, tasks: str, head: str = "") -> Path:
    """``folder/plan.yaml``: plan ``name`` with ``head`` (settings, providers, projects)
    and ``tasks`` (YAML lines under ``tasks:``)."""
    return runs.write_plan(folder, f"version: 1\nname: {name}\n{head}tasks:\n{tasks}")


def asking(folder: Path, input_timeout: str) -> Path:
    """Plan ``q``: task Q asks a question and waits ``input_timeout`` for the answer."""
    (folder / "ask.py").write_text(ASKER)
    python = runs.PLANRUN[0]
    head = f"""\
settings: {{env: {{inherit: [PATH]}}}}
providers:
  asker:
    command: ["{python}", ask.py]
    prompt_via: argv
    prompt_command: ["{python}", ask.py, "{{{{ prompt }}}}"]
    input_pattern: "Proceed with the migration"
"""
    task = f"  Q: {{provider: asker, prompt: ASK, input_timeout: {input_timeout}}}\n"
    return write(folder, "q", task, head)


def in_repo(folder: Path, name: str, tasks: str) -> Path:
    """A plan whose tasks work in worktrees of a fresh git repository."""
    repos = make_repos(folder)
    head = f"projects: {{app: {{path: {repos.clone}, base_branch: main}}}}\n"
    return write(folder, name, tasks, head + "defaults: {project: app}\n")

"""The plan ``planrun init`` writes: every line commented, valid as written, runs offline.

Its first line points editors (the YAML language server: VS Code's YAML extension, Neovim,
Helix, JetBrains) at the plan schema this planrun installed, as a ``file:`` URL: it
resolves offline and always matches the installed version. The path belongs to this
machine; a plan shared in git can point at a copy kept beside it instead (README).
"""

from planrun.schemas import packaged


def starter_plan() -> str:
    """The starter plan, its first line naming the installed plan schema."""
    return f"# yaml-language-server: $schema={packaged('plan').as_uri()}\n" + STARTER_PLAN


STARTER_PLAN = """\
# A planrun plan. Validate it with `planrun validate plan.yaml`, preview it with
# `planrun plan plan.yaml`, run it with `planrun apply plan.yaml`.
version: 1
name: starter                      # names the state folder entries and the branches

settings:
  max_concurrent: 4                # at most this many tasks run at once
  on_failure: continue             # or stop (start nothing new) or cancel (stop running too)

defaults:                          # any task field; a task's own value wins
  timeout: 10m                     # per attempt, wall clock
  retry:
    attempts: 2                    # total attempts, not retries
    backoff: {initial: 1s, factor: 2, max: 30s}

# providers:                       # agent CLIs; built-in presets: claude, codex, gemini,
#   claude: {max_concurrent: 2}    # aider, kiro, copilot, opencode (see docs/providers.md)

# projects:                        # git repositories: one worktree and branch per task
#   app: {path: ., base_branch: main, integrate: merge}

tasks:
  lint:
    title: Check the plan's folder
    run: [ls, -la]                 # a command as argv: no shell, no quoting surprises
  count:
    title: Count lines of YAML
    run: {shell: "cat *.yaml | wc -l"}   # or through the shell, when you need one
    priority: 5                    # higher starts first among ready tasks
  report:
    title: Say what happened
    needs: [lint, count]           # waits for both
    run: [echo, "lint and count are done"]
"""

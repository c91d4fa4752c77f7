"""What ``--help`` says beyond the arguments: each command's examples and exit codes.

Kept apart from the parsers (:mod:`planrun.commands`) so that those read as a list of
arguments. Exit codes follow SPEC §6; README.md's table says the same.
"""

from __future__ import annotations

#: The exit codes of ``planrun`` as a whole (the top-level ``--help``).
EXIT_CODES = """\
exit codes:
  0   every selected task done (or the command did what it was asked)
  1   a task failed, was skipped or was cancelled (or the command could not finish)
  2   invalid plan or usage
  3   the state folder is locked by another apply
  4   nothing failed, but tasks wait for a person: in review (planrun approve) or
      needing input (planrun answer)
  130 interrupted (Ctrl-C, SIGTERM)"""

#: What ``apply`` exits with.
APPLY_EXIT_CODES = """\
  0   every selected task done
  1   a task failed, was skipped or was cancelled
  2   invalid plan or usage
  3   the state folder is locked by another apply
  4   nothing failed, but tasks wait for a person: in review (planrun approve) or
      needing input (planrun answer); what needs them waits with them
  130 interrupted (Ctrl-C, SIGTERM)"""

TOP = f"""\
examples:
  planrun init && planrun apply plan.yaml     write the starter plan and run it
  planrun validate plans/*.yaml               check plans; every problem in one pass
  planrun COMMAND --help                      a command's options, examples, exit codes
  planrun completion bash > ~/.local/share/bash-completion/completions/planrun

{EXIT_CODES}"""

_PLAN_ERRORS = "  2   invalid plan or usage"

#: command → (examples, exit codes), shown as the command's epilog.
EPILOGS: dict[str, tuple[str, str]] = {
    "validate": (
        "planrun validate plan.yaml\n"
        "planrun validate -q plans/*.yaml            print only the problems",
        "  0   every plan is valid\n"
        "  2   a plan has problems (each printed as file:line:col: message), or usage",
    ),
    "plan": (
        "planrun plan plan.yaml\n"
        "planrun plan --force lint plan.yaml         as if `apply --force lint` ran\n"
        "planrun plan plan.yaml --json | jq .",
        "  0   the plan was shown (whatever it would do)\n" + _PLAN_ERRORS,
    ),
    "graph": (
        "planrun graph plan.yaml > graph.mmd\n"
        "planrun graph --format dot plan.yaml | dot -Tsvg > graph.svg",
        "  0   the graph was printed\n" + _PLAN_ERRORS,
    ),
    "schema": (
        "planrun schema plan > plan.schema.json     for editors: yaml-language-server\n"
        "planrun schema report",
        "  0   the schema was printed\n  2   usage",
    ),
    "init": (
        "planrun init && planrun apply plan.yaml\nplanrun init plans/nightly.yaml --force",
        "  0   the plan was written\n  2   the file exists (pass --force), or usage",
    ),
    "apply": (
        "planrun apply plan.yaml\n"
        "planrun apply --only lint --only test plan.yaml   options may come before PLAN\n"
        "planrun apply plan.yaml --only lint test          after PLAN, one flag takes several\n"
        "planrun apply --only lint,test plan.yaml          or a comma list\n"
        "planrun apply plan.yaml -j 8 --on-failure stop\n"
        "planrun apply plan.yaml --progress plain --junit junit.xml"
        ' --summary "$GITHUB_STEP_SUMMARY"',
        APPLY_EXIT_CODES,
    ),
    "status": (
        "planrun status                              the last run under ./.planrun\n"
        "planrun status plan.yaml --json",
        "  0   the status was shown (whatever the run's state)\n" + _PLAN_ERRORS,
    ),
    "logs": (
        "planrun logs plan.yaml build                the latest attempt's log\n"
        "planrun logs plan.yaml build --attempt 1\n"
        "planrun logs plan.yaml build -f             print output until the attempt ends",
        "  0   the log was printed (with --follow: until the attempt ended)\n"
        "  1   no attempt to show yet, or the apply running it is gone\n" + _PLAN_ERRORS,
    ),
    "report": (
        "planrun report plan.yaml > report.json\n"
        "planrun report plan.yaml --run 20260101T000000Z-abc123 --junit junit.xml",
        "  0   the reports were written\n  2   usage, or no such run recorded",
    ),
    "approve": (
        "planrun approve plan.yaml R && planrun apply plan.yaml",
        "  0   the task's work landed (and what waited for it can run)\n"
        "  1   landing conflicts; the task stays in review\n"
        "  2   the task is not in review, invalid plan or usage\n"
        "  3   an apply holds the state lock",
    ),
    "changesets": (
        "planrun changesets plan.yaml\n"
        "planrun changesets plan.yaml --state open --repo 'acme/web-*' merge\n"
        'planrun changesets plan.yaml --state draft comment "rebased on main"',
        "  0   listed, or every chosen PR took the action (or could not: said)\n"
        "  1   GitHub refused an action\n"
        "  2   invalid plan or usage, no state recorded",
    ),
    "answer": (
        'planrun answer plan.yaml FIX "yes, use the v2 API"\n'
        "echo 'use the v2 API' | planrun answer plan.yaml FIX -",
        "  0   the answer was handed over\n"
        "  2   the task is not waiting for input, invalid plan or usage",
    ),
    "attach": (
        "planrun attach plan.yaml FIX                detach again with Ctrl-b d",
        "  0   attached (the command becomes tmux)\n"
        "  2   the task has no live tmux session, invalid plan or usage",
    ),
    "clean": (
        "planrun clean plan.yaml\nplanrun clean plan.yaml --failed\nplanrun clean plan.yaml --all",
        "  0   everything asked for was removed, or there was nothing to do\n"
        "  1   something asked for was kept (the rest was still removed), or git failed\n"
        "  2   invalid plan or usage\n"
        "  3   an apply holds the state lock",
    ),
    "completion": (
        "planrun completion bash > ~/.local/share/bash-completion/completions/planrun\n"
        "planrun completion zsh > ~/.zfunc/_planrun   (with fpath+=(~/.zfunc) in .zshrc)\n"
        "planrun completion fish > ~/.config/fish/completions/planrun.fish",
        "  0   the script was printed\n  2   usage",
    ),
}


def epilog(command: str) -> str:
    """The ``examples:`` and ``exit codes:`` sections of ``command``'s ``--help``."""
    examples, codes = EPILOGS[command]
    indented = "\n".join(f"  {line}" for line in examples.splitlines())
    return f"examples:\n{indented}\n\nexit codes:\n{codes}"

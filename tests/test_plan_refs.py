"""Branch names in a plan are checked with git's rules when the plan is validated.

:func:`planrun.plan.refs.branch_problem` is pure Python; here it is held against the real
``git check-ref-format`` over chosen names and generated ones, and the plan fields that name
branches are shown to be refused by ``validate`` (and by ``apply`` before any side effect).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planrun.cli import main
from planrun.errors import PlanError
from planrun.plan.load import load_plan
from planrun.plan.refs import branch_message, branch_problem

GOOD = [
    "main",
    "master",
    "feature/x",
    "origin/main",
    "release/2.0",
    "v1.0",
    "v1.0.lockfile",
    "a.lockx",
    "x-",
    "a@b",
    "a@",
    "@a",
    "@/a",
    "x/@",
    "HEAD/x",
    "x/HEAD",
    "a{b}",
    "{{x}}",
    "é",
    "fix/ünïcode—dash",
    "refs/heads/x",
    "a/b.c",
    "a.b",
    "_under",
    "0123456789abcdef0123456789abcdef01234567",
    "planrun-plan",
    "UPPER/case",
    "a+b",
    "a=b,c",
    "#hash",
    "a!b",
    "a'b",
    'a"b',
    "a$b",
    "a%b",
    "a&b",
    "a(b)",
    "a;b",
    "a<b>",
    "a|b",
    "a`b",
]

BAD = [
    "",
    "-x",
    "-",
    "--upload-pack=x",
    "a..b",
    "..",
    ".",
    "a/./b",
    "a/../b",
    "a b",
    " a",
    "a ",
    "a\tb",
    "a\nb",
    "a\rb",
    "a\x01b",
    "a\x1fb",
    "a\x7fb",
    "a~1",
    "a^",
    "a^{commit}",
    "a:b",
    "a?",
    "a*",
    "feature/*",
    "a[b",
    "a]b[",
    "a\\b",
    "/a",
    "a/",
    "a//b",
    "a/.b",
    ".a",
    "a.lock",
    "a.lock/b",
    "a/b.lock",
    "a.lock.lock",
    "a.",
    "a/b.",
    "@",
    "@{-1}",
    "a@{b",
    "main@{upstream}",
    "HEAD",
]

# Only NUL cannot be handed to git at all; it is a control character like the others.
NOT_FOR_GIT = ["a\0b", "\0"]


def _git_accepts(name: str, cwd: Path) -> bool:
    """Whether git accepts ``name`` as a branch name, as is.

    ``--branch`` is how planrun's workspace asks (and it refuses ``-x`` and ``HEAD``); it
    expands ``@{-1}`` and creates ``refs/heads/@`` for ``@``, which everywhere else means
    HEAD, so the name must also pass the plain rules (``--allow-onelevel``), which refuse
    ``@``.
    """
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent), "LC_ALL": "C"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "check-ref-format", *args, name],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    branch = run("--branch")
    if branch.returncode != 0 or branch.stdout.rstrip("\n") != name:
        return False
    return run("--allow-onelevel").returncode == 0


@pytest.mark.parametrize("name", GOOD)
def test_a_name_git_accepts_is_accepted(name: str, tmp_path: Path) -> None:
    assert _git_accepts(name, tmp_path)
    assert branch_problem(name) is None


@pytest.mark.parametrize("name", BAD)
def test_a_name_git_refuses_is_refused(name: str, tmp_path: Path) -> None:
    assert not _git_accepts(name, tmp_path)
    assert branch_problem(name) is not None


def test_git_check_ref_format_branch_alone_takes_at_which_is_refused_all_the_same(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        ["git", "check-ref-format", "--branch", "@"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "@\n")
    assert branch_problem("@") == "'@' alone is git's short name for HEAD"


@pytest.mark.parametrize("name", NOT_FOR_GIT)
def test_a_nul_is_refused_as_a_control_character(name: str) -> None:
    assert branch_problem(name) == (
        f"it contains a NUL character (\\0) (character {name.index(chr(0)) + 1})"
    )


_PIECES = [
    "a",
    "b",
    "é",
    "/",
    ".",
    "..",
    "-",
    "@",
    "{",
    "}",
    "@{",
    ".lock",
    "HEAD",
    "~",
    "^",
    ":",
    "?",
    "*",
    "[",
    "]",
    "\\",
    " ",
    "\t",
    "\x7f",
    "\x1b",
]


@settings(max_examples=300, deadline=None)
@given(name=st.lists(st.sampled_from(_PIECES), max_size=6).map("".join))
def test_generated_names_are_judged_as_git_judges_them(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cwd = tmp_path_factory.getbasetemp()
    assert (branch_problem(name) is None) == _git_accepts(name, cwd), name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "it is empty"),
        ("-main", "it starts with '-', which git would read as an option"),
        ("a..b", "it contains '..'"),
        ("my branch", "it contains a space (character 3)"),
        ("a\tb", "it contains the control character U+0009 (character 2)"),
        ("a\x7f", "it contains the control character U+007F (character 2)"),
        (
            "a~1",
            "it contains '~' (character 2); git allows none of ~ ^ : ? * [ \\ in a branch name",
        ),
        (
            "a\\b",
            "it contains '\\' (character 2); git allows none of ~ ^ : ? * [ \\ in a branch name",
        ),
        ("/a", "it starts with '/'"),
        ("a/", "it ends with '/'"),
        ("a//b", "it contains '//' (an empty component)"),
        (".a", "it starts with '.'"),
        ("a/.b", "the component '.b' starts with '.'"),
        ("a.lock", "it ends with '.lock'"),
        ("a.lock/b", "the component 'a.lock' ends with '.lock'"),
        ("a.", "it ends with '.'"),
        ("@", "'@' alone is git's short name for HEAD"),
        ("a@{1}", "it contains '@{', which git reads as a reflog or upstream reference"),
        ("HEAD", "HEAD is git's name for the current commit, not a branch"),
    ],
)
def test_the_message_names_the_rule_broken(name: str, rule: str) -> None:
    assert branch_problem(name) == rule
    assert branch_message(name, rule) == f"{name!r} is not a valid git branch name: {rule}"


# --- in plans -------------------------------------------------------------------------------


def _load(tmp_path: Path, text: str) -> object:
    plan = tmp_path / "plan.yaml"
    plan.write_text(text, encoding="utf-8")
    return load_plan(plan)


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        _load(tmp_path, text)
    return [f"{d.location.line}:{d.location.column}: {d.message}" for d in caught.value.diagnostics]


def test_valid_branch_names_in_every_field_load(tmp_path: Path) -> None:
    _load(
        tmp_path,
        """\
version: 1
name: ship.it
defaults: {base_branch: origin/main}
projects:
  api: {path: ., base_branch: "release/2.0", target_branch: "landing/{{ project.name }}"}
  web: {path: ., base_branch: "0123456789abcdef0123456789abcdef01234567"}
  docs: {path: ., target_branch: "planrun/other-plan"}
tasks:
  a: {project: api, base_branch: "feature/ünïcode", run: [echo]}
  b: {project: web, run: [echo]}
  c: {project: docs, run: [echo]}
""",
    )


def test_a_default_target_branch_is_only_checked_where_worktrees_are_made(
    tmp_path: Path,
) -> None:
    text = """\
version: 1
name: release.
projects:
  api: {path: ., worktrees: WORKTREES}
tasks:
  a: {project: api, run: [echo]}
"""
    _load(tmp_path, text.replace("WORKTREES", "false"))
    assert _errors(tmp_path, text.replace("WORKTREES", "true")) == [
        "2:7: projects.api.target_branch: the default planrun-{{ plan.name }} gives "
        "'planrun-release.', which is not a valid git branch name: it ends with '.'; "
        "set target_branch or rename the plan"
    ]


def test_an_explicit_target_branch_is_checked_even_without_worktrees(tmp_path: Path) -> None:
    assert _errors(
        tmp_path,
        """\
version: 1
projects:
  api: {path: ., worktrees: false, target_branch: "land ing"}
tasks:
  a: {project: api, run: [echo]}
""",
    ) == [
        "3:51: projects.api.target_branch: 'land ing' is not a valid git branch name: "
        "it contains a space (character 5)"
    ]


@pytest.mark.parametrize(
    "target", ["planrun", "planrun/ship", "planrun/ship/land", "planrun/ship/a/b"]
)
def test_a_target_branch_among_the_task_branches_is_refused(tmp_path: Path, target: str) -> None:
    errors = _errors(
        tmp_path,
        f"""\
version: 1
name: ship
projects:
  api: {{path: ., target_branch: "{target}"}}
tasks:
  a: {{project: api, run: [echo]}}
""",
    )
    assert errors == [
        f"4:33: projects.api.target_branch: {target!r} clashes with the task branches "
        "planrun/ship/<task>: a git branch cannot also hold branches under its name, nor share "
        "a task's; choose a name outside planrun/ship/, such as planrun-ship"
    ]


def test_an_inherited_base_branch_is_reported_where_it_is_written(tmp_path: Path) -> None:
    assert _errors(
        tmp_path,
        """\
version: 1
tasks:
  EPIC: {base_branch: "fix:1"}
  a: {parent: EPIC, run: [echo]}
""",
    ) == [
        "3:23: tasks.EPIC.base_branch: 'fix:1' is not a valid git branch name: it contains ':' "
        "(character 4); git allows none of ~ ^ : ? * [ \\ in a branch name"
    ]


def test_apply_refuses_a_bad_branch_name_before_any_side_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "repo")], check=True)
    (tmp_path / "plan.yaml").write_text(
        """\
version: 1
name: ship
projects:
  app: {path: repo, base_branch: main}
tasks:
  a: {project: app, base_branch: "-main", run: [sh, -c, "echo ran > ran.txt"]}
""",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    assert main(["apply", "plan.yaml", "--progress", "none"]) == 2
    assert capsys.readouterr().err == (
        "plan.yaml:6:34: tasks.a.base_branch: '-main' is not a valid git branch name: "
        "it starts with '-', which git would read as an option\n1 error\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml", "repo"]
    branches = subprocess.run(
        ["git", "-C", "repo", "branch", "--list"], capture_output=True, text=True, check=True
    )
    assert branches.stdout == ""

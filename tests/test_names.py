"""Names derived from task keys are safe path and ref components and never collide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from planrun.core.names import MAX_COMPONENT, branch_name, sanitize_component
from planrun.workspace.names import worktree_dir
from tests.gitrepo import git

SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
HOSTILE = [
    "--upload-pack=touch pwned",
    "--output=/tmp/pwned",
    "..",
    ".",
    "-b",
    "-",
    "a b",
    "ünï",
    "x.lock",
    "x.lock.",
    "a/../../b",
    "/etc/passwd",
    "LOG-1[src/a.py]",
    "@{-1}",
    "a" * 300,
    "",
    "\n",
    "task-0123abcd",
]
KEPT_BUT_TRICKY = ["HEAD", "deadbeef", "a" * MAX_COMPONENT, "_x"]

# Keys close to the shapes that matter: kept as is, rewritten, or looking like a rewritten name.
keys = st.one_of(
    st.text(),
    st.from_regex(r"[A-Za-z0-9._\-\[\] /]{0,100}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.-]{0,12}-[0-9a-f]{8}", fullmatch=True),
    st.builds(sanitize_component, st.text()),
)


def assert_safe(name: str) -> None:
    assert SAFE.fullmatch(name), name
    assert ".." not in name
    assert "/" not in name
    assert not name.endswith((".", ".lock"))
    assert len(name) <= MAX_COMPONENT


@settings(max_examples=300)
@given(keys)
@example("--upload-pack=evil")
def test_sanitized_names_are_safe_and_deterministic(key: str) -> None:
    name = sanitize_component(key)
    assert_safe(name)
    assert sanitize_component(key) == name


@settings(max_examples=300)
@given(keys, keys)
@example("a b", "a-b")
@example("a b", sanitize_component("a b"))
@example("x.lock", "x-lock")
def test_different_keys_never_collide(a: str, b: str) -> None:
    if a != b:
        assert sanitize_component(a) != sanitize_component(b)


@given(keys)
def test_rewritten_name_differs_from_its_rewrite(key: str) -> None:
    # a name that already looks rewritten is rewritten again, never kept equal to another key's
    once = sanitize_component(key)
    if once != key:
        assert sanitize_component(once) != once


@pytest.mark.parametrize("key", ["LOG-1", "a.b_c-d", "X", "0"])
def test_plain_keys_are_kept(key: str) -> None:
    assert sanitize_component(key) == key


@pytest.mark.parametrize("key", HOSTILE)
def test_hostile_keys(key: str, tmp_path: Path) -> None:
    name = sanitize_component(key)
    assert_safe(name)
    assert name != key
    state = tmp_path / "state"
    path = worktree_dir(state, key)
    assert path.parent == state / "worktrees"
    assert path.resolve().is_relative_to(state.resolve())


@pytest.mark.usefixtures("clean_env")
def test_branch_names_pass_git_check_ref_format(tmp_path: Path) -> None:
    for key in [*HOSTILE, *KEPT_BUT_TRICKY, "LOG-1", "ok.name"]:
        for plan in ("demo", "--plan", "my plan"):
            branch = branch_name(plan, key)
            assert branch.startswith("planrun/")
            assert git(tmp_path, "check-ref-format", "--branch", branch) == branch


def test_worktree_dir_refuses_a_symlink_out_of_the_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (state / "worktrees").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="escapes"):
        worktree_dir(state, "LOG-1")

"""A glob fan-out sees what git sees (SPEC §2), in real git repositories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planrun.plan.files import glob_files, glob_regex
from tests.gitrepo import git, make_repos, write


def test_ignored_files_the_state_folder_and_escaping_symlinks_are_never_items(
    tmp_path: Path, clean_env: Path
) -> None:
    repos = make_repos(tmp_path, {"src/a.py": "", ".gitignore": ".venv/\nbuild/\n"})
    root = repos.clone
    write(root / "src/new.py", "")  # untracked, not ignored: an item
    write(root / ".venv/lib/site.py", "")  # ignored
    write(root / "build/gen.py", "")  # ignored
    write(root / ".planrun/plan/worktrees/T/src/a.py", "")  # the state folder
    outside = tmp_path / "outside"
    write(outside / "secret.py", "")
    os.symlink(outside, root / "src" / "link")  # a folder out of the project
    os.symlink(outside / "secret.py", root / "src" / "evil.py")  # a file out of it
    found = glob_files("**/*.py", root, exclude=root / ".planrun" / "plan")
    assert found == ["src/a.py", "src/new.py"]
    assert glob_files("**/*.py", root, exclude=root / ".planrun" / "plan") == found  # stable


def test_a_plan_at_the_repository_root_does_not_fan_out_over_its_own_worktrees(
    tmp_path: Path, clean_env: Path
) -> None:
    from planrun.cli import main
    from tests.runs import state_of

    repos = make_repos(tmp_path, {"src/a.py": "", "src/b.py": ""})
    plan = repos.clone / "plan.yaml"
    plan.write_text(
        "version: 1\nname: fan\nprojects: {app: {path: ., base_branch: main}}\n"
        "tasks:\n  T:\n    project: app\n"
        '    for_each: {glob: "**/*.py"}\n    run: [sh, -c, "echo x >> $PLANRUN_WORKTREE/x"]\n'
    )
    git(repos.clone, "add", "plan.yaml")
    git(repos.clone, "commit", "-qm", "plan")
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    assert (state_of(plan) / "state.db").exists()
    out_first = _keys(plan)
    assert main(["apply", str(plan), "--progress", "none"]) == 0  # nothing new to fan out
    assert _keys(plan) == out_first == ["T[src/a.py]", "T[src/b.py]"]


def _keys(plan: Path) -> list[str]:
    import io
    import json

    from planrun.cli import main

    out = io.StringIO()
    assert main(["plan", str(plan), "--json"], out=out) == 0
    return [t["key"] for t in json.loads(out.getvalue())["tasks"]]


SEGMENT = st.text(alphabet="ab.", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
PATHS = st.lists(
    st.lists(SEGMENT, min_size=1, max_size=3).map("/".join), min_size=1, max_size=8, unique=True
)
PATTERNS = st.sampled_from(["*", "*.a", "**/*", "**/a*", "a/*", "**/b", "?", "[ab]*", "**"])


@given(paths=PATHS, pattern=PATTERNS)
def test_the_pattern_matches_as_path_glob_does(
    tmp_path_factory: pytest.TempPathFactory, paths: list[str], pattern: str
) -> None:
    root = tmp_path_factory.mktemp("g")
    made = []
    for path in paths:
        try:
            write(root / path, "")
            made.append(path)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue
    files = [p for p in made if (root / p).is_file()]
    expected = sorted(p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file())
    regex = glob_regex(pattern)
    assert sorted(p for p in files if regex.fullmatch(p)) == expected, pattern

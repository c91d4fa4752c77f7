"""The compiled-plan cache: a second load of an unchanged plan skips YAML, the schema
models and compiling; any change to what the plan was compiled from is seen."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from planrun.errors import PlanError
from planrun.plan import cache
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from tests.gitrepo import git
from tests.plan.helpers import write

PLAN = """\
version: 1
name: cached
settings:
  secrets: [TOKEN]
projects:
  app: {path: app, worktrees: false}
providers:
  echo: {command: ["cat"]}
tasks:
  lint:
    title: Lint {{ item.path }}
    project: app
    for_each: {glob: "src/*.py"}
    run: ["true"]
  ask:
    prompt_file: prompt.md
    provider: echo
  words:
    for_each: {lines: words.txt}
    run: ["echo", "{{ item }}"]
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plan with a project (a git work tree), a glob, a prompt_file and a lines file,
    and a cache of its own."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    root = tmp_path / "plans"
    write(
        root,
        {
            "plan.yaml": PLAN,
            "prompt.md": "Say hello\n",
            "words.txt": "alpha\nbeta\n",
            "app/src/a.py": "",
            "app/src/b.py": "",
        },
    )
    git(root / "app", "init", "-q", "-b", "main")
    return root


def _entries(root: Path) -> list[Path]:
    where = cache.folder()
    assert where is not None
    return sorted(where.glob("*.pickle")) if where.exists() else []


def _cached(path: Path) -> CompiledPlan | None:
    return cache.fetch(path, path.read_bytes())


def _same(a: CompiledPlan | None, b: CompiledPlan) -> bool:
    """Equal plans: every field, the graph by its order and links."""
    if a is None:
        return False
    graph = (a.graph.topological(), a.graph.tasks) == (b.graph.topological(), b.graph.tasks)
    fields = ("name", "path", "directory", "sha256", "settings", "providers", "projects")
    return graph and all(getattr(a, f) == getattr(b, f) for f in (*fields, "hooks", "tasks"))


def test_a_second_load_comes_from_the_cache_and_equals_a_fresh_compile(folder: Path) -> None:
    path = folder / "plan.yaml"
    first = load_plan(path)
    assert len(_entries(folder)) == 1
    again = _cached(path)
    assert again is not None
    assert _same(again, first)
    assert again.work == first.work
    assert sorted(again.tasks) == sorted(first.tasks)
    assert again.tasks["ask"].prompt == "Say hello\n"
    assert "fingerprints" in vars(again)  # kept with the plan: a run does not hash again
    assert again.fingerprints == first.fingerprints


def test_a_cached_load_imports_neither_yaml_nor_the_schema_models(folder: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from planrun.plan.load import load_plan
        load_plan(sys.argv[1])
        print(sorted(m for m in ("pydantic", "ruamel.yaml", "jinja2") if m in sys.modules))
        """
    )

    def imported() -> str:
        argv = [sys.executable, "-c", code, str(folder / "plan.yaml")]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

    assert "pydantic" in imported()  # the first load compiles
    assert imported() == "[]"


def test_an_apply_of_a_cached_plan_imports_no_parser_models_or_http(
    folder: Path, tmp_path: Path
) -> None:
    """What a run of an unchanged plan imports: the start-up budget of issue 16."""
    code = textwrap.dedent(
        """
        import sys
        from planrun.cli import main
        assert main(["apply", sys.argv[1], "--progress", "none", "--state-dir", sys.argv[2]]) == 0
        heavy = ("pydantic", "ruamel.yaml", "jinja2", "httpx", "planrun.plan.model")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )

    plan = folder / "run.yaml"
    plan.write_text(
        PLAN.replace("name: cached", "name: run").split("  ask:")[0]
        + '  words:\n    for_each: {lines: words.txt}\n    run: ["true"]\n'
    )

    def imported(run: int) -> str:
        argv = [sys.executable, "-c", code, str(plan), str(tmp_path / f"s{run}")]
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    assert "pydantic" in imported(1)
    assert imported(2) == "[]"


@pytest.mark.parametrize(
    "change",
    [
        "plan text",
        "prompt_file",
        "lines file",
        "a new file for the glob",
        "a file the glob saw is now ignored",
        "the project becomes a bare repository",
        "prompt_file becomes a symlink elsewhere",
    ],
)
def test_every_input_of_compiling_invalidates_the_entry(folder: Path, change: str) -> None:
    path = folder / "plan.yaml"
    before = load_plan(path)
    if change == "plan text":
        path.write_text(PLAN.replace("Lint", "Check"))
    elif change == "prompt_file":
        (folder / "prompt.md").write_text("Say goodbye\n")
    elif change == "lines file":
        (folder / "words.txt").write_text("alpha\nbeta\ngamma\n")
    elif change == "a new file for the glob":
        (folder / "app/src/c.py").write_text("")
    elif change == "a file the glob saw is now ignored":
        (folder / "app/.gitignore").write_text("b.py\n")
    elif change == "the project becomes a bare repository":
        (folder / "app/.git").rename(folder / "bare.git")
        os.rename(folder / "app", folder / "old-app")
        (folder / "bare.git").rename(folder / "app")
    elif change == "prompt_file becomes a symlink elsewhere":
        (folder / "other.md").write_text("Something else\n")
        (folder / "prompt.md").unlink()
        (folder / "prompt.md").symlink_to(folder / "other.md")
    assert _cached(path) is None
    if change == "the project becomes a bare repository":
        with pytest.raises(PlanError, match="bare git repository"):
            load_plan(path)
        return
    after = load_plan(path)
    assert not _same(after, before)
    assert _same(_cached(path), after)


def test_a_plan_with_problems_is_never_kept_and_its_errors_stay_fresh(folder: Path) -> None:
    path = folder / "plan.yaml"
    (folder / "prompt.md").unlink()
    for _ in range(2):
        with pytest.raises(PlanError, match=r"prompt_file 'prompt\.md' does not exist"):
            load_plan(path)
    assert _entries(folder) == []
    (folder / "prompt.md").write_text("back\n")
    assert load_plan(path).tasks["ask"].prompt == "back\n"
    assert _cached(path) is not None


def test_a_damaged_entry_is_a_miss_and_is_replaced(folder: Path) -> None:
    path = folder / "plan.yaml"
    first = load_plan(path)
    (entry,) = _entries(folder)
    entry.write_bytes(b"not a pickle")
    assert _cached(path) is None
    assert _same(load_plan(path), first)
    assert _same(_cached(path), first)


def test_entries_in_a_folder_others_may_write_are_not_loaded(folder: Path) -> None:
    path = folder / "plan.yaml"
    load_plan(path)
    where = cache.folder()
    assert where is not None
    where.chmod(0o777)
    assert _cached(path) is None
    where.chmod(0o700)
    assert _cached(path) is not None


def test_the_cache_can_be_turned_off(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    load_plan(folder / "plan.yaml")
    assert cache.folder() is None
    assert not (folder.parent / "cache").exists()


def test_text_given_in_place_of_the_file_is_not_cached(folder: Path) -> None:
    load_plan(folder / "plan.yaml", PLAN)
    assert _entries(folder) == []


#: Modules of planrun/plan that may touch the disk or the environment themselves: the
#: probes and what they call, loading the plan file, the cache, and the sandbox's setup.
_MAY_READ = {"probes.py", "files.py", "paths.py", "load.py", "cache.py"}
_READS = re.compile(
    r"\.resolve\(\)|\.read_text\(|\.read_bytes\(|\.exists\(\)|\.is_dir\(\)|\.is_file\(\)"
    r"|\bopen\(|os\.environ|getenv\(|subprocess\.|os\.stat\(|os\.listdir|scandir\(|\.glob\("
)


def test_compiling_reads_the_disk_only_through_probes() -> None:
    """A read that is not a probe would be invisible to the cache: a cached plan would
    then miss a change to what it read."""
    folder = Path(cache.__file__).parent
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(folder.glob("*.py"))
        if path.name not in _MAY_READ
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _READS.search(line.replace("probes.", "")) and not line.lstrip().startswith("#")
    ]
    assert found == []


def test_a_compile_that_read_a_tracker_is_not_kept(folder: Path) -> None:
    """What a tracker says can change at any time and no probe asks it again cheaply:
    reading one (planrun.plan.reads, tracker fan-out) marks the compile not cacheable."""
    from planrun.plan import probes

    path = folder / "plan.yaml"
    with probes.recording() as asked:
        plan = load_plan(path, path.read_text())  # text given: compiled, never kept
        probes.not_cacheable("it reads a tracker")
    cache.keep(path, path.read_bytes(), asked, plan)
    assert _entries(folder) == []
    cache.keep(path, path.read_bytes(), [a for a in asked if a[0] != probes.NOT_CACHEABLE], plan)
    assert len(_entries(folder)) == 1

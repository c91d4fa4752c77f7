"""Batch changes over 50 repositories: wall time, git and GitHub API calls per repository.

50 bare git repositories in a temporary folder are "the org"; a plan lists them as one
project's ``repositories:`` (docs/batch-changes.md), with a codemod task per repository
(``sed`` over one file, a plain command) and a changeset each, published as a draft PR to
the GitHub stand-in of the tests (tests/github_standin.py, real HTTP on 127.0.0.1,
validated with githubkit's models). ``planrun apply`` runs as a child, twice:

- first run: every repository cloned (partial clone) into the state folder, its task run
  and landed, its branch pushed and its PR opened;
- second run, nothing edited: every clone fetched, every task up to date, nothing pushed
  and nothing sent to GitHub.

git is counted through a shim first on PATH (each call logged, then git itself), API
calls by the stand-in. Prints a Markdown table; asserts only that the second run sent
nothing. Needs the dev and github extras (githubkit, httpx).

    python bench/changes_bench.py            # 50 repositories
    python bench/changes_bench.py --repos 10
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.github_standin import Standin, serve  # noqa: E402

TOKEN_VAR = "PLANRUN_BENCH_GH_TOKEN"


def run(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_org(root: Path, count: int) -> dict[str, Path]:
    """``count`` bare repositories ``root/acme/r00.git``..., each with a few files."""
    seed = root / "seed"
    run("git", "init", "-q", "-b", "main", str(seed), cwd=root)
    for n in range(20):
        (seed / f"mod{n}.py").write_text(f"def fetch_data():\n    return {n}\n", encoding="utf-8")
    run("git", "add", "-A", cwd=seed)
    run("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "seed", cwd=seed)
    found = {}
    for n in range(count):
        bare = root / "acme" / f"r{n:02}.git"
        run("git", "clone", "-q", "--bare", str(seed), str(bare), cwd=root)
        found[f"acme/r{n:02}"] = bare
    return found


def write_plan(folder: Path, url: str, repos: dict[str, Path]) -> Path:
    urls = ", ".join(f"'{path}'" for path in repos.values())
    text = f"""\
version: 1
name: rename
settings: {{secrets: [{TOKEN_VAR}]}}
projects:
  org:
    repositories: {{urls: [{urls}]}}
    base_branch: main
    changeset: {{token: {TOKEN_VAR}, url: '{url}', title: 'Rename fetch_data', labels: [batch]}}
tasks:
  CODEMOD:
    project: org
    run: {{shell: "git grep -l fetch_data | xargs -r sed -i s/fetch_data/load_data/g"}}
"""
    path = folder / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def git_shim(folder: Path, log: Path) -> Path:
    """A folder with a ``git`` that logs its arguments, then runs the real git."""
    real = shutil.which("git")
    assert real is not None
    shim = folder / "shim"
    shim.mkdir()
    script = shim / "git"
    script.write_text(
        "#!/bin/sh\n"  # one line per call, newlines in arguments (commit messages) flattened
        f'line=$(printf "%s " "$@" | tr "\\n" " ")\nprintf "%s\\n" "$line" >> "{log}"\n'
        f'exec "{real}" "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return shim


def subcommand(line: str) -> str:
    """The git subcommand of a logged call (after -C DIR and -c KEY=VALUE)."""
    words = line.split()
    while words and words[0] in ("-C", "-c"):
        words = words[2:]
    while words and words[0].startswith("--"):
        words = words[1:]
    return words[0] if words else "?"


def apply(plan: Path, env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "planrun", "apply", str(plan), "--progress", "none"],
        cwd=plan.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - started, done.returncode


CLONE_ONLY = (
    "import sys\n"
    "from planrun.changes.clones import prepare_repositories\n"
    "from planrun.plan.load import load_plan\n"
    "prepared = prepare_repositories(load_plan(sys.argv[1]))\n"
    "assert prepared.cloned == len(prepared.plan.projects), prepared\n"
)


def clone_only(plan: Path, env: dict[str, str]) -> tuple[float, int]:
    """The clones alone (what plan and apply do first), in a folder of their own."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CLONE_ONLY, str(plan)], cwd=plan.parent, env=env, check=False
    )
    return time.perf_counter() - started, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=50)
    count = parser.parse_args().repos
    with tempfile.TemporaryDirectory(prefix="changes-bench-") as tmp:
        root = Path(tmp)
        repos = make_org(root, count)
        standin = Standin(repo="acme/issues", repos=list(repos), bare=dict(repos))
        log = root / "git.log"
        env = {
            **os.environ,
            TOKEN_VAR: standin.token,
            "PATH": f"{git_shim(root, log)}{os.pathsep}{os.environ['PATH']}",
            "PLANRUN_PLAN_CACHE": "off",
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@planrun.invalid",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@planrun.invalid",
        }
        rows = []
        with serve(standin):
            (root / "alone").mkdir()
            plan = write_plan(root, standin.url, repos)
            alone = write_plan(root / "alone", standin.url, repos)
            for name in ("clones alone (python -c)", "first run", "second run (no-op)"):
                log.write_text("", encoding="utf-8")
                before = len(standin.requests)
                seconds, code = clone_only(alone, env) if "alone" in name else apply(plan, env)
                calls = log.read_text(encoding="utf-8").splitlines()
                api = standin.requests[before:]
                rows.append((name, seconds, code, calls, api))
            assert standin.problems == [], standin.problems
            assert not [r for r in rows[2][4] if r[0] != "GET"], "the second run wrote to GitHub"
            assert len(standin.pulls) == count, len(standin.pulls)
    print(f"{count} repositories, one codemod task and one draft PR each\n")
    print(
        "| run | exit | wall time | per repository | git calls | per repository | "
        "API calls | per repository |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, seconds, code, calls, api in rows:
        print(
            f"| {name} | {code} | {seconds:.2f} s | {seconds / count * 1000:.0f} ms "
            f"| {len(calls)} | {len(calls) / count:.1f} | {len(api)} | {len(api) / count:.1f} |"
        )
    for name, _, _, calls, api in rows:
        kinds = Counter(subcommand(line) for line in calls).most_common()
        methods = Counter(f"{m} {p.split('/')[-1] if p.count('/') > 3 else p}" for m, p, _ in api)
        print(f"\n{name}: git " + ", ".join(f"{k} {n}" for k, n in kinds))
        print(f"{name}: API " + ", ".join(f"{k} {n}" for k, n in methods.most_common(8)))


if __name__ == "__main__":
    main()

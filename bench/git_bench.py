"""What git worktrees cost planrun: 200 tasks landing by merge in one repository, J=8.

Each task appends a line to its own file (``files/fNNN.txt``); the project has
``worktrees: true`` and ``integrate: merge``, so every task gets a worktree and a branch cut
from the integration branch, commits, lands with merge-tree + commit-tree + a
compare-and-swap update-ref, and has its worktree removed.

How the git cost is measured, and why two ways:

1. Wall time, worktrees vs in place: the same plan with ``worktrees: false`` runs the same
   200 commands in the main checkout (no git at all). ``(wall_worktrees − wall_in_place)
   / 200`` is what a user pays per task for isolation and landing, start-up and journal
   cancelled out. This is the headline figure.
2. A ``git`` wrapper on PATH (bash, ``$EPOCHREALTIME``, no extra process) logs every git
   planrun runs with its start and end: invocations per task, per subcommand, summed git
   time, and how much of the wall time has at least one git running (``busy``), which
   shows the repository lock serialising them. The wrapper adds ~1–2 ms per call, so this
   run's wall time is reported separately and not used for (1).

Reference: plain shell doing the same 200 changes with the minimum of git — ``git worktree
add -b``, edit, ``git commit -am``, ``git merge --no-ff`` into an integration worktree,
``git worktree remove``, ``git branch -d`` (6 git calls per change) — once as a sequential
loop and once 8-wide (``xargs -P 8``) with the metadata-changing steps under one ``flock``,
which is planrun's locking discipline.

    python bench/git_bench.py [--tasks 200] [--jobs 8] [--reps 3] [--wrapped-reps 1]
                              [--baseline DIR] [--no-shell]

``--baseline DIR`` also runs the planrun of another source tree (say a copy of an earlier
commit: ``git worktree add /tmp/before <commit>``) in every repetition, interleaved with this
tree's runs so that both see the same load: ``python -m planrun`` run with DIR as its
working directory imports DIR's ``planrun`` package. ``--no-shell`` leaves out the shell
references.

Prints tables (Markdown); asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REAL_GIT = shutil.which("git") or "/usr/bin/git"

WRAPPER = """#!/bin/bash
# planrun git_bench: log each git call (start, end, pid, argv) and run the real git.
start=$EPOCHREALTIME
"{real}" "$@"
rc=$?
printf '%s %s %s %s\\n' "$start" "$EPOCHREALTIME" "$$" "$*" >> "{log}"
exit $rc
"""

SHELL_LOOP = r"""
set -eu
repo=$1; n=$2; work=$3
cd "$repo"
git branch -q integ main
git worktree add -q "$work/integ" integ
i=0
while [ "$i" -lt "$n" ]; do
  k=$(printf %03d "$i")
  git worktree add -q -b "task/$k" "$work/wt-$k" integ
  echo "change $k" >> "$work/wt-$k/files/f$k.txt"
  git -C "$work/wt-$k" commit -q -am "change $k"
  git -C "$work/integ" merge -q --no-ff -m "merge task/$k" "task/$k"
  git worktree remove "$work/wt-$k"
  git -C "$work/integ" branch -q -d "task/$k"
  i=$((i + 1))
done
"""

SHELL_PARALLEL_ONE = r"""
set -eu
k=$1; work=$2; lock=$work/lock
flock "$lock" git worktree add -q -b "task/$k" "$work/wt-$k" integ
echo "change $k" >> "$work/wt-$k/files/f$k.txt"
git -C "$work/wt-$k" commit -q -am "change $k"
flock "$lock" sh -c '
  git -C "$1/integ" merge -q --no-ff -m "merge task/$2" "task/$2"
  git worktree remove "$1/wt-$2"
  git -C "$1/integ" branch -q -d "task/$2"' sh "$work" "$k"
"""


def make_repo(path: Path, tasks: int) -> None:
    """A repository on ``main`` with one small file per task."""
    files = path / "files"
    files.mkdir(parents=True)
    for i in range(tasks):
        (files / f"f{i:03d}.txt").write_text(f"file {i}\n")
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "bench"],
        ["git", "config", "user.email", "bench@localhost"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "start"],
    ):
        subprocess.run(argv, cwd=path, env=env, check=True)


def write_plan(
    path: Path, repo: Path, state: Path, tasks: int, jobs: int, *, worktrees: bool
) -> None:
    lines = [
        "version: 1",
        "name: gitbench",
        f"settings: {{state_dir: {state}, max_concurrent: {jobs}}}",
        "projects:",
        f"  repo: {{path: {repo}, integrate: merge, worktrees: {str(worktrees).lower()}}}",
        "defaults: {project: repo}",
        "tasks:",
    ]
    for i in range(tasks):
        k = f"{i:03d}"
        lines.append(f"  t{k}: {{run: [sh, -c, 'echo change {k} >> files/f{k}.txt']}}")
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Run:
    seconds: float
    ok: bool
    note: str = ""


def timed(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> Run:
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=out)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        print(f"  !! {' '.join(argv[:5])}... exited {proc.returncode}\n{tail}", file=sys.stderr)
    return Run(seconds, proc.returncode == 0)


def landed(repo: Path, branch: str) -> int:
    """Merge commits on the first-parent line of ``branch`` (one per landed task)."""
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--first-parent", "--merges", "--count", branch],
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip() or 0) if out.returncode == 0 else -1


@dataclass
class GitLog:
    calls: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, argv

    @classmethod
    def read(cls, path: Path) -> GitLog:
        log = cls()
        if not path.exists():
            return log
        for line in path.read_text().splitlines():
            parts = line.split(" ", 3)
            if len(parts) == 4:
                log.calls.append((float(parts[0]), float(parts[1]), parts[3]))
        return log

    def total(self) -> float:
        return sum(end - start for start, end, _ in self.calls)

    def busy(self) -> float:
        """Seconds during which at least one git was running (union of the intervals)."""
        busy, reach = 0.0, float("-inf")
        for start, end in sorted((s, e) for s, e, _ in self.calls):
            if start > reach:
                busy += end - start
                reach = end
            elif end > reach:
                busy += end - reach
                reach = end
        return busy

    def by_subcommand(self) -> dict[str, tuple[int, float]]:
        counts: dict[str, list[float]] = collections.defaultdict(list)
        for start, end, argv in self.calls:
            counts[_subcommand(argv)].append(end - start)
        return {k: (len(v), sum(v)) for k, v in counts.items()}


def _subcommand(argv: str) -> str:
    """``worktree add`` / ``rev-parse`` ... from a logged command line (skips -c/-C pairs)."""
    words = argv.split()
    i = 0
    while i < len(words) and words[i] in ("-c", "-C"):
        i += 2
    name = words[i] if i < len(words) else "?"
    if name in ("worktree", "merge-base", "symbolic-ref") and i + 1 < len(words):
        name = f"{name} {words[i + 1]}"
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument(
        "--wrapped-reps", type=int, default=1, help="runs with the git wrapper (counting only)"
    )
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another source tree to compare with"
    )
    parser.add_argument("--no-shell", action="store_true", help="skip the shell references")
    args = parser.parse_args()
    n, j = args.tasks, args.jobs
    py = sys.executable
    results: dict[str, list[Run]] = collections.defaultdict(list)
    logs: dict[str, GitLog] = {}
    trees = {"": REPO}
    if args.baseline is not None:
        trees[" @ baseline"] = args.baseline.resolve()
    load_start = os.getloadavg()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="planrun-git-bench-") as name:
        tmp = Path(name)
        template = tmp / "template"
        make_repo(template, n)
        wrapper_dir = tmp / "wrapper"
        wrapper_dir.mkdir()
        base_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GIT_") and k not in ("MAKEFLAGS",)
        }
        base_env["GIT_CONFIG_NOSYSTEM"] = "1"

        def fresh(tag: str) -> tuple[Path, Path]:
            where = tmp / tag
            shutil.copytree(template, where / "repo", symlinks=True)
            return where, where / "repo"

        def planrun(tag: str, *, worktrees: bool, wrap: bool, tree: str = "") -> None:
            where, repo = fresh(tag)
            plan = where / "plan.yaml"
            write_plan(plan, repo, where / "state", n, j, worktrees=worktrees)
            env = dict(base_env)
            if wrap:
                log = where / "git.log"
                script = wrapper_dir / "git"
                script.write_text(WRAPPER.format(real=REAL_GIT, log=log))
                script.chmod(0o755)
                env["PATH"] = f"{wrapper_dir}{os.pathsep}{env.get('PATH', '')}"
            argv = [py, "-m", "planrun", "apply", str(plan), "-j", str(j), "--progress", "none"]
            run = timed(argv, cwd=trees[tree], env=env, log=where / "out.log")
            if worktrees:
                count = landed(repo, "planrun-gitbench")
                run.note = f"{count} landed"
                run.ok = run.ok and count == n
            label = f"planrun{tree}{' (git wrapper)' if wrap else ''}, worktrees: {worktrees}"
            if wrap:
                logs.setdefault(label, GitLog.read(where / "git.log"))
            results[label].append(run)

        def shell_loop(tag: str) -> None:
            where, repo = fresh(tag)
            run = timed(
                ["bash", "-c", SHELL_LOOP, "loop", str(repo), str(n), str(where)],
                cwd=where,
                env=base_env,
                log=where / "out.log",
            )
            count = landed(repo, "integ")
            run.note = f"{count} merged"
            run.ok = run.ok and count == n
            results["shell loop, sequential (6 git calls per change)"].append(run)

        def shell_parallel(tag: str) -> None:
            where, repo = fresh(tag)
            setup = (
                'set -eu; cd "$1"; git branch -q integ main; git worktree add -q "$2/integ" integ'
            )
            argv = ["bash", "-c", setup, "s", str(repo), str(where)]
            subprocess.run(argv, env=base_env, check=True)
            keys = "\n".join(f"{i:03d}" for i in range(n)) + "\n"
            (where / "keys").write_text(keys)
            one = where / "one.sh"
            one.write_text(SHELL_PARALLEL_ONE)
            script = f'xargs -P {j} -I{{}} bash "{one}" {{}} "{where}" < "{where}/keys"'
            run = timed(["bash", "-c", script], cwd=repo, env=base_env, log=where / "out.log")
            count = landed(repo, "integ")
            run.note = f"{count} merged"
            run.ok = run.ok and count == n
            results[f"shell, {j}-wide (xargs -P {j}, flock like planrun's repo lock)"].append(run)

        for rep in range(args.reps):
            steps: list[tuple[str, Callable[[int], None]]] = []
            for tree in trees:
                steps.append((f"wt{tree}", partial(_step, planrun, "wt", True, False, tree)))
            for tree in trees:
                steps.append((f"inplace{tree}", partial(_step, planrun, "in", False, False, tree)))
            if not args.no_shell:
                steps.append(("loop", lambda r: shell_loop(f"loop-{r}")))
                steps.append(("par", lambda r: shell_parallel(f"par-{r}")))
            if rep < args.wrapped_reps:
                for tree in trees:
                    steps.append(
                        (f"wrapped{tree}", partial(_step, planrun, "wr", True, True, tree))
                    )
            for label, step in steps:
                before = " ".join(f"{x:.2f}" for x in os.getloadavg())
                step(rep)
                print(
                    f"  [rep {rep + 1}] {label:<20} done (load before {before})",
                    file=sys.stderr,
                    flush=True,
                )

    def med(runs: list[Run]) -> float:
        return statistics.median(r.seconds for r in runs)

    print(
        f"- machine: nproc {os.cpu_count()}, CPU {cpu_model()}, Python {sys.version.split()[0]}, "
        f"{git_version()}"
    )
    print(
        f"- load average at start: {' '.join(f'{x:.2f}' for x in load_start)}, at end: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print()
    print(f"{n} tasks, one file each, J={j}, integrate: merge; {args.reps} runs each, median")
    print()
    print("| | median | runs | per task | check |")
    print("|---|---|---|---|---|")
    for label, runs in results.items():
        m = med(runs)
        bad = "" if all(r.ok for r in runs) else " FAILED"
        notes = ", ".join(sorted({r.note for r in runs if r.note}))
        listed = ", ".join(f"{r.seconds:.2f}" for r in runs)
        print(f"| {label} | {m:.2f} s | {listed} | {m / n * 1000:.1f} ms | {notes}{bad} |")
    for tree in trees:
        wt = results[f"planrun{tree}, worktrees: True"]
        inplace = results[f"planrun{tree}, worktrees: False"]
        git_wall = (med(wt) - med(inplace)) / n * 1000
        print(
            f"| **planrun{tree} git cost per task: (worktrees − in place) / {n}** | | | "
            f"**{git_wall:.1f} ms** | |"
        )

    for label, log in logs.items():
        calls = len(log.calls)
        wall = med(results[label])
        print()
        print(f"git calls of one {label} run (wrapper log, {calls} calls, wall {wall:.2f} s)")
        print()
        print(f"- per task: {calls / n:.1f} calls, {log.total() / n * 1000:.1f} ms of git")
        print(
            f"- git running (union of intervals): {log.busy():.2f} s of {wall:.2f} s wall; "
            f"summed git time {log.total():.2f} s (≈ busy means git ran one at a time)"
        )
        print()
        print("| subcommand | calls | per task | total | mean |")
        print("|---|---|---|---|---|")
        rows = sorted(log.by_subcommand().items(), key=lambda kv: -kv[1][1])
        for sub, (count, total) in rows:
            print(
                f"| {sub} | {count} | {count / n:.2f} | {total:.2f} s | "
                f"{total / count * 1000:.1f} ms |"
            )


def _step(
    planrun: Callable[..., None], prefix: str, worktrees: bool, wrap: bool, tree: str, rep: int
) -> None:
    tag = f"{prefix}{tree.replace(' @ ', '-')}-{rep}"
    planrun(tag, worktrees=worktrees, wrap=wrap, tree=tree)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def git_version() -> str:
    out = subprocess.run([REAL_GIT, "--version"], capture_output=True, text=True)
    return out.stdout.strip()


if __name__ == "__main__":
    main()

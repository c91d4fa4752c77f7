"""What planrun's scheduling costs: 1,000 trivial tasks against make and a bare trio loop.

Part (a), 1,000 tasks running ``true`` at J=2, two shapes:

- ``independent``: no needs;
- ``layered``: 20 layers of 50, each task needs two tasks of the previous layer.

Each shape runs, side by side and interleaved (one of each per repetition, so machine load
drifts hit all of them alike):

- ``planrun apply PLAN -j 2 --progress none`` as a child (wall time, peak RSS), as shipped:
  the run's journal file with SQLite group commits (synchronous=FULL), report, start-up and all;
- the in-process :class:`planrun.run.scheduler.Scheduler` with the real StoreJournal (what
  ``apply`` journals, minus start-up, plan loading and the report);
- the in-process Scheduler with NullJournal (the default when a Scheduler is built
  directly): the scheduling and session path alone, so the journal's share is visible;
- a bare trio loop: ``trio.run_process`` under a ``trio.CapacityLimiter(J)``, one
  ``trio.Event`` per task for needs, in-process and as a child ``python`` (start-up included,
  to compare with the CLI);
- GNU ``make -jJ`` on an equivalent Makefile (phony targets, recipe ``true``);
- ``planrun validate PLAN`` as a child: interpreter start-up + imports + plan loading.

Part (b), 1,000 tasks of ``sleep 0.05`` at J=8: planrun's wall time against the ideal
1000 x 0.05 / 8 = 6.25 s (plus the same references).

Children run under a small launcher that times them and reads
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` once they end: planrun's peak RSS (its own children,
forked from it, never exceed it). Launched from this bench directly, a child's ru_maxrss
would include the bench's RSS at fork time (pages shared until exec count). Prints Markdown
tables; asserts nothing.

    python bench/apply_bench.py                       # everything (several minutes)
    python bench/apply_bench.py --part a --shape independent   # ~3 min each
    python bench/apply_bench.py --part a --shape layered
    python bench/apply_bench.py --part b
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parent.parent
TASKS = 1000
LAYERS, WIDTH = 20, 50


# --- the workloads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    needs: dict[str, list[str]]  # key -> keys it needs, in dispatch order
    argv: tuple[str, ...]
    jobs: int

    @property
    def ideal(self) -> float | None:
        """Wall time with zero overhead, when the command is a fixed sleep."""
        if self.argv[0] == "sleep" and not any(self.needs.values()):
            return len(self.needs) * float(self.argv[1]) / self.jobs
        return None


def independent(
    argv: tuple[str, ...], jobs: int, tasks: int = TASKS, name: str = "independent"
) -> Workload:
    return Workload(name, {f"t{i:04d}": [] for i in range(tasks)}, argv, jobs)


def layered(argv: tuple[str, ...], jobs: int) -> Workload:
    needs: dict[str, list[str]] = {}
    for layer in range(LAYERS):
        for i in range(WIDTH):
            key = f"l{layer:02d}_t{i:02d}"
            if layer == 0:
                needs[key] = []
            else:
                prev = layer - 1
                needs[key] = [f"l{prev:02d}_t{i:02d}", f"l{prev:02d}_t{(i + 1) % WIDTH:02d}"]
    return Workload("layered", needs, argv, jobs)


def write_plan(work: Workload, directory: Path) -> Path:
    lines = [
        "version: 1",
        f"name: bench-{work.name}",
        f"settings: {{state_dir: state, max_concurrent: {work.jobs}}}",
        "tasks:",
    ]
    argv = json.dumps(list(work.argv))
    for key, needs in work.needs.items():
        if needs:
            lines.append(f"  {key}: {{run: {argv}, needs: {json.dumps(needs)}}}")
        else:
            lines.append(f"  {key}: {{run: {argv}}}")
    path = directory / f"{work.name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_makefile(work: Workload, directory: Path) -> Path:
    recipe = " ".join(work.argv)
    keys = list(work.needs)
    lines = [".PHONY: all " + " ".join(keys), "all: " + " ".join(keys), ""]
    for key, needs in work.needs.items():
        lines.append(f"{key}: {' '.join(needs)}".rstrip())
        lines.append(f"\t@{recipe}")
    path = directory / f"{work.name}.mk"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_spec(work: Workload, directory: Path) -> Path:
    path = directory / f"{work.name}.json"
    path.write_text(json.dumps({"needs": work.needs, "argv": work.argv, "jobs": work.jobs}))
    return path


# --- the contenders -----------------------------------------------------------------------


async def bare_trio(needs: dict[str, list[str]], argv: tuple[str, ...], jobs: int) -> None:
    """The floor for a trio program: one task per job, an Event per key, a limiter."""
    limiter = trio.CapacityLimiter(jobs)
    done = {key: trio.Event() for key in needs}

    async def one(key: str) -> None:
        for need in needs[key]:
            await done[need].wait()
        async with limiter:
            await trio.run_process(list(argv))
        done[key].set()

    async with trio.open_nursery() as nursery:
        for key in needs:
            nursery.start_soon(one, key)


def bare_trio_child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    trio.run(bare_trio, spec["needs"], tuple(spec["argv"]), spec["jobs"])


@dataclass
class ChildRun:
    seconds: float
    maxrss_kib: int
    returncode: int


# Runs the command, then reports its wall time and getrusage(RUSAGE_CHILDREN).ru_maxrss.
# Why a small launcher: a child's ru_maxrss also counts the RSS of the process that forked it
# (the pages it shares until exec), so a child of this bench (grown by the in-process runs)
# would report the bench's own size. Forked from this small process, planrun reports its own.
PROBE = """
import resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    out.write(f"{seconds} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {rc}")
"""


def run_child(argv: list[str], *, cwd: Path | None = None, log: Path | None = None) -> ChildRun:
    """Run ``argv`` to its end under the probe; its wall time and peak RSS (KiB)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    with tempfile.NamedTemporaryFile("r", suffix=".probe") as probe:
        with open(log or os.devnull, "wb") as out:
            subprocess.run(
                [sys.executable, "-c", PROBE, probe.name, *argv],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=out,
            )
        seconds, maxrss, rc = probe.read().split()
    if int(rc) != 0:
        tail = log.read_text(errors="replace")[-2000:] if log else ""
        print(f"  !! {argv[:4]}... exited {rc}\n{tail}", file=sys.stderr)
    return ChildRun(float(seconds), int(maxrss), int(rc))


@dataclass
class InProcess:
    """Timing of one in-process Scheduler run, by phase."""

    run: float
    setup: float = 0.0  # open the store, fingerprints, decide, begin the run
    report: float = 0.0  # build and write the JSON report
    ok: bool = True


def scheduler_run(plan: object, state_dir: Path, jobs: int, *, journal: bool) -> InProcess:
    """Run the plan with planrun's Scheduler in this process (fresh state folder)."""
    from planrun.run.scheduler import RunSettings, Scheduler
    from planrun.sessions.subprocess import SubprocessSession

    run_id = f"bench-{time.time_ns()}"
    settings = RunSettings(run_id=run_id, state_dir=state_dir, max_concurrent=jobs)
    sessions = {"subprocess": SubprocessSession()}
    if not journal:
        scheduler = Scheduler(plan, settings, sessions=sessions)  # type: ignore[arg-type]
        start = time.perf_counter()
        trio.run(scheduler.run)
        return InProcess(time.perf_counter() - start, ok=scheduler.state.succeeded)

    from planrun.report.outputs import Outputs, write_reports
    from planrun.run.apply import build_report
    from planrun.run.prepare import decide_for, fingerprints_of
    from planrun.state.folder import open_state

    t0 = time.perf_counter()
    with open_state(plan, state_dir) as state:  # type: ignore[arg-type]
        fingerprints = fingerprints_of(plan)  # type: ignore[arg-type]
        decision = decide_for(plan, state.known, fingerprints=fingerprints)  # type: ignore[arg-type]
        store_journal = state.begin(run_id, plan, decision, fingerprints)  # type: ignore[arg-type]
        scheduler = Scheduler(plan, settings, sessions=sessions, journal=store_journal)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        trio.run(scheduler.run)
        t2 = time.perf_counter()
        report = build_report(plan, scheduler)  # type: ignore[arg-type]
        state.end(run_id, report.status)
        write_reports(plan, report, state_dir, Outputs())  # type: ignore[arg-type]
        t3 = time.perf_counter()
    return InProcess(t2 - t1, setup=t1 - t0, report=t3 - t2, ok=scheduler.state.succeeded)


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Series:
    label: str
    seconds: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    failures: int = 0

    oks: list[bool] = field(default_factory=list)

    def add(self, seconds: float, ok: bool = True, **extra: float) -> None:
        """Record one run; a failed run is shown but left out of the medians."""
        self.seconds.append(seconds)
        self.oks.append(ok)
        if not ok:
            self.failures += 1
        for name, value in extra.items():
            self.extra.setdefault(name, []).append(value)

    def good(self, values: list[float]) -> list[float]:
        return [v for v, ok in zip(values, self.oks, strict=True) if ok]

    @property
    def median(self) -> float:
        good = self.good(self.seconds)
        return statistics.median(good) if good else float("nan")

    def med(self, name: str) -> float:
        values = self.good(self.extra.get(name, []))
        return statistics.median(values) if values else float("nan")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def measure(work: Workload, reps: int, tmp: Path, *, full: bool) -> dict[str, Series]:
    """Every contender on ``work``, ``reps`` times, interleaved. ``full`` adds the
    in-process journal run and validate (part a)."""
    from planrun.plan.load import load_plan

    plan_path = write_plan(work, tmp)
    makefile = write_makefile(work, tmp)
    spec = write_spec(work, tmp)
    plan = load_plan(plan_path)
    j = str(work.jobs)
    py = sys.executable
    series: dict[str, Series] = {}

    def s(label: str) -> Series:
        return series.setdefault(label, Series(label))

    steps: list[tuple[str, Callable[[int], None]]] = []

    def cli(rep: int) -> None:
        state = tmp / f"{work.name}-cli-{rep}"
        argv = [py, "-m", "planrun", "apply", str(plan_path), "-j", j, "--progress", "none"]
        r = run_child([*argv, "--state-dir", str(state)], cwd=REPO, log=tmp / "cli.log")
        s("cli").add(r.seconds, r.returncode == 0, rss_mib=r.maxrss_kib / 1024)

    def inproc_journal(rep: int) -> None:
        r = scheduler_run(plan, tmp / f"{work.name}-ij-{rep}", work.jobs, journal=True)
        s("inproc_journal").add(r.run, r.ok, setup=r.setup, report=r.report)

    def inproc_null(rep: int) -> None:
        r = scheduler_run(plan, tmp / f"{work.name}-in-{rep}", work.jobs, journal=False)
        s("inproc_null").add(r.run, r.ok)

    def trio_inproc(rep: int) -> None:
        start = time.perf_counter()
        trio.run(bare_trio, work.needs, work.argv, work.jobs)
        s("trio_inproc").add(time.perf_counter() - start)

    def trio_child(rep: int) -> None:
        r = run_child([py, __file__, "--bare-trio", str(spec)], log=tmp / "trio.log")
        s("trio_child").add(r.seconds, r.returncode == 0, rss_mib=r.maxrss_kib / 1024)

    def make(rep: int) -> None:
        r = run_child(["make", "-s", "-r", "-R", f"-j{j}", "-f", str(makefile), "all"], cwd=tmp)
        s("make").add(r.seconds, r.returncode == 0)

    def validate(rep: int) -> None:
        r = run_child([py, "-m", "planrun", "validate", str(plan_path)], cwd=REPO)
        s("validate").add(r.seconds, r.returncode == 0)

    steps = [("cli", cli)]
    if full:
        steps.append(("inproc_journal", inproc_journal))
    # the child trio loop in both parts: the CLI pays an interpreter's start-up, and so
    # does the child loop; the in-process loop pays none
    steps += [
        ("inproc_null", inproc_null),
        ("trio_inproc", trio_inproc),
        ("trio_child", trio_child),
    ]
    steps.append(("make", make))
    if full:
        steps.append(("validate", validate))

    for rep in range(reps):
        for name, step in steps:
            before = load()
            step(rep)
            got = series[name].seconds[-1]
            print(
                f"  [{work.name} rep {rep + 1}] {name:<15} {got:8.3f} s  (load {before})",
                file=sys.stderr,
                flush=True,
            )
    return series


LABELS = {
    "cli": "planrun apply (CLI as shipped: journal file + SQLite group commits)",
    "inproc_journal": "planrun Scheduler in-process, StoreJournal as apply builds it",
    "inproc_null": "planrun Scheduler in-process, NullJournal",
    "trio_inproc": "bare trio loop, in-process",
    "trio_child": "bare trio loop, child python (start-up incl.)",
    "make": "GNU make",
    "validate": "planrun validate (start-up + plan load)",
}


def fmt(seconds: float) -> str:
    return f"{seconds:.2f} s"


def runs(series: Series) -> str:
    """Every run; a failed one is marked ✗ (and not in the median)."""
    return ", ".join(
        f"{x:.2f}{'' if ok else ' ✗'}" for x, ok in zip(series.seconds, series.oks, strict=True)
    )


def table_a(results: dict[str, dict[str, Series]], jobs: int, sizes: dict[str, int]) -> list[str]:
    shapes = list(results)

    def n(shape: str) -> int:
        return sizes[shape]

    head = "| | " + " | ".join(f"{s} (median; runs)" for s in shapes) + " |"
    rows = [head, "|---" * (len(shapes) + 1) + "|"]
    names = [n for n in LABELS if all(n in results[s] for s in shapes)]
    for name in names:
        label = LABELS[name].replace("GNU make", f"GNU make -j{jobs}")
        cells = [f"{fmt(results[s][name].median)} ({runs(results[s][name])})" for s in shapes]
        fails = sum(results[s][name].failures for s in shapes)
        rows.append(
            f"| {label}{' (✗ failed, excluded)' if fails else ''} | " + " | ".join(cells) + " |"
        )

    def ratio(a: str, b: str, shape: str) -> float:
        return results[shape][a].median / results[shape][b].median

    def add(label: str, values: list[str]) -> None:
        rows.append(f"| {label} | " + " | ".join(values) + " |")

    add(
        "**ratio CLI / bare trio child** (target ≤ 1.3)",
        [
            f"{ratio('cli', 'trio_child', s):.2f}x" if "trio_child" in results[s] else "–"
            for s in shapes
        ],
    )
    add(
        "ratio Scheduler+NullJournal / bare trio in-process",
        [f"{ratio('inproc_null', 'trio_inproc', s):.2f}x" for s in shapes],
    )
    add(
        "ratio Scheduler+StoreJournal / bare trio in-process",
        [
            f"{ratio('inproc_journal', 'trio_inproc', s):.2f}x"
            if "inproc_journal" in results[s]
            else "–"
            for s in shapes
        ],
    )
    add("**ratio CLI / make** (target ≤ 2.5)", [f"{ratio('cli', 'make', s):.2f}x" for s in shapes])
    add(
        "ratio Scheduler+NullJournal / make",
        [f"{ratio('inproc_null', 'make', s):.2f}x" for s in shapes],
    )
    add(
        "**peak RSS of planrun apply** (target < 80 MB)",
        [
            f"{results[s]['cli'].med('rss_mib'):.1f} MiB (max "
            f"{max(results[s]['cli'].good(results[s]['cli'].extra['rss_mib'])):.1f})"
            for s in shapes
        ],
    )
    if all("trio_child" in results[s] for s in shapes):
        add(
            "peak RSS of the bare trio child",
            [f"{results[s]['trio_child'].med('rss_mib'):.1f} MiB" for s in shapes],
        )
    if all("inproc_journal" in results[s] for s in shapes):

        def share(shape: str) -> str:
            extra = results[shape]["inproc_journal"].median - results[shape]["inproc_null"].median
            return f"{extra:.2f} s ({extra / n(shape) * 1000:.1f} ms/task)"

        add("journal's share: (StoreJournal − NullJournal) in-process", [share(s) for s in shapes])
        add(
            "in-process setup (open store, fingerprints, decide) + report",
            [
                f"{results[s]['inproc_journal'].med('setup'):.2f} s + "
                f"{results[s]['inproc_journal'].med('report'):.2f} s"
                for s in shapes
            ],
        )
        add(
            "CLI − in-process StoreJournal run (start-up, load, setup, report)",
            [
                f"{results[s]['cli'].median - results[s]['inproc_journal'].median:.2f} s"
                for s in shapes
            ],
        )
    add(
        "planrun overhead per task vs make: (CLI − make) / tasks",
        [
            f"{(results[s]['cli'].median - results[s]['make'].median) / n(s) * 1000:.1f} ms"
            for s in shapes
        ],
    )
    return rows


def table_b(series: dict[str, Series], ideal: float, jobs: int, tasks: int) -> list[str]:
    rows = ["| | median | runs | vs ideal |", "|---|---|---|---|"]
    for name in LABELS:
        if name not in series:
            continue
        label = LABELS[name].replace("GNU make", f"GNU make -j{jobs}")
        m = series[name].median
        fails = " (✗ failed, excluded)" if series[name].failures else ""
        rows.append(
            f"| {label}{fails} | {fmt(m)} | {runs(series[name])} | {(m / ideal - 1) * 100:+.1f}% |"
        )
    rows.append(f"| ideal ({tasks} × 0.05 s / {jobs}) | {fmt(ideal)} | | target ≤ +5% |")
    for peer in ("trio_child", "trio_inproc"):
        if "cli" in series and peer in series:
            ratio = series["cli"].median / series[peer].median
            rows.append(f"| **ratio CLI / {LABELS[peer]}** (target ≤ 1.03) | {ratio:.3f}x | | |")
    if "cli" in series:
        rows.append(f"| peak RSS of planrun apply | {series['cli'].med('rss_mib'):.1f} MiB | | |")
    return rows


def machine() -> list[str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return [
        f"- machine: nproc {os.cpu_count()}, CPU {model}, Python {sys.version.split()[0]}, "
        f"trio {trio.__version__}",
        f"- planrun from {source()}",
        f"- load average at start: {load()}",
    ]


def source() -> str:
    """Which planrun is measured: its folder, the commit, and whether planrun/ is edited."""
    import planrun

    where = Path(planrun.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return f"{where} (commit {head}{', working tree edited' if dirty else ''})"
    except (OSError, subprocess.CalledProcessError):
        return f"{where} (not a git checkout)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["a", "b", "all"], default="all")
    parser.add_argument("--shape", choices=["independent", "layered", "both"], default="both")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=TASKS, help="independent shapes only")
    parser.add_argument("--dir", type=Path, default=None, help="where temp files go")
    parser.add_argument("--bare-trio", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_trio:
        bare_trio_child_main(args.bare_trio)
        return

    # As installed (pip compiles every module to bytecode): an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 would otherwise compile planrun's sources at every start,
    # ~0.2 s the bare trio loop (trio comes compiled from its wheel) never pays.
    compileall.compile_dir(REPO / "planrun", quiet=1)
    out = [*machine()]
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="planrun-apply-bench-") as name:
        tmp = Path(name)
        if args.part in ("a", "all"):
            shapes = ["independent", "layered"] if args.shape == "both" else [args.shape]
            results = {}
            sizes = {}
            for shape in shapes:
                work = (
                    independent(("true",), 2, args.tasks)
                    if shape == "independent"
                    else layered(("true",), 2)
                )
                results[shape] = measure(work, args.reps, tmp, full=True)
                sizes[shape] = len(work.needs)
            title = f"(a) {max(sizes.values()):,} tasks of `true`, J=2, {args.reps} runs each"
            out += ["", title, ""]
            out += table_a(results, 2, sizes)
        if args.part in ("b", "all"):
            work = independent(("sleep", "0.05"), 8, args.tasks, name="sleep")
            series = measure(work, args.reps, tmp, full=False)
            assert work.ideal is not None
            title = f"(b) {len(work.needs):,} tasks of `sleep 0.05`, J=8, {args.reps} runs each"
            out += ["", title, ""]
            out += table_b(series, work.ideal, 8, len(work.needs))
    out.append(f"- load average at end: {load()}")
    print("\n".join(out))


if __name__ == "__main__":
    main()

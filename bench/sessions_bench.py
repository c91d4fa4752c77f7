"""Benchmark of the session backends under an output flood: what watching output costs.

N concurrent sessions (default 8) of the fake agent (tests/fake_agent.py) each print M MB
(default 10) of varied text lines and exit, through the pty backend, the tmux backend and, for
reference, the subprocess backend. For each: wall time, planrun's own CPU seconds (this
process, ``getrusage(RUSAGE_SELF)``) per MB, the children's CPU (the agents, reaped by planrun;
for tmux the panes are the tmux server's children, so the server's CPU is shown instead), and
planrun's peak RSS growth (``VmHWM`` after resetting it through ``/proc/self/clear_refs``).
Beside them: ``cat`` of the same data to /dev/null (the floor for moving the bytes at all).
Every log is checked byte for byte against the data (sha256; the tmux pane's terminal turns
``\\n`` into ``\\r\\n``). Prints figures; asserts nothing.

    python bench/sessions_bench.py [--sessions 8] [--mb 10]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from planrun.sessions.base import Session, SessionResult, SessionSpec
from planrun.sessions.pty import PtySession
from planrun.sessions.subprocess import SubprocessSession
from planrun.sessions.tmux import TmuxSession

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "tests" / "fake_agent.py"


def _flood_data() -> Callable[[int], bytes]:
    spec = importlib.util.spec_from_file_location("fake_agent", AGENT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flood: Callable[[int], bytes] = module.flood_data
    return flood


@dataclass
class Figures:
    name: str
    wall: float
    self_cpu: float
    child_cpu: float
    other_cpu: float  # the tmux server, when there is one
    rss_growth: int
    intact: int
    sessions: int


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _flood_part(log: bytes, newline: bytes) -> bytes:
    """The flood inside a fake agent's log (between its prompt line and ``bye``)."""
    marker = b"chars)" + newline
    return log[log.index(marker) + len(marker) : len(log) - len(b"bye" + newline)]


async def _run_all(backend: Session, specs: list[SessionSpec]) -> list[SessionResult]:
    results: list[SessionResult] = []

    async def one(spec: SessionSpec) -> None:
        results.append(await backend.run(spec))

    async with trio.open_nursery() as nursery:
        for spec in specs:
            nursery.start_soon(one, spec)
    return results


def measure(
    name: str, backend: Session, folder: Path, sessions: int, mb: int, expected: bytes
) -> Figures:
    """Run ``sessions`` floods of ``mb`` MB concurrently through ``backend``."""
    newline = b"\r\n" if isinstance(backend, TmuxSession) else b"\n"
    digest = hashlib.sha256(expected.replace(b"\n", newline)).digest()
    specs = [
        SessionSpec(
            name=f"bench.{name}-{i}.a1",
            argv=(sys.executable, str(AGENT), "--yolo", f"flood {mb}"),
            cwd=folder,
            env=dict(os.environ),
            log_path=folder / name / f"{i}.log",
            timeout=600,
        )
        for i in range(sessions)
    ]
    server = _tmux_keepalive(backend)
    server_before = _proc_cpu(server) if server else 0.0
    Path("/proc/self/clear_refs").write_text("5")
    rss_before = _kib("VmRSS")
    self_before, children_before = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    results = trio.run(_run_all, backend, specs)
    wall = time.perf_counter() - start
    self_cpu = _cpu(resource.RUSAGE_SELF) - self_before
    child_cpu = _cpu(resource.RUSAGE_CHILDREN) - children_before
    rss_growth = (_kib("VmHWM") - rss_before) * 1024
    other = _proc_cpu(server) - server_before if server else 0.0
    if isinstance(backend, TmuxSession) and backend.socket:
        _tmux(backend.socket, "kill-server")
        socket_dir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (socket_dir / backend.socket).unlink(missing_ok=True)
    intact = sum(
        1
        for spec, result in zip(specs, results, strict=False)
        if result.exit_code == 0
        and hashlib.sha256(_flood_part(spec.log_path.read_bytes(), newline)).digest() == digest
    )
    return Figures(name, wall, self_cpu, child_cpu, other, rss_growth, intact, sessions)


def _tmux(socket: str, *args: str) -> str:
    argv = ["tmux", "-f", "/dev/null", "-L", socket, *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


def _tmux_keepalive(backend: Session) -> int:
    """Start the private tmux server with an idle session (to read its CPU); its pid or 0."""
    if not isinstance(backend, TmuxSession) or not backend.socket:
        return 0
    _tmux(backend.socket, "new-session", "-d", "-s", "keepalive", "sleep 3600")
    return int(_tmux(backend.socket, "display-message", "-p", "-t", "=keepalive:", "#{pid}"))


def measure_cat(data_file: Path, sessions: int) -> Figures:
    """``cat`` the data to /dev/null ``sessions`` times concurrently."""
    before = _cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        cats = [subprocess.Popen(["cat", str(data_file)], stdout=sink) for _ in range(sessions)]
        for cat in cats:
            cat.wait()
    wall = time.perf_counter() - start
    child_cpu = _cpu(resource.RUSAGE_CHILDREN) - before
    return Figures("cat > /dev/null", wall, 0.0, child_cpu, 0.0, 0, sessions, sessions)


def report(rows: list[Figures], mb: int) -> None:
    head = (
        f"{'backend':<16} {'wall s':>7} {'MB/s':>7} {'planrun CPU s':>13} {'CPU s/MB':>9} "
        f"{'children CPU s':>14} {'tmux CPU s':>10} {'RSS +MB':>8} {'logs intact':>11}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        total = row.sessions * mb
        print(
            f"{row.name:<16} {row.wall:7.2f} {total / row.wall:7.1f} {row.self_cpu:13.2f} "
            f"{row.self_cpu / total:9.4f} {row.child_cpu:14.2f} {row.other_cpu:10.2f} "
            f"{row.rss_growth / 1e6:8.1f} {row.intact:>5}/{row.sessions}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--mb", type=int, default=10)
    args = parser.parse_args()
    expected = _flood_data()(args.mb)
    print(f"{args.sessions} concurrent sessions x {args.mb} MB, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="planrun-bench-") as tmp:
        folder = Path(tmp)
        data_file = folder / "data"
        data_file.write_bytes(expected)
        rows = [measure_cat(data_file, args.sessions)]
        backends: list[tuple[str, Session]] = [
            ("subprocess", SubprocessSession()),
            ("pty", PtySession()),
            ("tmux", TmuxSession(f"planrun-bench-{uuid.uuid4().hex[:8]}")),
        ]
        for name, backend in backends:
            rows.append(measure(name, backend, folder, args.sessions, args.mb, expected))
    report(rows, args.mb)


if __name__ == "__main__":
    main()

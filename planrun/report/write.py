"""Writing reports: JSON (atomic), JUnit XML and a Markdown summary (SPEC §7).

A file that cannot be written (a full disk, a folder without write permission) raises
:class:`ReportWriteError`, which names the file and the reason; what was there before is
left as it was and no temporary file stays behind.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from pathlib import Path

from planrun.atomic import fsync_dir
from planrun.core.redact import visible
from planrun.errors import ReportWriteError
from planrun.report.model import RunReport, TaskReport


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that readers see the old file or the new one, never a torn one.

    A temporary file in the same folder is written, fsynced and renamed over ``path``, then
    the folder is fsynced. On failure the temporary file is removed, ``path`` is untouched
    and :class:`ReportWriteError` is raised.
    """
    data = text.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
    except OSError as error:
        raise ReportWriteError(path, error) from error


def append_text(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing; for ``--summary``, which appends to
    ``$GITHUB_STEP_SUMMARY``), all of it or nothing: a failed write is cut off again, so the
    file keeps exactly what it had, and :class:`ReportWriteError` is raised."""
    data = text.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, data)
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    except OSError as error:
        raise ReportWriteError(path, error) from error


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # one write for a regular file, unless the disk is full
        view = view[os.write(fd, view) :]


def report_json(report: RunReport) -> str:
    return report.model_dump_json(indent=2) + "\n"


def junit_xml(report: RunReport) -> str:
    """One testsuite for the run, one testcase per work task (JUnit's common dialect)."""
    from xml.etree import ElementTree as ET  # only for --junit (6 ms of start-up)

    work = [t for t in report.tasks if t.kind == "work"]
    failures = sum(1 for t in work if t.status == "failed")
    skipped = sum(1 for t in work if t.status in ("skipped", "cancelled"))
    suites = ET.Element("testsuites", name=f"planrun {report.plan.name}")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=report.plan.name,
        tests=str(len(work)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{report.duration_s or 0:.3f}",
        timestamp=report.started_at.removesuffix("Z")[:19],
    )
    for task in work:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"planrun.{report.plan.name}",
            name=task.key,
            time=f"{task.duration_s or 0:.3f}",
        )
        if task.status == "failed":
            failure = ET.SubElement(
                case, "failure", message=_clean(task.reason or "failed"), type=_last_outcome(task)
            )
            failure.text = _clean("\n".join(_tail(task)))
        elif task.status in ("skipped", "cancelled"):
            ET.SubElement(case, "skipped", message=_clean(f"{task.status}: {task.reason}"))
        out = "\n".join(_tail(task))
        if out:
            ET.SubElement(case, "system-out").text = _clean(out)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _tail(task: TaskReport) -> list[str]:
    return task.attempts[-1].tail if task.attempts else []


def _last_outcome(task: TaskReport) -> str:
    return task.attempts[-1].outcome if task.attempts else "failed"


def _clean(text: str) -> str:
    """XML 1.0 cannot hold most control characters; replace them."""
    return "".join(c if c in "\t\n\r" or ord(c) >= 32 else "\ufffd" for c in text)


_ICON = {"done": "✅", "failed": "❌", "skipped": "⏭️", "cancelled": "⛔"}


def summary_markdown(report: RunReport, mermaid: str | None = None) -> str:
    """A step summary: counts, a task table, what failed (reason, last lines, the command
    to see more), what waits for review, and the graph (for $GITHUB_STEP_SUMMARY)."""
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n)
    lines = [
        f"## planrun: {report.plan.name} — {report.status}",
        "",
        f"Run `{report.run_id}`, {report.duration_s or 0:.1f} s: {counts or 'no tasks'}.",
        "",
        "| task | status | attempts | time | reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    for task in report.tasks:
        if task.kind != "work":
            continue
        icon = _ICON.get(task.status, "")
        reason = _cell(task.reason)
        time_s = f"{task.duration_s:.1f} s" if task.duration_s is not None else ""
        lines.append(
            f"| `{_cell(task.key)}` | {icon} {task.status} | {len(task.attempts)} "
            f"| {time_s} | {reason} |"
        )
    lines += _failures(report)
    if mermaid:
        lines += ["", "```mermaid", mermaid.rstrip(), "```"]
    return "\n".join(lines) + "\n\n"


def _failures(report: RunReport) -> list[str]:
    """Each failed task: its reason, its last lines of output in a code block, and the
    command that shows the whole log; each task in review: the command that approves it."""
    failed = [t for t in report.tasks if t.kind == "work" and t.status == "failed"]
    review = [t for t in report.tasks if t.kind == "work" and t.status == "in_review"]
    lines: list[str] = []
    if failed:
        lines += ["", "### Failed"]
    for task in failed:
        lines += ["", f"**{_code(task.key)}**: {_code(task.reason or 'failed')}"]
        tail = [visible(line) for line in _tail(task)]
        if tail:
            fence = "`" * max(3, _longest_backticks("\n".join(tail)) + 1)
            lines += ["", f"{fence}text", *tail, fence]
        lines += ["", f"More: {_code(_command(report, 'logs', task.key))}"]
    if review:
        lines += ["", "### Waiting for review", ""]
        lines += [f"- {_code(t.key)}: {_code(_command(report, 'approve', t.key))}" for t in review]
    return lines


def _command(report: RunReport, verb: str, key: str) -> str:
    return shlex.join(["planrun", verb, report.plan.path, key])


def _code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    text = visible(text.replace("\n", " "))[:500]
    ticks = "`" * (_longest_backticks(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in re.findall("`+", text)), default=0)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:200]

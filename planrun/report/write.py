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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from planrun.atomic import fsync_dir
from planrun.core.redact import visible
from planrun.errors import ReportWriteError
from planrun.report.figures import cost_text, tokens_text, usage_text
from planrun.report.model import RunReport, TaskReport, Usage

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element


def write_atomic(path: Path, text: str | Iterable[str]) -> None:
    """Write ``text`` (or its pieces, in order, as they come) so that readers see the old
    file or the new one, never a torn one.

    A temporary file in the same folder is written, fsynced and renamed over ``path``, then
    the folder is fsynced. On failure the temporary file is removed, ``path`` is untouched
    and :class:`ReportWriteError` is raised.
    """
    pieces = (text,) if isinstance(text, str) else text
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            try:
                for data in _blocks(pieces):
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


def _blocks(pieces: Iterable[str], size: int = 64 * 1024) -> Iterator[bytes]:
    """``pieces`` encoded in blocks of about ``size`` bytes: few writes, and never the
    whole text in memory at once."""
    block: list[str] = []
    held = 0
    for piece in pieces:
        block.append(piece)
        held += len(piece)
        if held >= size:
            yield "".join(block).encode("utf-8")
            block, held = [], 0
    if block:
        yield "".join(block).encode("utf-8")


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


def junit_xml(report: RunReport) -> str:
    """One testsuite for the run, one testcase per work task, in Surefire's dialect.

    A testcase is named ``KEY: title`` (just ``KEY`` when the title is the key), so that a
    CI's test view says what each task was; its properties name the key, the planrun
    status and the number of attempts. Per status: done passes, and each failed attempt
    before the last is a ``<flakyFailure>`` (message, type = the outcome, the attempt's
    last lines); failed is a ``<failure>`` for the last attempt and a ``<rerunFailure>``
    for each earlier one; skipped is ``<skipped>``; in_review and needs_input are
    ``<skipped>`` too (they wait for a person, nothing went wrong). Cancelled is an
    ``<error type="cancelled">``, not a skip: the run was stopped before the task could
    finish, which is what JUnit's errors count (a test that could not complete), and
    ``planrun.status`` says which it was; so is a task an interrupted run never finished
    (pending, ready, running, retrying). The suite's ``timestamp`` keeps the report's
    zone (``Z``) and ``hostname`` is the machine the run ran on.
    """
    from xml.etree import ElementTree as ET  # only for --junit (6 ms of start-up)

    work = [t for t in report.tasks if t.kind == "work"]
    verdicts = [_verdict(t) for t in work]
    totals = {
        "tests": str(len(work)),
        "failures": str(verdicts.count("failure")),
        "errors": str(verdicts.count("error")),
        "skipped": str(verdicts.count("skipped")),
        "time": f"{report.duration_s or 0:.3f}",
    }
    suites = ET.Element("testsuites", {"name": f"planrun {report.plan.name}", **totals})
    suite = ET.SubElement(
        suites,
        "testsuite",
        {
            "name": report.plan.name,
            **totals,
            "timestamp": report.started_at,
            "hostname": report.host or "localhost",
        },
    )
    _properties(suite, _run_properties(report))
    for task, verdict in zip(work, verdicts, strict=True):
        _testcase(suite, report.plan.name, task, verdict)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _run_properties(report: RunReport) -> dict[str, str]:
    return {
        "planrun.run_id": report.run_id,
        "planrun.version": report.planrun_version,
        "planrun.plan": report.plan.path,
        "planrun.status": report.status,
    }


def _verdict(task: TaskReport) -> str:
    """What JUnit calls the task's result: passed, failure, skipped or error."""
    if task.status == "done":
        return "passed"
    if task.status == "failed":
        return "failure"
    if task.status in ("skipped", "in_review", "needs_input"):
        return "skipped"
    return "error"  # cancelled, or never finished (an interrupted or running run)


def _testcase(suite: Element, suite_name: str, task: TaskReport, verdict: str) -> None:
    from xml.etree import ElementTree as ET

    title = task.title.strip()
    name = task.key if title in ("", task.key) else f"{task.key}: {title}"
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"planrun.{suite_name}",
        name=_clean(" ".join(name.split())),
        time=f"{task.duration_s or 0:.3f}",
    )
    _properties(
        case,
        {
            "planrun.key": task.key,
            "planrun.status": task.status,
            "planrun.attempts": str(len(task.attempts)),
        },
    )
    message = _clean(_status_message(task))
    if verdict == "failure":
        failure = ET.SubElement(
            case, "failure", message=_clean(task.reason or "failed"), type=_last_outcome(task)
        )
        failure.text = _clean("\n".join(_tail(task)))
    elif verdict == "skipped":
        ET.SubElement(case, "skipped", message=message)
    elif verdict == "error":
        ET.SubElement(case, "error", message=message, type=task.status)
    _earlier_failures(case, task, "rerunFailure" if verdict == "failure" else "flakyFailure")
    out = "\n".join(_tail(task))
    if out:
        ET.SubElement(case, "system-out").text = _clean(out)


def _status_message(task: TaskReport) -> str:
    """``cancelled: the run stopped`` (the reason, led by the status once)."""
    if not task.reason or task.reason.startswith(task.status):
        return task.reason or task.status
    return f"{task.status}: {task.reason}"


def _earlier_failures(case: Element, task: TaskReport, tag: str) -> None:
    """Each attempt before the last that did not succeed, as Surefire writes a re-run."""
    from xml.etree import ElementTree as ET

    for attempt in task.attempts[:-1]:
        if attempt.outcome == "succeeded":
            continue
        text = f"attempt {attempt.number} {attempt.outcome}"
        message = f"{text}: {attempt.reason}" if attempt.reason else text
        failed = ET.SubElement(case, tag, message=_clean(message), type=attempt.outcome)
        if attempt.tail:
            ET.SubElement(failed, "system-out").text = _clean("\n".join(attempt.tail))


def _properties(parent: Element, values: dict[str, str]) -> None:
    from xml.etree import ElementTree as ET

    properties = ET.SubElement(parent, "properties")
    for name, value in values.items():
        ET.SubElement(properties, "property", name=name, value=_clean(value))


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
    used = _usage(report.usage)
    lines = [
        f"## planrun: {report.plan.name} — {report.status}",
        "",
        f"Run `{report.run_id}`, {report.duration_s or 0:.1f} s: {counts or 'no tasks'}"
        + (f"; {used}." if used else "."),
        "",
        "| task | status | attempts | time | tokens | cost | reason |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_row(task) for task in report.tasks if task.kind == "work"]
    lines += _failures(report)
    lines += _changesets(report)
    if mermaid:
        lines += ["", "```mermaid", mermaid.rstrip(), "```"]
    return "\n".join(lines) + "\n\n"


def _changesets(report: RunReport) -> list[str]:
    """The run's changesets: repository, state and PR (docs/batch-changes.md)."""
    if not report.changesets:
        return []
    lines = [
        "",
        "### Changesets",
        "",
        "| repository | state | pull request |",
        "| --- | --- | --- |",
    ]
    for change in report.changesets:
        where = change.url or change.detail
        lines.append(f"| `{_cell(change.repo)}` | {change.state} | {_cell(where)} |")
    return lines


def _row(task: TaskReport) -> str:
    icon = _ICON.get(task.status, "")
    time_s = f"{task.duration_s:.1f} s" if task.duration_s is not None else ""
    usage = task.usage
    tokens = tokens_text((usage.input_tokens or 0) + (usage.output_tokens or 0)) if usage else "-"
    cost = cost_text(usage.cost_usd) if usage else "-"
    return (
        f"| `{_cell(task.key)}` | {icon} {task.status} | {len(task.attempts)} "
        f"| {time_s} | {tokens} | {cost} | {_cell(task.reason)} |"
    )


def _usage(usage: Usage | None) -> str:
    """The run's tokens and cost as a phrase (empty when no agent reported any)."""
    if usage is None:
        return ""
    return usage_text(usage.input_tokens, usage.output_tokens, usage.cost_usd)


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

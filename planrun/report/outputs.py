"""Writing a run's reports: the JSON report in the state folder, and the ``--report``,
``--junit`` and ``--summary`` files asked for. One that cannot be written does not stop
the others."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from planrun.core.frozen import frozen
from planrun.errors import ReportWriteError
from planrun.plan.resolved import CompiledPlan
from planrun.report.model import RunReport, report_lines
from planrun.report.write import append_text, junit_xml, summary_markdown, write_atomic


@frozen
class Outputs:
    """The report files asked for on the command line (None: not asked)."""

    report: Path | None = None
    junit: Path | None = None
    summary: Path | None = None


@frozen
class Written:
    """What :func:`write_reports` did: where the JSON report is (None: nowhere), and the
    files it could not write."""

    report: Path | None
    errors: tuple[ReportWriteError, ...] = ()


def write_reports(
    plan: CompiledPlan,
    report: RunReport,
    state_dir: Path,
    outputs: Outputs,
    *,
    default: bool = True,
) -> Written:
    """Write every report asked for. A file that cannot be written (a full disk, say) does
    not stop the others: its error is returned, and the JSON report is then nowhere."""
    path = state_dir / "runs" / report.run_id / "report.json"
    writes: list[tuple[Path, Callable[[Path], None]]] = []
    if default:
        writes.append((path, lambda target: write_atomic(target, report_lines(report))))
    if outputs.report:
        writes.append((outputs.report, lambda target: write_atomic(target, report_lines(report))))
    if outputs.junit:
        writes.append((outputs.junit, lambda target: write_atomic(target, junit_xml(report))))
    if outputs.summary:
        statuses = {t.key: t.status for t in report.tasks}
        markdown = summary_markdown(report, plan.graph.to_mermaid(statuses))
        writes.append((outputs.summary, lambda target: append_text(target, markdown)))
    errors: list[ReportWriteError] = []
    for target, write in writes:
        try:
            write(target)
        except ReportWriteError as error:
            errors.append(error)
    where = outputs.report or (path if default else None)
    written = where is not None and all(error.path != where for error in errors)
    return Written(where if written else None, tuple(errors))

"""The JSON run report (SPEC §7); ``schemas/report.schema.json`` is generated from it.

Plain dataclasses, not pydantic models: a run builds and updates one TaskReport per task
and one AttemptReport per attempt, and neither that nor apply's start-up should pay for a
validation library. :func:`report_json_schema` (``planrun schema report``) has pydantic
generate the schema from these classes, with each field's description from its metadata.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

REPORT_FORMAT: Literal[1] = 1
_FORBID = {"extra": "forbid"}  # read by pydantic when it generates the schema


def _doc(text: str) -> dict[str, str]:
    """A field's metadata: its description in the schema."""
    return {"description": text}


@dataclass(slots=True, kw_only=True)
class Usage:
    __pydantic_config__ = _FORBID

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    @property
    def tokens(self) -> int:
        return (self.input_tokens or 0) + (self.output_tokens or 0)


@dataclass(slots=True, kw_only=True)
class AttemptReport:
    __pydantic_config__ = _FORBID

    number: int = field(metadata=_doc("1-based, counted across runs of the same plan"))
    started_at: str
    ended_at: str | None = None
    duration_s: float | None = None
    outcome: str = field(metadata=_doc("succeeded, failed, timed_out, stalled, ..."))
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    log_path: str | None = field(
        default=None,
        metadata=_doc("the attempt's log; no file there means the attempt printed nothing"),
    )
    tail: list[str] = field(default_factory=list, metadata=_doc("last lines of output, redacted"))
    usage: Usage | None = None
    turns: int = 1


@dataclass(slots=True, kw_only=True)
class TaskReport:
    __pydantic_config__ = _FORBID

    key: str
    title: str
    kind: Literal["work", "group"] = "work"
    status: str
    reason: str = ""
    cause: str | None = field(default=None, metadata=_doc("the failed task a skip traces back to"))
    priority: int = 0
    needs: list[str] = field(default_factory=list)
    parent: str | None = None
    provider: str | None = None
    project: str | None = None
    fingerprint: str | None = None
    branch: str | None = None
    base_commit: str | None = None
    landed_commit: str | None = None
    diffstat: str | None = None
    kept_branches: list[str] = field(
        default_factory=list,
        metadata=_doc(
            "branches holding earlier work of the task that this run set aside "
            "(its definition changed, or its old commits conflicted with the new base)"
        ),
    )
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    attempts: list[AttemptReport] = field(default_factory=list)
    usage: Usage | None = None


@dataclass(slots=True, kw_only=True)
class PlanInfo:
    __pydantic_config__ = _FORBID

    name: str
    path: str
    sha256: str


@dataclass(slots=True, kw_only=True)
class HookFailure:
    __pydantic_config__ = _FORBID

    moment: str = field(metadata=_doc("on_run_start, on_task_success, ..."))
    task: str | None = field(
        default=None, metadata=_doc("the task it ran for; null for a run hook")
    )
    command: str
    reason: str
    tail: list[str] = field(default_factory=list, metadata=_doc("last lines of output, redacted"))


@dataclass(slots=True, kw_only=True)
class ChangesetReport:
    __pydantic_config__ = _FORBID

    project: str = field(metadata=_doc("the project; svc[owner/name] for a repositories one"))
    repo: str = field(metadata=_doc("the GitHub repository, owner/name"))
    state: str = field(
        metadata=_doc(
            "as this run left it: opened, updated, unchanged, closed, merged, exists, no_diff,"
            " unpublished, failed, or waiting (recorded, not delivered yet)"
        )
    )
    number: int | None = field(default=None, metadata=_doc("the pull request, once there is one"))
    url: str = ""
    detail: str = field(default="", metadata=_doc("why it failed, where unpublished work is"))


@dataclass(slots=True, kw_only=True)
class RunReport:
    __pydantic_config__ = _FORBID

    format: Literal[1] = REPORT_FORMAT
    planrun_version: str
    plan: PlanInfo
    run_id: str
    host: str | None = field(default=None, metadata=_doc("the machine that ran it (its host name)"))
    started_at: str
    ended_at: str | None = None
    duration_s: float | None = None
    status: Literal["succeeded", "failed", "interrupted", "running"]
    exit_code: int | None = field(
        default=None,
        metadata=_doc(
            "what apply exited with: 0 every task done; 1 a task failed, was skipped"
            " or cancelled; 4 nothing failed but tasks wait for a person (in review, needs"
            " input; status is then failed); 130 interrupted"
        ),
    )
    counts: dict[str, int]
    usage: Usage | None = None
    tasks: list[TaskReport]
    hook_failures: list[HookFailure] = field(
        default_factory=list,
        metadata=_doc(
            "hooks that failed, in order (a failing on_task_start also fails its attempt)"
        ),
    )
    changesets: list[ChangesetReport] = field(
        default_factory=list,
        metadata=_doc(
            "the changesets this run proposed or delivered (docs/batch-changes.md), one per"
            " project, in the order first recorded"
        ),
    )


def total_usage(usages: Iterable[Usage | None]) -> Usage | None:
    """The sum of the usages known (cost only if some are priced); None if none is known."""
    known = [u for u in usages if u is not None]
    if not known:
        return None
    costs = [u.cost_usd for u in known if u.cost_usd is not None]
    return Usage(
        input_tokens=sum(u.input_tokens or 0 for u in known),
        output_tokens=sum(u.output_tokens or 0 for u in known),
        cost_usd=round(sum(costs), 6) if costs else None,
    )


def usage_of(data: dict[str, Any]) -> Usage:
    """A Usage from recorded data (unknown keys ignored, wrong types refused)."""
    values = {k: data.get(k) for k in ("input_tokens", "output_tokens", "cost_usd")}
    for name, value in values.items():
        wanted = float if name == "cost_usd" else int
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, wanted))):
            raise ValueError(f"usage {name}: {value!r} is not a number")
    cost = values["cost_usd"]
    return Usage(
        input_tokens=values["input_tokens"],
        output_tokens=values["output_tokens"],
        cost_usd=None if cost is None else float(cost),
    )


def report_json(report: RunReport) -> str:
    """The report as its file holds it (:func:`report_lines`)."""
    return "".join(report_lines(report))


def report_lines(report: RunReport) -> Iterator[str]:
    """The report's JSON text, line by line: fields in declared order, nulls kept, one line
    per top-level field and one per task. Readable, greppable by task, written by the C
    encoder (indenting everything took 50 ms for 1,000 tasks), and made one task at a
    time: writing the report of 5,000 tasks no longer holds all of it in memory twice."""
    names = [f.name for f in dataclasses.fields(report)]
    yield "{\n"
    for n, name in enumerate(names):
        end = ",\n" if n < len(names) - 1 else "\n"
        value = getattr(report, name)
        if name == "tasks" and value:
            yield '  "tasks": [\n'
            for i, task in enumerate(value):
                yield f"    {_json(_plain(task))}{',' if i < len(value) - 1 else ''}\n"
            yield f"  ]{end}"
        else:
            yield f"  {_json(name)}: {_json(_plain(value))}{end}"
    yield "}\n"


_json = json.JSONEncoder(ensure_ascii=False).encode


#: What JSON takes as it is: no call per field for these (a report of 1,000 tasks has
#: 36,000 values, nearly all of them scalars).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """Report records as JSON data (``dataclasses.asdict`` without its deep copies)."""
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        out = {}
        for name in fields:
            item = getattr(value, name)
            out[name] = item if type(item) in _SCALARS else _plain(item)
        return out
    if isinstance(value, list):
        return [item if type(item) in _SCALARS else _plain(item) for item in value]
    if isinstance(value, dict):
        return {k: item if type(item) in _SCALARS else _plain(item) for k, item in value.items()}
    return value


def report_json_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    schema = TypeAdapter(RunReport).json_schema()
    _describe(schema, RunReport)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://planrun.dev/schemas/report.schema.json"
    schema["title"] = "planrun run report (format 1)"
    return schema


def _describe(schema: dict[str, Any], root: type) -> None:
    """Put each field's metadata description into the schema, as pydantic's Field does."""
    classes = [root, Usage, AttemptReport, TaskReport, PlanInfo, HookFailure]
    for cls in classes:
        node = schema if cls is root else schema.get("$defs", {}).get(cls.__name__)
        if node is None:
            continue
        for f in dataclasses.fields(cls):
            text = f.metadata.get("description")
            if text:
                node["properties"][f.name]["description"] = text

"""The JSON run report (SPEC §7); ``schemas/report.schema.json`` is generated from it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_FORMAT: Literal[1] = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usage(_Model):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    @property
    def tokens(self) -> int:
        return (self.input_tokens or 0) + (self.output_tokens or 0)


class AttemptReport(_Model):
    number: int = Field(description="1-based, counted across runs of the same plan")
    started_at: str
    ended_at: str | None = None
    duration_s: float | None = None
    outcome: str = Field(description="succeeded, failed, timed_out, stalled, ...")
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    log_path: str | None = Field(
        None, description="the attempt's log; no file there means the attempt printed nothing"
    )
    tail: list[str] = Field(default_factory=list, description="last lines of output, redacted")
    usage: Usage | None = None
    turns: int = 1


class TaskReport(_Model):
    key: str
    title: str
    kind: Literal["work", "group"] = "work"
    status: str
    reason: str = ""
    cause: str | None = Field(None, description="the failed task a skip traces back to")
    priority: int = 0
    needs: list[str] = Field(default_factory=list)
    parent: str | None = None
    provider: str | None = None
    project: str | None = None
    fingerprint: str | None = None
    branch: str | None = None
    base_commit: str | None = None
    landed_commit: str | None = None
    diffstat: str | None = None
    kept_branches: list[str] = Field(
        default_factory=list,
        description="branches holding earlier work of the task that this run set aside "
        "(its definition changed, or its old commits conflicted with the new base)",
    )
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    attempts: list[AttemptReport] = Field(default_factory=list)
    usage: Usage | None = None


class PlanInfo(_Model):
    name: str
    path: str
    sha256: str


class HookFailure(_Model):
    moment: str = Field(description="on_run_start, on_task_success, ...")
    task: str | None = Field(None, description="the task it ran for; null for a run hook")
    command: str
    reason: str
    tail: list[str] = Field(default_factory=list, description="last lines of output, redacted")


class RunReport(_Model):
    format: Literal[1] = REPORT_FORMAT
    planrun_version: str
    plan: PlanInfo
    run_id: str
    host: str | None = Field(None, description="the machine that ran it (its host name)")
    started_at: str
    ended_at: str | None = None
    duration_s: float | None = None
    status: Literal["succeeded", "failed", "interrupted", "running"]
    exit_code: int | None = Field(
        None,
        description="what apply exited with: 0 every task done; 1 a task failed, was skipped"
        " or cancelled; 4 nothing failed but tasks wait for a person (in review, needs"
        " input; status is then failed); 130 interrupted",
    )
    counts: dict[str, int]
    usage: Usage | None = None
    tasks: list[TaskReport]
    hook_failures: list[HookFailure] = Field(
        default_factory=list,
        description="hooks that failed, in order (a failing on_task_start also fails its attempt)",
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


def report_json_schema() -> dict[str, Any]:
    schema = RunReport.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://planrun.dev/schemas/report.schema.json"
    schema["title"] = "planrun run report (format 1)"
    return schema

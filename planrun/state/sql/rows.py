"""Rows in and out of the SQL stores: how values are encoded for the tables, and how a
row (read by column name) becomes one of the dataclasses of :mod:`planrun.state.store`.

JSON values are stored as text (``*_json`` columns), encoded once here: exactly what was
written is read back, and a NUL in an agent's output (``\\u0000``, which PostgreSQL's
``jsonb`` refuses) is just six characters.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from planrun.core.outcomes import Outcome, Status
from planrun.errors import InternalError
from planrun.state.records import TaskOutcome
from planrun.state.store import (
    AttemptBrief,
    AttemptRow,
    EventRow,
    JSONObject,
    PastTask,
    RunRow,
    TaskBrief,
    TaskRow,
    TaskStateRow,
    utc_now,
)

_T = TypeVar("_T")


class Row(Protocol):
    """A row read by column name (``sqlite3.Row``, or psycopg's ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


#: Task statuses that say something about the task's work, mirrored into task_state.
MIRRORED = frozenset(
    {
        Status.RUNNING,
        Status.RETRYING,
        Status.NEEDS_INPUT,
        Status.IN_REVIEW,
        Status.FAILED,
        Status.CANCELLED,
    }
)

#: One encoder for every stored JSON value (``json.dumps`` with options builds one per call).
dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def require(condition: bool, message: str) -> None:
    """Misuse of the store is a bug: InternalError (the transaction then writes nothing)."""
    if not condition:
        raise InternalError(message)


def task_params(
    run_id: str, outcome: TaskOutcome, status: Status, fingerprint: str | None
) -> dict[str, Any]:
    """The parameters of an upsert of a run's task row (``attempts`` None: kept)."""
    return {
        "run_id": run_id,
        "key": outcome.key,
        "status": status.value,
        "reason": outcome.reason,
        "fingerprint": fingerprint,
        "attempts": None,
        "branch": outcome.branch,
        "base_commit": outcome.base_commit,
        "landed_commit": outcome.landed_commit,
        "diffstat": outcome.diffstat,
        "data": None if outcome.data is None else dumps(dict(outcome.data)),
        "at": outcome.at or utc_now(),
    }


def run_params(run: RunRow) -> dict[str, Any]:
    """The parameters of a new run row."""
    return {**vars(run), "args_json": dumps(list(run.args))}


def json_or_none(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else dumps(dict(value))


# ---------------------------------------------------------------- decoding


def usage(text: str | None) -> JSONObject | None:
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else None


def loads_object(text: str | None) -> JSONObject:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {"value": value}


def _decoded(cls: type[_T], r: Row, **decoded: Any) -> _T:
    """``cls`` from the row's columns of the same names, but for the ``decoded`` ones."""
    names = _field_names(cls)
    return cls(**{name: decoded[name] if name in decoded else r[name] for name in names})


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def run_row(r: Row) -> RunRow:
    return _decoded(RunRow, r, args=tuple(str(a) for a in json.loads(r["args_json"])))


def task_row(r: Row) -> TaskRow:
    return _decoded(TaskRow, r, status=Status(r["status"]), data=loads_object(r["data_json"]))


def attempt_row(r: Row) -> AttemptRow:
    outcome, usage_json = r["outcome"], r["usage_json"]
    return _decoded(
        AttemptRow,
        r,
        outcome=None if outcome is None else Outcome(outcome),
        tail=tuple(str(line) for line in json.loads(r["tail_json"])),
        usage=None if usage_json is None else loads_object(usage_json),
    )


def past_task(r: Row) -> PastTask:
    """Only the ``fields`` of the row's data, when the data has them (all text)."""
    data_json = r["data_json"]
    fields = loads_object(data_json).get("fields") if '"fields"' in (data_json or "") else None
    if not isinstance(fields, dict):
        return PastTask(r["fingerprint"], r["landed_commit"], None)
    if not all(type(v) is str for v in fields.values()):  # JSON keys are text already
        fields = {str(k): str(v) for k, v in fields.items()}
    return PastTask(r["fingerprint"], r["landed_commit"], fields)


def event_row(r: Row) -> EventRow:
    return _decoded(EventRow, r, data=loads_object(r["data_json"]))


def task_state_row(r: Row) -> TaskStateRow:
    return _decoded(TaskStateRow, r, status=Status(r["status"]))


def task_brief(r: Row) -> TaskBrief:
    """Only the ``kind`` of the task's data is decoded, and only when the data names one."""
    return TaskBrief(
        r["key"], r["status"], r["reason"], r["attempts"], r["updated_at"], _kind(r["data_json"])
    )


def attempt_brief(r: Row) -> AttemptBrief:
    return AttemptBrief(
        r["key"],
        r["n"],
        r["started_at"],
        r["ended_at"],
        r["outcome"],
        r["pid"],
        r["proc_start_time"],
        usage(r["usage_json"]),
    )


def _kind(data_json: str | None) -> str:
    if not data_json or '"kind"' not in data_json:
        return "work"
    return str(loads_object(data_json).get("kind", "work"))


def planned(data_json: str) -> list[JSONObject]:
    """The tasks of a run's RUN_PLAN_EVENT."""
    tasks = loads_object(data_json).get("tasks")
    return [t for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []

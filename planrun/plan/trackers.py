"""Checks of the ``trackers:`` section that its schema cannot see (docs/trackers.md).

- each tracker's token is a declared secret (``settings.secrets``), so it is redacted;
- no task, provider or ``defaults`` grants a tracker's token to a session, nor does
  ``settings.env.inherit`` pass it on: tracker credentials are planrun's, never an
  agent's;
- a ``for_each`` names a tracker the plan declares (:func:`tracker_of`).

Reading a tracker's items is not done here: :class:`planrun.plan.reads.DiskFiles` hands
it to :func:`planrun.trackers.source.fetch_items`, the one place a plan compile reads a
tracker.
"""

from __future__ import annotations

from planrun.errors import suggest
from planrun.plan.credentials import declared, keep_from_sessions
from planrun.plan.model import PlanFile, Tracker, TrackerSelect
from planrun.plan.problems import Problems


def check_trackers(problems: Problems, plan: PlanFile) -> None:
    """Report tokens that are not declared secrets, and tokens granted to sessions."""
    tokens: dict[str, str] = {}
    for name, tracker in plan.trackers.items():
        tokens.setdefault(tracker.token, name)
        declared(
            problems, plan, ("trackers", name, "token"), tracker.token, f"tracker {name}: token"
        )
        _check_status(problems, name, tracker)
    keep_from_sessions(
        problems,
        plan,
        tokens,
        lambda name: f"the token of tracker {name}",
        "tracker credentials are",
    )


#: The fields of ``status.<moment>`` and of ``select`` each kind takes.
STATUS_FIELDS = {"github": {"label", "close"}, "plane": {"state"}, "jira": {"state"}}
SELECT_FIELDS = {
    "github": {"labels", "state", "assignee", "limit"},
    "plane": {"labels", "state", "limit"},
    "jira": {"labels", "state", "jql", "limit"},
}


def _check_status(problems: Problems, name: str, tracker: Tracker) -> None:
    status = tracker.status
    if status is None:
        return
    takes = STATUS_FIELDS[tracker.kind]
    for moment in ("started", "done", "failed"):
        change = getattr(status, moment)
        for field in sorted(change.model_fields_set - takes) if change else ():
            problems.fail(
                ("trackers", name, "status", moment, field),
                f"tracker {name} ({tracker.kind}) takes {' and '.join(sorted(takes))} "
                f"here, not {field}",
            )


def _check_select(problems: Problems, key: str, tracker: Tracker, select: TrackerSelect) -> bool:
    fields = select.model_fields_set
    wrong = sorted(fields - SELECT_FIELDS[tracker.kind])
    for field in wrong:
        problems.fail(
            ("tasks", key, "for_each", "select", field),
            f"select.{field} is not for a {tracker.kind} tracker (it takes "
            f"{', '.join(sorted(SELECT_FIELDS[tracker.kind]))})",
        )
    return not wrong


def tracker_of(problems: Problems, plan: PlanFile, key: str, name: str) -> Tracker | None:
    """The tracker a ``for_each`` of task ``key`` names; None (reported) if unknown."""
    tracker = plan.trackers.get(name)
    if tracker is None and problems.source._node(("trackers", name)) is not None:
        return None  # written, but invalid (cut by validation): its own problem is reported
    if tracker is None:
        problems.fail(
            ("tasks", key, "for_each", "tracker"),
            f"unknown tracker {name!r}{suggest(name, plan.trackers)}"
            + ("" if plan.trackers else " (declare it under trackers:)"),
        )
        return None
    for_each = plan.tasks[key].for_each
    select = for_each.select if for_each is not None else None
    if select is not None and not _check_select(problems, key, tracker, select):
        return None  # not read: the plan is wrong anyway
    return tracker

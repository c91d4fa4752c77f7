"""What the agent says on a run at each moment of its task (pure: no I/O).

Every activity is a ``CreateAgentRunActivity`` body: ``type``, ``content`` and
``content_metadata.planrun.id`` (the id that makes sending it idempotent). Text that came
from a task or a person (output lines, questions, reasons) is redacted by the caller,
cut to the agent's ``limit`` and shown inside a code fence: data, never markup.

| moment | activity | run status after (Plane) |
| --- | --- | --- |
| mention accepted | `thought` "queued as KEY" | in_progress |
| attempt starts | `action` `attempt` {attempt, branch} | in_progress |
| output, at most every `progress` | `thought` with the last line | in_progress |
| heartbeat, every `heartbeat` without another | `thought` "still working" | in_progress |
| needs_input | `elicitation` with the question | awaiting |
| a reply to the question | `thought` "answer passed on" | in_progress |
| done | `response` (branch, commit), then the completion | completed |
| failed, skipped, cancelled | `error` with the reason | failed |
| stop request | `response` "stopped" | stopping → stopped |
| mention by someone not allowed | `error` "not allowed" | failed |
"""

from __future__ import annotations

from typing import Any

from planrun.trackers.status import fenced

CUT = "\n… (cut: {n} more characters)"


def bounded(text: str, limit: int) -> str:
    """``text``, cut to at most ``limit`` characters, saying so when it is cut."""
    if len(text) <= limit:
        return text
    room = max(limit - len(CUT.format(n=len(text))), 0)
    return text[:room] + CUT.format(n=len(text) - room)


def say(kind: str, text: str, limit: int) -> dict[str, Any]:
    """A text activity (thought, response, elicitation, error) of at most ``limit``; its
    id (``content_metadata``) is the desk's to add."""
    return {"type": kind, "content": {"type": kind, "body": bounded(text, limit)}}


def quoting(kind: str, lead: str, quoted: str, limit: int) -> dict[str, Any]:
    """A text activity: ``lead`` (planrun's words), then ``quoted`` (untrusted text) in a
    code fence, cut so that the whole stays within ``limit``."""
    room = max(limit - len(lead) - 40, 100)
    body = f"{lead}\n\n{fenced(bounded(quoted, room))}" if quoted else lead
    return say(kind, body, limit)


def act(action: str, parameters: dict[str, str]) -> dict[str, Any]:
    """An action activity; Plane takes only text parameter values."""
    return {
        "type": "action",
        "content": {"type": "action", "action": action, "parameters": dict(parameters)},
    }


def done_summary(task: str, branch: str | None, commit: str, turn: int) -> str:
    lines = [f"planrun finished `{task}`" + (f" (turn {turn + 1})" if turn else "") + "."]
    if branch:
        lines.append(f"- branch: `{branch}`")
    if commit:
        lines.append(f"- landed commit: `{commit}`")
    if not branch and not commit:
        lines.append("- nothing to land (the task works outside git worktrees)")
    return "\n".join(lines)


def ident_of(activity: Any) -> str:
    """The planrun id an activity carries (``content_metadata.planrun.id``), or ""."""
    meta = activity.get("content_metadata") if isinstance(activity, dict) else None
    mine = meta.get("planrun") if isinstance(meta, dict) else None
    return str(mine.get("id") or "") if isinstance(mine, dict) else ""

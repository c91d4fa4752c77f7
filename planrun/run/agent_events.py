"""What a Plane agent run hears of its task's events: :func:`said_for` (the mapping of
:mod:`planrun.agents.activities`' table, apart so that the desk stays short).

Each answer is ``(state, moment, activity)``: the conversation's new state (None: as is)
and an activity to queue with its moment (the activity id's last part: the same moment
of the same turn is one activity, however often it is observed, e.g. after a restart).
Output is said at most every ``progress`` seconds, the latest line only.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import trio

from planrun.agents import activities as say
from planrun.agents.ledger import Conversation, State
from planrun.core import events as ev
from planrun.run.inbox import post_answer

if TYPE_CHECKING:
    from planrun.run.agent_desk import Desk

Said = tuple[State | None, str | None, dict[str, Any] | None]


def said_for(desk: Desk, conversation: Conversation, event: ev.Event) -> list[Said]:
    limit = desk.agent.limit
    turn = len(conversation.replies)
    key = desk.task_of(conversation)
    if isinstance(event, ev.AttemptStarted):
        parameters = {"task": key, "attempt": str(event.attempt)}
        branch = desk.branch(key)
        if branch:
            parameters["branch"] = branch
        return [("running", f"attempt:{turn}:{event.attempt}", say.act("attempt", parameters))]
    if isinstance(event, ev.Output):
        return _progress(desk, conversation, event.line)
    if isinstance(event, ev.InputRequested):
        if conversation.pending:  # a reply came while it ran: it is the answer
            post_answer(desk.state_dir, key, conversation.pending.pop(0))
            text = "Answered with the reply sent while the task ran."
            return [
                (
                    None,
                    f"answered:{turn}:{len(conversation.pending)}",
                    say.say("thought", text, limit),
                )
            ]
        digest = hashlib.sha256(event.question.encode()).hexdigest()[:12]
        lead = "The task asks (reply here to answer):"
        return [
            (
                "awaiting",
                f"ask:{turn}:{digest}",
                say.quoting("elicitation", lead, event.question.strip(), limit),
            )
        ]
    if isinstance(event, ev.AnswerSent):
        return [("running", None, None)]
    if isinstance(event, ev.RetryScheduled):
        text = f"Attempt {event.attempt} {event.outcome}; retrying in {event.delay_s:.0f} s."
        return [(None, f"retry:{turn}:{event.attempt}", say.say("thought", text, limit))]
    if isinstance(event, ev.Landed):
        conversation.commit = event.commit
        return [(None, None, None)]
    if isinstance(event, ev.TaskPaused) and event.status == "in_review":
        text = f"Done, waiting for review: `planrun approve PLAN {key}` lands it."
        return [(None, f"review:{turn}", say.say("thought", text, limit))]
    if isinstance(event, ev.TaskFinished):
        return _finished(desk, conversation, event, turn)
    return []


def _progress(desk: Desk, conversation: Conversation, line: str) -> list[Said]:
    """The line now if ``progress`` has passed since the run's last activity; else it is
    kept (the latest only) for the desk's next tick."""
    if not line.strip():
        return []
    last = desk.last_post.get(conversation.run)
    if last is not None and trio.current_time() - last < desk.agent.progress:
        desk.unsaid[conversation.run] = line.strip()
        return []
    desk.progress(conversation, line.strip())
    return []


def _finished(
    desk: Desk, conversation: Conversation, event: ev.TaskFinished, turn: int
) -> list[Said]:
    key, limit = desk.task_of(conversation), desk.agent.limit
    if event.status == "done":
        summary = say.done_summary(key, desk.branch(key), conversation.commit, turn)
        if conversation.pending:  # replies while it ran: the next turn, at once
            conversation.replies += conversation.pending
            conversation.pending = []
            desk.poke()
            return [("queued", f"done:{turn}", say.say("response", summary, limit))]
        return [
            ("done", f"done:{turn}", say.say("response", summary, limit)),
            ("done", f"complete:{turn}", {"complete": summary.splitlines()[0]}),
        ]
    if conversation.stop:  # the stop request said it already
        return [("stopped", None, None)]
    lead = f"planrun's task `{key}` {event.status}:"
    error = say.quoting("error", lead, event.reason, limit)
    return [("failed", f"failed:{turn}", error)]

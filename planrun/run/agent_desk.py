"""A Plane agent under ``planrun serve``: mentions in, tasks run, activities out
(docs/plane-agent.md).

A :class:`Desk` per agent of the plan. Prompts (a mention, a reply, a stop request) come
from the webhook (:mod:`planrun.agents.webhook`) or from polling the workspace's activity
feed every ``poll``; both only *take* a prompt into the ledger (saved, deduplicated by its
activity id), and :meth:`Desk.work` acts on it after:

- a mention by an allowed person opens a conversation; its item (the work item and the
  comment, as data) joins the agent's fan-out, so the next poll of serve runs its task;
- a reply while the task waits for input is its answer (as ``planrun answer`` gives it);
  while it runs, it is kept for the next turn; on a finished run it starts a follow-up
  turn (the item's ``replies`` grow, so the task is changed and runs again);
- a stop request cancels that task only (its worktree is kept).

What the task does comes back as activities (:mod:`planrun.agents.activities`), queued in
the ledger and sent by :class:`~planrun.agents.outbox.ActivityOutbox`; a heartbeat
keeps a running task's run from going stale.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from planrun.agents import activities as say
from planrun.agents.api import AgentApi
from planrun.agents.ledger import ACTIVE, Conversation, Outgoing, ledger_path
from planrun.agents.outbox import REFUSED, ActivityOutbox, Book
from planrun.agents.webhook import WebhookApp, serve_webhooks
from planrun.core import events as ev
from planrun.core.names import branch_name
from planrun.errors import UsageError
from planrun.plan.item import Item
from planrun.plan.model import PlaneAgent
from planrun.plan.resolved import CompiledPlan
from planrun.run.inbox import post_answer
from planrun.state.store import utc_now
from planrun.trackers.http import TrackerError

#: Prompts are read again from this long before the last one seen (the feed holds back
#: its newest rows a little; ids make reading one twice harmless).
LOOKBACK = 30.0
#: When an agent first starts, prompts this much older than now are answered too.
FIRST_LOOKBACK = 3600.0
#: The fewest characters of the webhook's secret path.
MIN_PATH = 16
NOT_ALLOWED = "{who} is not allowed to run this agent (its allow-list in the plan); nothing runs."


class Desk:
    """Agent ``name`` of the plan, keeping its ledger in ``state_dir``."""

    def __init__(
        self,
        name: str,
        agent: PlaneAgent,
        state_dir: Path,
        environ: Mapping[str, str],
        *,
        redact: Callable[[str], str] = str,
        poke: Callable[[], None] = lambda: None,
        cancel: Callable[[str, str], None] = lambda key, why: None,
        api: AgentApi | None = None,
    ) -> None:
        self.name = name
        self.agent = agent
        self.state_dir = state_dir
        self.environ = environ
        self._redact = redact
        self.poke = poke
        self.cancel = cancel
        self.book = Book(ledger_path(state_dir, name))
        client = (environ.get(agent.client_id, ""), environ.get(agent.client_secret, ""))
        self.api = api or AgentApi(name, agent.url, client, agent.installation)
        self.outbox = ActivityOutbox(self.book, self.api)
        self.plan: CompiledPlan | None = None
        self.last_post: dict[str, float] = {}  # run → trio time of its last activity
        self.unsaid: dict[str, str] = {}  # run → its latest output line, not said yet
        self.listening: list[str] = []  # where the webhook server listens (no path)
        self._wake = trio.Event()

    # ------------------------------------------------------------ what serve asks

    def mentions(self) -> list[Item]:
        """The fan-out items: the conversations whose task is queued, running or waiting."""
        found = self.book.ledger.conversations.values()
        return [Item(c.item_id, c.values()) for c in found if c.state in ACTIVE]

    def task_of(self, conversation: Conversation) -> str:
        template = self.plan.agent_tasks.get(self.name, "MENTION") if self.plan else "MENTION"
        return f"{template}[{conversation.item_id}]"

    async def run(self) -> None:
        """Poll, act on prompts, send activities, beat, and take webhooks; until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.outbox.deliver)
            nursery.start_soon(self.polls)
            nursery.start_soon(self.work)
            nursery.start_soon(self.heartbeats)
            hook = self.agent.webhook
            if hook is not None:
                path = "/plane/" + self.environ.get(hook.path, "")
                app = WebhookApp(path, self.environ.get(hook.secret, ""), self.take_event)
                try:
                    self.listening = await nursery.start(
                        lambda task_status: serve_webhooks(
                            app, hook.listen, task_status=task_status
                        )
                    )
                except OSError as exc:  # the port is taken: polling alone still answers
                    self._complain(f"no webhooks: cannot listen on {hook.listen}: {exc}")

    # ------------------------------------------------------------ prompts in

    def take_event(self, event: Any) -> str:
        """A webhook's event: a prompt is kept (saved) to act on; says what became of it."""
        if not isinstance(event, dict) or event.get("type") != "agent_run_activity":
            return "ignored"
        activity, run = event.get("agent_run_activity"), event.get("agent_run") or {}
        if not isinstance(activity, dict) or activity.get("type") != "prompt":
            return "ignored"
        known = self.api.known_installation
        if known is not None and event.get("workspace_id") not in (None, known.workspace):
            return "ignored"  # signed, but for another workspace
        prompt = {**activity, "agent_run": str(activity.get("agent_run") or run.get("id"))}
        return "taken" if self.take(prompt) else "duplicate"

    def take(self, prompt: dict[str, Any]) -> bool:
        if not self.book.ledger.take(prompt):
            return False
        self.book.save()
        self._wake.set()
        return True

    async def polls(self) -> None:
        while True:
            await self.poll_once()
            await trio.sleep(self.agent.poll)

    async def poll_once(self) -> None:
        ledger = self.book.ledger
        if not ledger.since:  # the first start: mentions of the last hour are answered
            ledger.since = _before(utc_now(), FIRST_LOOKBACK)
        try:
            rows = await trio.to_thread.run_sync(self.api.prompts_since, ledger.since)
        except (TrackerError, KeyError, TypeError, ValueError) as exc:
            self._complain(f"cannot read its activity feed: {_message(exc)}")
            return
        for row in rows:
            if isinstance(row, dict) and row.get("type") == "prompt":
                self.take(row)
        stamps = [str(r.get("created_at") or "") for r in rows if isinstance(r, dict)]
        if stamps and max(stamps) > ledger.since:
            ledger.since = _before(max(stamps), LOOKBACK)
            self.book.save()

    async def work(self) -> None:
        """Act on each prompt taken in, in order; one that cannot be acted on now (Plane
        is down) is tried again after the next poll."""
        while True:
            ledger = self.book.ledger
            while ledger.inbox:
                try:
                    await self._act(ledger.inbox[0])
                except (TrackerError, KeyError, TypeError, ValueError) as exc:
                    if not (isinstance(exc, TrackerError) and exc.status in REFUSED):
                        self._complain(f"a prompt waits: {_message(exc)}")
                        break
                    self._complain(f"a prompt dropped: {_message(exc)}")  # its run is gone
                ledger.inbox.pop(0)
                self.book.save()
            self._wake = trio.Event()
            with trio.move_on_after(self.agent.poll):
                await self._wake.wait()

    async def _act(self, prompt: dict[str, Any]) -> None:
        run = str(prompt.get("agent_run") or "")
        actor = str(prompt.get("actor") or "")
        text = str((prompt.get("content") or {}).get("body") or "")
        stop = prompt.get("signal") == "stop"
        allowed = await self._allowed(actor)
        found = self.book.ledger.conversations.get(run)
        if found is None:
            if not stop:
                await self._open(run, actor, text, allowed, str(prompt.get("id")))
        elif not allowed or found.state == "refused":
            print(f"planrun: agent {self.name}: a prompt by {actor} ignored", file=sys.stderr)
        elif stop:
            self._stop(found)
        else:
            self._reply(found, text, str(prompt.get("id")))

    async def _allowed(self, actor: str) -> bool:
        allow = {a.casefold() for a in self.agent.allow}
        if actor.casefold() in allow:
            return True
        if not any("@" in a for a in allow):
            return False
        email = await trio.to_thread.run_sync(self.api.email_of, actor)
        return bool(email) and email.casefold() in allow

    async def _open(self, run: str, actor: str, text: str, allowed: bool, prompt: str) -> None:
        conversation = Conversation(run, f"plane-{run.replace('-', '')[:8]}", actor)
        if not allowed:
            conversation.state = "refused"
            self._save(conversation)
            self.owe(
                conversation,
                "refused",
                say.say("error", NOT_ALLOWED.format(who=f"User {actor}"), self.agent.limit),
            )
            return
        details = await trio.to_thread.run_sync(self._details, run)
        conversation.project, conversation.issue = details["project"], details["issue"]
        conversation.key, conversation.url = details["key"], details["url"]
        conversation.title, conversation.body = details["title"], details["body"]
        conversation.comment = text
        self._save(conversation)
        self.owe(
            conversation,
            f"queued:{prompt}",
            say.say(
                "thought",
                f"planrun queued this as `{self.task_of(conversation)}`.",
                self.agent.limit,
            ),
        )
        self.poke()

    def _details(self, run: str) -> dict[str, str]:
        """The mentioned work item's key, address, title and text (in a worker thread)."""
        found = self.api.run(run)
        project, issue = str(found.get("project") or ""), str(found.get("issue") or "")
        item = self.api.work_item(project, issue) if project and issue else {}
        key = ""
        if item:
            key = f"{self.api.project_identifier(project)}-{item.get('sequence_id')}"
        web = re.sub(r"//api\.", "//app.", self.agent.url.rstrip("/"))
        slug = self.api.installation().slug
        return {
            "project": project,
            "issue": issue,
            "key": key,
            "url": f"{web}/{slug}/browse/{key}/" if key else "",
            "title": str(item.get("name") or ""),
            "body": str(item.get("description_stripped") or ""),
        }

    def _stop(self, conversation: Conversation) -> None:
        conversation.stop = True
        was = conversation.state
        if was in ACTIVE:
            conversation.state = "stopped"
        self._save(conversation)
        if was in ACTIVE:
            self.cancel(self.task_of(conversation), "cancelled: stopped from Plane")
        self.owe(
            conversation,
            f"stopped:{len(conversation.replies)}",
            say.say(
                "response",
                "Stopped: planrun cancelled the task; its worktree and branch are kept.",
                self.agent.limit,
            ),
        )

    def _reply(self, conversation: Conversation, text: str, prompt: str) -> None:
        limit = self.agent.limit
        if conversation.state == "awaiting":
            post_answer(self.state_dir, self.task_of(conversation), text)
            conversation.state = "running"
            self._save(conversation)
            self.owe(
                conversation,
                f"answer:{prompt}",
                say.say("thought", "Answer passed on to the task.", limit),
            )
            return
        if conversation.state in ACTIVE:  # the task's next question, or its next turn
            conversation.pending.append(text)
            self._save(conversation)
            said = "Noted: this answers the task's next question, or else is its next turn."
            self.owe(conversation, f"reply:{prompt}", say.say("thought", said, limit))
            return
        if self.agent.follow_ups:
            conversation.replies.append(text)
            conversation.state = "queued"
            conversation.stop = False
            self._save(conversation)
            said = "Follow-up queued: the task runs again with this reply."
            self.owe(conversation, f"reply:{prompt}", say.say("thought", said, limit))
            self.poke()
            return
        self.owe(
            conversation,
            f"reply:{prompt}",
            say.say("response", "This run is finished (follow-ups are off for this agent).", limit),
        )

    # ------------------------------------------------------------ activities out

    def owe(self, conversation: Conversation, moment: str, body: dict[str, Any]) -> None:
        """Queue an activity of ``conversation``'s run (saved first), id ``run:moment``."""
        ident = f"{conversation.run}:{moment}"
        body["content_metadata"] = {"planrun": {"id": ident}}
        if "content" in body and "body" in body["content"]:
            body["content"]["body"] = say.bounded(
                self.redact(body["content"]["body"]), self.agent.limit
            )
        if self.book.ledger.owe(Outgoing(ident, conversation.run, body)):
            self.book.save()
            self.last_post[conversation.run] = trio.current_time()
            self.outbox.refresh()

    def _save(self, conversation: Conversation) -> None:
        self.book.ledger.conversations[conversation.run] = conversation
        self.book.save()

    def redact(self, text: str) -> str:
        """``text`` without the plan's secrets nor the agent's bot tokens."""
        return self._redact(self.api.mask(text))

    def _complain(self, what: str) -> None:
        print(f"planrun: agent {self.name}: {self.redact(what)}", file=sys.stderr)

    # ------------------------------------------------------------ the task's events

    def conversation_of(self, key: str | None) -> Conversation | None:
        if key is None or not key.endswith("]") or "[" not in key:
            return None
        found = self.book.ledger.by_item(key[key.rindex("[") + 1 : -1])
        return found if found is not None and self.task_of(found) == key else None

    def event(self, event: ev.Event) -> None:
        try:
            self._hear(event)
        except OSError as exc:  # the ledger cannot be written: said, never the run's end
            self._complain(f"cannot keep what its task did: {exc}")

    def _hear(self, event: ev.Event) -> None:
        conversation = self.conversation_of(event.key)
        if conversation is None or conversation.state in ("stopped", "refused"):
            return
        from planrun.run.agent_events import said_for

        said = said_for(self, conversation, event)
        for state, _, _ in said:
            conversation.state = state or conversation.state
        if said:
            self._save(conversation)
        for _, moment, body in said:
            if moment is not None and body is not None:
                self.owe(conversation, moment, body)

    def branch(self, key: str) -> str | None:
        plan = self.plan
        task = plan.tasks.get(key) if plan is not None else None
        project = plan.projects.get(task.project) if plan and task and task.project else None
        return branch_name(plan.name, key) if plan and project and project.worktrees else None

    async def heartbeats(self) -> None:
        """Each tick: a running run's latest output line not said yet (once ``progress``
        has passed since its last activity), else "still working" when it has said
        nothing for ``heartbeat``: Plane marks a run stale after 5 quiet minutes."""
        agent = self.agent
        tick = max(min(agent.heartbeat / 8, agent.progress, 15.0), 0.5)
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            for conversation in list(self.book.ledger.conversations.values()):
                if conversation.state not in ("queued", "running"):
                    continue
                last = self.last_post.setdefault(conversation.run, now)
                line = self.unsaid.get(conversation.run)
                if line is not None and now - last >= agent.progress:
                    self.progress(conversation, line)
                elif now - last >= agent.heartbeat - tick:
                    self.progress(conversation, None)

    def progress(self, conversation: Conversation, line: str | None) -> None:
        """A progress thought: the latest output ``line``, or that the task still runs."""
        self.unsaid.pop(conversation.run, None)
        conversation.beats += 1
        self._save(conversation)
        if line is None:
            body = say.say("thought", "Still working.", self.agent.limit)
        else:
            body = say.quoting("thought", "Working; its latest output:", line, 600)
        self.owe(conversation, f"beat:{conversation.beats}", body)


def check_environment(plan: CompiledPlan, environ: Mapping[str, str]) -> None:
    """UsageError (exit 2, before anything starts) naming an agent's unset credential,
    or a webhook path too short to be unguessable."""
    from planrun.plan.agents import credentials

    for name, agent in plan.agents.items():
        for field, variable in credentials(agent).items():
            if not environ.get(variable):
                raise UsageError(f"agent {name}: {variable} ({field}) is not set")
        if agent.webhook is not None and importlib.util.find_spec("hypercorn") is None:
            raise UsageError(f"agent {name}: webhooks need hypercorn: pip install 'planrun[plane]'")
        if agent.webhook is not None and len(environ[agent.webhook.path]) < MIN_PATH:
            raise UsageError(
                f"agent {name}: {agent.webhook.path} (webhook.path) is shorter than "
                f"{MIN_PATH} characters: not unguessable"
            )


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, TrackerError) else f"{type(exc).__name__}: {exc}"


def _before(stamp: str, seconds: float) -> str:
    """The ISO 8601 time ``seconds`` before ``stamp`` (``stamp`` itself if unreadable)."""
    from datetime import datetime, timedelta

    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return (when - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

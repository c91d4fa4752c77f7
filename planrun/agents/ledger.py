"""What an agent remembers, durably: its conversations, the prompts it took in and the
activities it owes Plane (docs/plane-agent.md).

One JSON file per agent, ``<state folder>/agents/<name>.json``, replaced atomically
(fsync'd) after every change: a prompt is written here before a webhook is answered 200
and before it is acted on, and an activity before it is sent. So a restart redoes what
was cut short and repeats nothing: a prompt id already :attr:`Ledger.seen` is dropped, an
activity id already :attr:`Ledger.sent` is never queued again, and one that was being
sent when planrun died (``tried``) is first looked for on the run (its
``content_metadata.planrun.id``) before it is sent again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from planrun.atomic import write_atomic

#: queued → running ⇄ awaiting → done | failed | stopped; refused: a person not allowed
State = Literal["queued", "running", "awaiting", "done", "failed", "stopped", "refused"]
ACTIVE: frozenset[str] = frozenset({"queued", "running", "awaiting"})
#: The most prompt and activity ids remembered (the oldest are forgotten first).
MAX_IDS = 20_000


@dataclass
class Conversation:
    """One agent run: the mention that started it and what became of its task."""

    run: str
    item_id: str  # plane-<first 8 of the run id>: the task is TEMPLATE[item_id]
    author: str
    project: str = ""
    issue: str = ""
    key: str = ""  # ENG-12
    title: str = ""
    body: str = ""
    comment: str = ""
    url: str = ""
    replies: list[str] = field(default_factory=list)  # the turns after the first
    pending: list[str] = field(default_factory=list)  # replies while the task ran, unused
    state: State = "queued"
    stop: bool = False
    beats: int = 0  # progress and heartbeat thoughts posted (their ids count them)
    commit: str = ""

    def values(self) -> dict[str, Any]:
        """The fan-out item's fields: what the task's templates see as ``item``."""
        return {
            "id": self.item_id,
            "key": self.key,
            "title": self.title,
            "body": self.body,
            "comment": self.comment,
            "replies": list(self.replies),
            "author": self.author,
            "url": self.url,
            "run": self.run,
        }


@dataclass
class Outgoing:
    """An activity (or the run's completion) owed to Plane."""

    id: str  # stable: the run, the moment, the turn; carried as content_metadata
    run: str
    body: dict[str, Any]  # the activity (CreateAgentRunActivity), or {"complete": summary}
    tried: bool = False  # a send began: look for it on the run before sending again


@dataclass
class Ledger:
    conversations: dict[str, Conversation] = field(default_factory=dict)  # by run id
    inbox: list[dict[str, Any]] = field(default_factory=list)  # prompts not acted on yet
    outbox: list[Outgoing] = field(default_factory=list)  # in the order they are sent
    seen: list[str] = field(default_factory=list)  # prompt activity ids taken in
    sent: list[str] = field(default_factory=list)  # outgoing ids delivered
    since: str = ""  # the activity feed was read up to here (ISO 8601)

    def by_item(self, item_id: str) -> Conversation | None:
        return next((c for c in self.conversations.values() if c.item_id == item_id), None)

    def owe(self, outgoing: Outgoing) -> bool:
        """Queue ``outgoing`` unless it is queued or sent already; True if queued."""
        if outgoing.id in self.sent or any(o.id == outgoing.id for o in self.outbox):
            return False
        self.outbox.append(outgoing)
        return True

    def settle(self, ident: str) -> None:
        self.outbox = [o for o in self.outbox if o.id != ident]
        self.sent = [*self.sent, ident][-MAX_IDS:]

    def take(self, prompt: dict[str, Any]) -> bool:
        """Keep ``prompt`` to act on, unless its id was taken in before; True if new."""
        ident = str(prompt.get("id") or "")
        if not ident or ident in self.seen:
            return False
        self.seen = [*self.seen, ident][-MAX_IDS:]
        self.inbox.append(prompt)
        return True


def ledger_path(state_dir: Path, agent: str) -> Path:
    return state_dir / "agents" / f"{agent}.json"


def load_ledger(path: Path) -> Ledger:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Ledger()
    return Ledger(
        conversations={k: Conversation(**v) for k, v in data["conversations"].items()},
        inbox=list(data["inbox"]),
        outbox=[Outgoing(**o) for o in data["outbox"]],
        seen=list(data["seen"]),
        sent=list(data["sent"]),
        since=str(data["since"]),
    )


def save_ledger(path: Path, ledger: Ledger) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps(asdict(ledger), indent=1).encode())

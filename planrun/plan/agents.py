"""Checks of the ``agents:`` section that its schema cannot see (docs/plane-agent.md).

- every credential of an agent (client id and secret, webhook secret and path) is a
  declared secret, so it is redacted, and none is granted to a session;
- a webhook listens on loopback unless the plan says ``public: true``;
- each agent has a task that fans out over its mentions (else its mentions would go
  nowhere).
"""

from __future__ import annotations

from planrun.core.loopback import is_loopback
from planrun.plan.credentials import declared, keep_from_sessions
from planrun.plan.model import PlaneAgent, PlanFile
from planrun.plan.problems import Problems


def credentials(agent: PlaneAgent) -> dict[str, str]:
    """The agent's environment variables that hold secrets, by the field that names each."""
    found = {"client_id": agent.client_id, "client_secret": agent.client_secret}
    if agent.webhook is not None:
        found["webhook.secret"] = agent.webhook.secret
        found["webhook.path"] = agent.webhook.path
    return found


def check_agents(problems: Problems, plan: PlanFile) -> None:
    holders: dict[str, str] = {}
    fanned = {t.for_each.agent for t in plan.tasks.values() if t.for_each is not None}
    for name, agent in plan.agents.items():
        for field, variable in credentials(agent).items():
            holders.setdefault(variable, name)
            declared(
                problems, plan, ("agents", name, *field.split(".")), variable, f"agent {name}:"
            )
        if agent.webhook is not None and not agent.webhook.public:
            host = agent.webhook.listen.rsplit(":", 1)[0].strip("[]")
            if not is_loopback(host):
                problems.fail(
                    ("agents", name, "webhook", "listen"),
                    f"agent {name}: the webhook would listen on {host}, not loopback; put it "
                    "behind a TLS proxy on 127.0.0.1, or say public: true",
                )
        if name not in fanned:
            problems.fail(
                ("agents", name),
                f"agent {name}: no task fans out over its mentions (give one "
                f"for_each: {{agent: {name}}})",
            )
    keep_from_sessions(
        problems,
        plan,
        holders,
        lambda name: f"a credential of agent {name}",
        "agent credentials are",
    )

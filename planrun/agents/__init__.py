"""A Plane agent's side of the protocol (docs/plane-agent.md): its API (:mod:`.api`),
what it remembers (:mod:`.ledger`), what it says (:mod:`.activities`), how that is sent
(:mod:`.outbox`) and its webhooks (:mod:`.webhook`). :mod:`planrun.run.agent_desk`
drives it under ``planrun serve``. Needs the ``plane`` extra (httpx, hypercorn).
"""

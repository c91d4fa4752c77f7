"""A project's ``repositories:``: one project over many repositories (docs/batch-changes.md).

Listed clone URLs (or paths), or a GitHub query (an organisation, a topic, a search).
Part of the plan's models (:mod:`planrun.plan.model` imports them); each field's
docstring is its documentation. The token is a declared secret read by planrun only.
"""

# No ``from __future__ import annotations``: see planrun/plan/model.py.

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planrun.plan.values import EnvName, NonEmptyStr


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Repositories(_Model):
    """The repositories a project stands for: `urls`, or a GitHub query (`org`, `topic`,
    `search`); its tasks become one task `KEY[owner/name]` per repository."""

    urls: list[NonEmptyStr] | None = None
    """Clone URLs or paths (relative to the plan's folder); `owner/name` is the URL's last
    two parts, without `.git`."""
    org: NonEmptyStr | None = None
    """Every repository of this GitHub organisation (`GET /orgs/{org}/repos`)."""
    topic: NonEmptyStr | None = None
    """Only repositories with this topic (with `org`, or alone: every repository on
    GitHub with the topic)."""
    search: NonEmptyStr | None = None
    """A GitHub repository search (`GET /search/repositories`), e.g. `org:acme
    language:go`."""
    token: EnvName | None = None
    """The environment variable holding the GitHub token a query needs; it must be in
    `settings.secrets`. It also authenticates `https://` clones."""
    url: NonEmptyStr = "https://api.github.com"
    """The API's base URL (GitHub Enterprise: `https://HOST/api/v3`)."""
    limit: Annotated[int, Field(ge=1, le=10_000)] = 500
    """At most this many repositories from a query; more is an error, never a silent cut."""

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        query = [n for n in ("org", "topic", "search") if getattr(self, n) is not None]
        if self.urls is not None and query:
            raise ValueError(f"give urls or a query ({', '.join(query)}), not both")
        if self.urls is None and not query:
            raise ValueError("give urls, or a query: org, topic or search")
        if self.search is not None and (self.org is not None or self.topic is not None):
            raise ValueError("search is the whole query: write org: and topic: into it")
        return self

"""A project's ``changeset:`` and the plan's ``changesets:`` (docs/batch-changes.md).

A changeset is the pull request that carries a project's verified work to its GitHub
repository: the branch planrun pushes, the PR's title, body, labels and reviewers, and
whether it is published. Part of the plan's models (:mod:`planrun.plan.model` imports
them); each field's docstring is its documentation, as there. The token is a declared
secret read by planrun only, never given to a task's session.
"""

# No ``from __future__ import annotations``: see planrun/plan/model.py.

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from planrun.plan.trackermodel import Label, RepoName
from planrun.plan.values import EnvName, NonEmptyStr

#: Whether a changeset's PR is opened: not at all, as a draft, or ready for review.
Published = bool | Literal["draft"]
_SAY = "published is false, draft or true, or a mapping of repository patterns to those"


def _one_message(value: Any) -> Any:
    """One plain message for a wrong ``published`` (not one per branch of the union)."""
    values = value.values() if isinstance(value, dict) else [value]
    keys_ok = all(isinstance(k, str) and k for k in value) if isinstance(value, dict) else True
    if not keys_ok or not all(v is True or v is False or v == "draft" for v in values):
        raise ValueError(f"{_SAY}, not {value!r}")
    return value


PublishedField = Annotated[Published | dict[NonEmptyStr, Published], BeforeValidator(_one_message)]
#: A share of a wave, as a percentage: `20%`.
HaltAbove = Annotated[str, StringConstraints(pattern=r"^(100|[0-9]{1,2})(\.[0-9]+)?%$")]
#: What can happen to a repository's changeset that a plan may count as a failure.
Outcome = Literal["failed", "no_diff", "exists", "rate_limited", "conflicted", "budget_exceeded"]
FAIL_ON: tuple[Outcome, ...] = ("failed",)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


#: When the PR's branch is pushed to a fork: when the token cannot push to the repository
#: (`auto`), always, or never.
ForkWhen = Literal["auto", "always", "never"]
OwnerName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")]


class Fork(_Model):
    """Where the fork is made, and when it is used."""

    when: ForkWhen = "auto"
    """`auto` (a fork only when the token cannot push to the repository), `always`, or
    `never`."""
    organization: OwnerName | None = None
    """The organization the fork is made in (default: the token's own account)."""


class Changeset(_Model):
    """The pull request that carries this project's verified work to GitHub."""

    repo: RepoName | None = None
    """The GitHub repository (`owner/name`) the PR is opened in; required but for a
    project with `repositories`, where it is each repository's."""
    token: EnvName
    """The environment variable holding the GitHub token; it must be in `settings.secrets`
    (redacted everywhere, never given to a task's session)."""
    remote: NonEmptyStr = "origin"
    """The git remote of the project's repository that the branch is pushed to."""
    branch: NonEmptyStr | None = None
    """The branch pushed and proposed (a template: `plan`, `project`); default: the
    project's `target_branch`, where its tasks landed."""
    base: NonEmptyStr | None = None
    """The branch the PR asks to merge into (default: the project's `base_branch`, else
    `main`)."""
    title: NonEmptyStr = "planrun: {{ plan.name }}"
    """The PR's title (a template: `plan`, `project`, `tasks`)."""
    body: str | None = None
    """The PR's body in Markdown (a template: `plan`, `project`, `tasks`, each task with
    `key`, `title`, `status`); default: a list of what the project's tasks did."""
    labels: list[Label] = Field(default_factory=list)
    """Labels the PR gets (added; labels a person set are kept)."""
    reviewers: list[NonEmptyStr] = Field(default_factory=list)
    """Users asked to review the PR when it is opened."""
    published: PublishedField = "draft"
    """`false` (push nothing, keep the branch), `draft` (the default) or `true`; or a
    mapping of repository patterns (`acme/web-*`, `*`) to those, the first match wins."""
    url: NonEmptyStr = "https://api.github.com"
    """The API's base URL (GitHub Enterprise: `https://HOST/api/v3`)."""
    commit_message: NonEmptyStr | None = None
    """Propose one squashed commit with this message (a template, as `title`) on the
    changeset's own `branch`, instead of planrun's landing commits (default: those)."""
    fork: ForkWhen | Fork = "auto"
    """Push the branch to a fork and open the PR from it: `auto` (the default: only when
    the token cannot push to `repo`), `always` or `never`; or `{when: auto | always,
    organization: NAME}` to make the fork in an organization."""
    on_base_change: Literal["rebase", "rerun", "ignore"] = "rebase"
    """When the base branch moved since the PR was proposed, the next apply (which fetches
    it): `rebase` the branch onto it and run the checks again (a conflict gets one turn of
    the project's agent task), `rerun` the project's tasks on it, or `ignore` it."""


class Changesets(_Model):
    """How the plan's changesets are published, and which outcomes fail the run."""

    per_hour: Annotated[int, Field(ge=1)] | None = None
    """At most this many PRs opened or updated per hour, over all runs of the plan; the
    rest wait in the store for a later apply (default: no limit)."""
    fail_on: list[Outcome] = Field(default_factory=lambda: list(FAIL_ON))
    """Outcomes that make `apply` exit 1: `failed` (a repository's tasks or checks failed,
    or its push or PR could not be made), `no_diff` (nothing to propose), `exists` (a PR
    for the branch that planrun did not open), `rate_limited` (still waiting), `conflicted`
    (rebasing on a moved base conflicted, and no agent resolved it), `budget_exceeded` (a
    task's budget ran out; its partial work is kept on its branch)."""
    waves: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    """Roll out in waves: the first N repositories, then the next M, ..., then the rest;
    a wave starts when the one before it has finished (default: all at once)."""
    halt_above: HaltAbove = "0%"
    """A canary: when more than this share of a wave's repositories failed (tasks, checks
    or budget), the later waves are cancelled and `apply` exits 1."""
    close_unmatched: bool = False
    """Close (with a comment) the open PRs of repositories a `repositories` query no
    longer matches, or that opted out with `.batchignore`; never done otherwise."""

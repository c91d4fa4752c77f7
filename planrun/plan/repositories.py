"""A project's ``repositories:`` listed and checked while compiling (docs/batch-changes.md).

Each repository becomes a project of its own, ``svc[owner/name]``, cloned into the plan's
state folder (``repos/<owner>/<name>``), and each task of ``svc`` one task per repository
(:mod:`planrun.plan.tasks`). Nothing is cloned here: :mod:`planrun.changes.clones` clones
or fetches them for ``plan`` and ``apply`` (``validate`` never does), and reads each
repository's ``.batchignore``.

Checked here, as ``file:line:col``: an empty ``urls``, a URL that names no
``owner/name``, a repository listed twice, a query without a token, a token not declared
in ``settings.secrets`` or granted to a session. A query is read through
:class:`~planrun.plan.reads.PlanFiles` (the network: such a plan is never cached).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from planrun.plan.changesets import published_for
from planrun.plan.credentials import declared, keep_from_sessions
from planrun.plan.expand import ItemError
from planrun.plan.item import Item
from planrun.plan.model import Changeset, PlanFile, Repositories
from planrun.plan.problems import Problems
from planrun.plan.reads import PlanFiles
from planrun.plan.resolve import Resolved
from planrun.plan.resolved import ProjectSpec, RepoSpec

_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_SCP = re.compile(r"^[^/@]+@[^/:]+:(.*)$")  # git@github.com:acme/api.git


def plan_repositories(
    problems: Problems, plan: PlanFile, resolved: Resolved, files: PlanFiles, state: Path
) -> None:
    """List each ``repositories:`` project's repositories into ``resolved``: their specs
    (``resolved.repositories``) and a project per repository (``resolved.projects``)."""
    tokens: dict[str, str] = {}
    for key, project in plan.projects.items():
        spec = project.repositories
        if spec is None:
            continue
        where = ("projects", key, "repositories")
        if spec.token is not None:
            tokens.setdefault(spec.token, key)
            who = f"project {key}: repositories token"
            if not declared(problems, plan, (*where, "token"), spec.token, who):
                continue  # not sent anywhere
        found = _found(problems, key, spec, resolved.directory, files)
        if found is None:
            continue
        repos = tuple(
            RepoSpec(name, url, str(state / "repos" / name), key, branch, spec.token)
            for name, url, branch in found
        )
        resolved.repositories[key] = repos
        template = resolved.templates[key]
        for repo in repos:
            resolved.projects[repo.key] = for_repository(template, repo, project.changeset)
    keep_from_sessions(
        problems, plan, tokens, lambda key: f"the repositories token of project {key}", "it is"
    )


Found = list[tuple[str, str, str | None]]


def _found(
    problems: Problems, key: str, spec: Repositories, directory: Path, files: PlanFiles
) -> Found | None:
    where = ("projects", key, "repositories")
    if spec.urls is not None:
        return _listed(problems, where, spec.urls, directory)
    if spec.token is None:
        problems.fail(
            where,
            f"project {key}: a repositories query (org, topic, search) needs token: the "
            "variable holding a GitHub token, declared in settings.secrets",
        )
        return None
    try:
        return files.repositories(key, spec)
    except ItemError as exc:
        problems.fail((*where, exc.field) if exc.field == "token" else where, exc.message)
        return None


def _listed(
    problems: Problems, where: tuple[str, ...], urls: list[str], directory: Path
) -> Found | None:
    if not urls:
        problems.fail((*where, "urls"), "urls is empty: list at least one repository")
        return None
    found: Found = []
    seen: dict[str, int] = {}
    for index, written in enumerate(urls):
        url = clone_url(written, directory)
        name = repo_name(url)
        if name is None:
            problems.fail(
                (*where, "urls", index),
                f"cannot tell owner/name from {written!r}: its last two path parts name the "
                "repository (like acme/api.git)",
            )
        elif name in seen:
            problems.fail(
                (*where, "urls", index),
                f"repository {name} is listed twice (urls[{seen[name]}] and urls[{index}])",
            )
        else:
            seen[name] = index
            found.append((name, url, None))
    return found if len(found) == len(urls) else None


def clone_url(written: str, directory: Path) -> str:
    """A URL as written, or a path made absolute against the plan's folder."""
    if "://" in written or _SCP.match(written):
        return written
    return os.path.normpath(directory / written)


def repo_name(url: str) -> str | None:
    """``owner/name`` from a clone URL's last two path parts (without ``.git``)."""
    scp = _SCP.match(url)
    path = scp.group(1) if scp else urlsplit(url).path if "://" in url else url
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if len(parts) < 2:
        return None
    owner, name = parts[-2], parts[-1].removesuffix(".git")
    if not (_PART.match(owner) and _PART.match(name)) or name in (".", ".."):
        return None
    return f"{owner}/{name}"


def for_repository(template: ProjectSpec, repo: RepoSpec, written: Changeset | None) -> ProjectSpec:
    """The project of one repository: the written project's fields, the clone's folder,
    and the changeset (if any) proposed to that repository."""
    changeset = template.changeset
    if changeset is not None and written is not None:
        published = published_for(written, repo.name)
        # unless the plan names one, the base is the repository's default branch
        base = written.base or template.base_branch or repo.default_branch or changeset.base
        changeset = replace(changeset, repo=repo.name, published=published, base=base)
    return replace(template, name=repo.key, path=repo.path, changeset=changeset)


def repo_item(repo: RepoSpec, index: int) -> Item:
    """What a repository's tasks see as ``repo`` (and ``item``) in templates."""
    owner, short = repo.name.split("/", 1)
    return Item(
        repo.name,
        {
            "id": repo.name,
            "name": repo.name,
            "owner": owner,
            "repo": short,
            "url": repo.url,
            "default_branch": repo.default_branch,
            "index": index,
            "repository": True,
        },
    )

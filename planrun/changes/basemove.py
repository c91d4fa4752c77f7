"""Before an apply: a proposed changeset whose base branch moved (``on_base_change``).

For each project whose changeset has a PR of planrun's (open, or conflicted or failed last
time),
the base is fetched (``<remote>/<base>``) and compared with the base commit recorded when
it was last proposed. When it moved:

- ``rebase``: the integration branch is rebased onto it (:mod:`planrun.changes.rebase`;
  a conflict gets one agent turn), the ``verify`` of each task whose work is on it runs
  on the rebased code *before* the branch moves, and then the project's check tasks (its
  checks that landed nothing) run again in the apply, which proposes the rebased branch
  once they pass; a conflict not resolved is ``conflicted`` and nothing moves;
- ``rerun``: the integration branch is reset to the new base (its old tip kept as
  ``planrun-kept/<plan>/<project>/<run>-base``) and every task of the project runs again;
- ``ignore``: nothing.

The edges (an agent turn, a command run as a task's) are given by the caller
(:mod:`planrun.run`), so this package stays free of sessions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from planrun.changes import push as git
from planrun.changes.rebase import Conflicted, fetch_base, rebase, reset
from planrun.changes.record import Result
from planrun.changes.records import Recorded
from planrun.core.frozen import frozen
from planrun.plan.resolved import CompiledPlan
from planrun.trackers.http import TrackerError

#: Recorded states of a changeset whose PR of planrun's is open (as far as planrun knows).
LIVE = frozenset({"opened", "updated", "unchanged"})
#: ... and the states after which a moved base is tried again (the PR is still there).
AGAIN = LIVE | {"conflicted", "failed"}


@frozen
class Edges:
    """What reconciling needs from the run: ``turn(project, what)`` is how one turn of the
    project's agent task runs, ``(folder, prompt)`` (None: the project has none);
    ``verify(key, folder)`` runs task ``key``'s verify there (None: it passed, else why)."""

    turn: Callable[[str, str], Callable[[Path, str], None] | None]
    verify: Callable[[str, Path], str | None]
    environ: Mapping[str, str]
    folder: Path  # where rebases happen (removed after each)
    run_id: str


@dataclass
class Reconciled:
    """What the apply does about moved bases: tasks to run again, projects rebased (their
    changeset is proposed after this run even if none of their tasks runs), and results to
    record for projects that cannot be proposed (conflicted, failed), and the review and
    check run ids each follow-up answered."""

    force: set[str] = field(default_factory=set)
    rebased: set[str] = field(default_factory=set)
    results: dict[str, Result] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)
    answered: dict[str, list[str]] = field(default_factory=dict)

    def merge(self, other: Reconciled) -> None:
        self.force |= other.force
        self.rebased |= other.rebased
        self.results.update(other.results)
        self.said += other.said
        self.answered.update(other.answered)


def reconcile(
    plan: CompiledPlan,
    found: Mapping[str, Recorded],
    checks: Mapping[str, tuple[str, ...]],
    landed: Collection[str],
    edges: Edges,
) -> Reconciled:
    """See the module doc. ``checks`` are each project's checks (planrun.changes.propose);
    ``landed`` the tasks whose work is on their integration branch."""
    done = Reconciled()
    for name, known in found.items():
        project = plan.projects.get(name)
        spec = project.changeset if project is not None else None
        if project is None or spec is None or spec.on_base_change == "ignore":
            continue
        if known.state not in AGAIN or known.number is None or known.base_commit is None:
            continue
        env = git.auth_env(project.path, spec.remote, edges.environ.get(spec.token) or "")
        try:
            new = fetch_base(project.path, spec.remote, spec.base, env)
        except TrackerError as exc:
            done.said.append(f"{name}: could not fetch {spec.remote}/{spec.base}: {exc.message}")
            continue
        target = project.target_branch
        if new is None or new == known.base_commit:
            continue
        if git.contains(project.path, new, f"refs/heads/{target}"):
            continue  # already on it (a run cut short after rebasing): the checks decide
        keys = checks.get(name, ())
        if spec.on_base_change == "rerun":
            _rerun(project.path, target, new, f"{plan.name}/{name}/{edges.run_id}", done)
            done.force.update(keys)
            done.said.append(f"{name}: {spec.base} moved to {new[:12]}: its tasks run again")
            continue
        _rebase(name, project.path, target, new, keys, landed, edges, done)
    return done


def _rebase(
    name: str,
    path: str,
    target: str,
    new: str,
    keys: tuple[str, ...],
    landed: Collection[str],
    edges: Edges,
    done: Reconciled,
) -> None:
    folder = edges.folder / name
    try:
        resolve = edges.turn(name, "rebase")
        moved = rebase(path, target, new, folder, resolve, verify_all(keys, landed, edges))
    except Conflicted as exc:
        why = f"rebasing {target} onto {new[:12]} conflicted in {', '.join(exc.files)}: {exc}"
        done.results[name] = Result("conflicted", detail=why)
        done.said.append(f"{name}: {why}; nothing pushed")
        return
    except TrackerError as exc:  # Unverified too
        why = f"rebasing {target} onto {new[:12]} failed: {exc}"
        done.results[name] = Result("failed", detail=why)
        done.said.append(f"{name}: {why}; nothing pushed")
        return
    done.rebased.add(name)
    done.force.update(k for k in keys if k not in landed)
    agent = f" (the agent resolved {', '.join(moved.resolved)})" if moved.resolved else ""
    done.said.append(f"{name}: rebased {target} onto {new[:12]}{agent}; its checks run again")


class Unverified(TrackerError):
    """A task's verify failed on the rebased code."""


def verify_all(
    keys: tuple[str, ...], landed: Collection[str], edges: Edges
) -> Callable[[Path], None]:
    """Runs the verify of each of ``keys`` whose work is on the branch, in the rebased
    worktree; Unverified naming the first that fails."""

    def check(folder: Path) -> None:
        for key in keys:
            if key in landed:
                failed = edges.verify(key, folder)
                if failed is not None:
                    raise Unverified(f"the verify of {key} failed on the rebased code: {failed}")

    return check


def _rerun(path: str, target: str, new: str, where: str, done: Reconciled) -> None:
    kept = f"planrun-kept/{where}-base"
    try:
        reset(path, target, new, kept)
    except TrackerError as exc:
        done.said.append(f"{where}: could not reset {target} to {new[:12]}: {exc.message}")


def say(reconciled: Reconciled, redact: Callable[[str], str]) -> None:
    for line in reconciled.said:
        print(redact(f"planrun: changeset of {line}"), file=sys.stderr)

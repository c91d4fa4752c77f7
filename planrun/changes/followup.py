"""``planrun apply PLAN --follow-up``: an open PR's requested changes or failing checks,
given to one turn of the project's agent.

For each changeset with a PR of planrun's that is open on GitHub, GitHub is asked for the reviewers'
latest verdicts and the check runs of the PR's head. Reviews that request changes and
failing check runs that no earlier follow-up answered (their ids are recorded in the
store, a ``changeset_followup`` event) become the agent's prompt: each review's body
and its comments (file and line), each check run's name, title, summary and text; all
of it data, redacted, each item at most :data:`ITEM_LIMIT` bytes and the whole at most
:data:`PROMPT_LIMIT`. The turn runs in planrun's worktree of the project's integration
branch; what it changed is committed there (hooks off), each landed task's ``verify``
runs on it before the branch moves, then the project's check tasks run in the apply,
and the changeset is proposed (pushed, its PR updated) once they pass. Nothing new: no
turn, nothing sent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from planrun.changes.basemove import AGAIN, Edges, Reconciled, verify_all
from planrun.changes.pulls import FAILING, Pulls, pr_state, verdicts
from planrun.changes.rebase import commit_all, on_branch
from planrun.changes.record import Result
from planrun.changes.records import Recorded
from planrun.core.frozen import frozen
from planrun.plan.resolved import CompiledPlan
from planrun.state.store import StoreReader
from planrun.trackers.http import TrackerError

FOLLOWUP_EVENT = "changeset_followup"
#: The most bytes of one review, comment or check run's output in the prompt.
ITEM_LIMIT = 8 * 1024
#: The most bytes of the whole prompt.
PROMPT_LIMIT = 32 * 1024


@frozen
class Asked:
    """What a PR asks for that no follow-up answered yet: its ids and the prompt."""

    ids: tuple[str, ...]  # "review:<id>", "check:<id>"
    prompt: str


def answered(store: StoreReader, plan_name: str) -> dict[str, set[str]]:
    """The review and check run ids each project's follow-ups answered."""
    found: dict[str, set[str]] = {}
    for row in store.plan_events(plan_name, (FOLLOWUP_EVENT,)):
        project = str(row.data.get("project"))
        found.setdefault(project, set()).update(str(i) for i in row.data.get("answered") or ())
    return found


def asked(pulls: Pulls, number: int, done: Collection[str]) -> Asked | None:
    """The PR's requested changes and failing checks not answered yet (None: nothing,
    or the PR is not open)."""
    pull = pulls.get(number)
    if pr_state(pull) not in ("open", "draft"):
        return None
    reviews = [
        r
        for r in verdicts(pulls.reviews(number)).values()
        if r.get("state") == "CHANGES_REQUESTED" and f"review:{r['id']}" not in done
    ]
    sha = str(pull["head"]["sha"])
    runs = [
        r
        for r in pulls.check_runs(sha)
        if r.get("conclusion") in FAILING and f"check:{r['id']}" not in done
    ]
    if not reviews and not runs:
        return None
    comments = pulls.review_comments(number) if reviews else []
    ids = [f"review:{r['id']}" for r in reviews] + [f"check:{r['id']}" for r in runs]
    return Asked(tuple(ids), _prompt(number, reviews, comments, runs))


def _prompt(
    number: int,
    reviews: list[dict[str, Any]],
    comments: list[dict[str, Any]],
    runs: list[dict[str, Any]],
) -> str:
    parts = [
        f"Pull request #{number}, made from this branch, needs more work: the reviews and "
        "failing checks below say what. Change the code to address them, then stop. Do "
        "not commit: planrun commits your changes, runs the checks and updates the PR."
    ]
    for review in reviews:
        login = (review.get("user") or {}).get("login") or "a reviewer"
        parts.append(f"Review by {login} (changes requested):\n{_cut(review.get('body'))}")
        for comment in comments:
            if comment.get("pull_request_review_id") == review["id"]:
                where = f"{comment.get('path')}:{comment.get('line') or comment.get('position')}"
                parts.append(f"Comment on {where}:\n{_cut(comment.get('body'))}")
    for run in runs:
        output = run.get("output") or {}
        said = "\n".join(_cut(output.get(k)) for k in ("title", "summary", "text") if output.get(k))
        parts.append(f"Check run {run.get('name')} failed ({run.get('conclusion')}):\n{said}")
    text = "\n\n".join(parts)
    return _cut(text, PROMPT_LIMIT)


def _cut(value: Any, limit: int = ITEM_LIMIT) -> str:
    data = str(value or "").encode("utf-8", "replace")
    if len(data) <= limit:
        return data.decode("utf-8")
    return data[:limit].decode("utf-8", "ignore") + f"\n[... {len(data) - limit} more bytes]"


def follow_up(
    plan: CompiledPlan,
    found: Mapping[str, Recorded],
    done_before: Mapping[str, set[str]],
    checks: Mapping[str, tuple[str, ...]],
    landed: Collection[str],
    edges: Edges,
    redact: Callable[[str], str],
) -> Reconciled:
    """Each open PR's follow-up (see the module doc)."""
    done = Reconciled()
    for name, known in found.items():
        project = plan.projects.get(name)
        spec = project.changeset if project is not None else None
        if project is None or spec is None or known.number is None or known.state not in AGAIN:
            continue
        token = edges.environ.get(spec.token) or ""
        if not token:
            done.said.append(f"{name}: {spec.token} is not set: no follow-up")
            continue
        pulls = Pulls(spec.repo, spec.url, token)
        try:
            wanted = asked(pulls, known.number, done_before.get(name, set()))
        except (TrackerError, KeyError, TypeError, ValueError) as exc:
            done.said.append(f"{name}: could not read PR #{known.number}: {exc}")
            continue
        finally:
            pulls.close()
        if wanted is not None:
            _answer(name, project.path, project.target_branch, known.number, wanted, checks,
                    landed, edges, redact, done)  # fmt: skip
    return done


def _answer(
    name: str,
    path: str,
    target: str,
    number: int,
    wanted: Asked,
    checks: Mapping[str, tuple[str, ...]],
    landed: Collection[str],
    edges: Edges,
    redact: Callable[[str], str],
    done: Reconciled,
) -> None:
    turn = edges.turn(name, "follow-up")
    if turn is None:
        done.said.append(f"{name}: PR #{number} asks for changes, but no task of it has an agent")
        return
    message = f"planrun: follow-up on PR #{number} ({', '.join(wanted.ids)})"

    def change(folder: Path) -> None:
        turn(folder, redact(wanted.prompt))
        commit_all(path, folder, message)

    keys = checks.get(name, ())
    try:
        before, after = on_branch(
            path, target, edges.folder / name, change, verify_all(keys, landed, edges), message
        )
    except TrackerError as exc:  # Unverified too
        done.results[name] = Result("failed", detail=f"follow-up on PR #{number}: {exc}")
        done.said.append(f"{name}: follow-up on PR #{number} failed: {exc}; nothing pushed")
        return
    done.answered[name] = list(wanted.ids)
    if after == before:
        done.said.append(f"{name}: the agent changed nothing for PR #{number}")
        return
    done.rebased.add(name)
    done.force.update(k for k in keys if k not in landed)
    done.said.append(f"{name}: follow-up on PR #{number} committed; its checks run again")

"""A changeset pushed to a fork: real ``planrun apply``, real git (a bare repository as
"the org", the fork a bare clone of it that the stand-in makes) and the GitHub stand-in
over real HTTP (tests/github_forks.py).

The token may not push to acme/api: the first apply forks it, pushes the branch there
and opens the PR on acme/api from ``planrun-bot:planrun-bump``; a second apply sends
nothing; a moved base is rebased and pushed to the fork (with a lease; the token given
push access meanwhile, the PR stays on the fork); a person's commit on the fork's branch
is never replaced. A push refused with 403 goes to a fork. planrun killed between the
fork and the PR: one fork, one PR after (``fork: {when: always, organization: ...}``).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.github_standin import Standin
from tests.gitrepo import commit_file, git, tip
from tests.runs import apply
from tests.test_changes import changesets, killed_while_opening
from tests.test_changes_base import move_base, org, write_plan

__all__ = ["org"]  # the fixture, shared with tests/test_changes_base.py

FORK = "planrun-bot/api"
BRANCH = "refs/heads/planrun-bump"


def forked(plan: Path, fork: str) -> Path:
    """The plan with ``fork: FORK`` in its changeset."""
    old = "on_base_change: rebase}"
    text = plan.read_text().replace(old, f"on_base_change: rebase, fork: {fork}}}")
    plan.write_text(text)
    return plan


def fork_tip(org: Standin, fork: str = FORK) -> str | None:
    return tip(org.bare[fork], BRANCH)


def fork_posts(org: Standin) -> int:
    return sum(1 for m, p, _ in org.requests if m == "POST" and p.endswith("/forks"))


def test_no_push_access_forks_then_nothing_then_a_rebase_pushed_to_the_fork(
    tmp_path: Path, org: Standin
) -> None:
    org.no_push.add("acme/api")
    plan = write_plan(tmp_path, org.url)
    first = apply(plan)
    assert first.returncode == 0, first.stderr
    [pull] = org.pulls_of("acme/api")
    assert pull["head"]["label"] == "planrun-bot:planrun-bump"
    assert pull["head"]["repo"]["full_name"] == FORK
    assert tip(org.bare["acme/api"], BRANCH) is None  # nothing pushed upstream
    pushed = fork_tip(org)
    assert pushed == git(tmp_path / "api/clone", "rev-parse", "planrun-bump")
    assert fork_posts(org) == 1

    writes = len(org.writes())
    quiet = apply(plan)  # nothing edited: nothing sent, nothing pushed
    assert quiet.returncode == 0, quiet.stderr
    assert len(org.writes()) == writes
    assert fork_tip(org) == pushed

    org.no_push.discard("acme/api")  # push access given later: the PR stays on the fork
    base = move_base(tmp_path)
    again = apply(plan)
    assert again.returncode == 0, again.stderr
    assert "rebased planrun-bump onto" in again.stderr
    rebased = fork_tip(org)
    assert rebased != pushed
    assert git(org.bare[FORK], "merge-base", "--is-ancestor", base, str(rebased)) == ""
    assert org.pulls_of("acme/api") == [pull]
    assert tip(org.bare["acme/api"], BRANCH) is None
    assert fork_posts(org) == 1  # the fork was found, not made again

    person = tmp_path / "fork-person"  # a person's commit on the fork's branch
    git(tmp_path, "clone", "-q", "-b", "planrun-bump", str(org.bare[FORK]), str(person))
    theirs = commit_file(person, "THEIRS", "mine\n", "a person's fix on the PR")
    git(person, "push", "-q", "origin", "planrun-bump")
    move_base(tmp_path, "MORE", "more\n")
    refused = apply(plan)
    assert refused.returncode == 1, refused.stderr
    assert fork_tip(org) == theirs  # never forced
    [row] = [line for line in changesets(plan).stdout.splitlines() if "acme/api" in line]
    assert "planrun did not push" in row


def test_killed_between_the_fork_and_the_pr_makes_one_fork_and_one_pr(
    tmp_path: Path, org: Standin
) -> None:
    plan = forked(write_plan(tmp_path, org.url), "{when: always, organization: acme-bots}")
    killed_while_opening(org, plan, drop=True)
    assert org.hold_writes is not None
    org.hold_writes.set()
    org.hold_writes = None
    assert fork_tip(org, "acme-bots/api") is not None  # forked and pushed, no PR
    assert org.pulls_of("acme/api") == []

    again = apply(plan)
    assert again.returncode == 0, again.stderr
    [pull] = org.pulls_of("acme/api")
    assert pull["head"]["label"] == "acme-bots:planrun-bump"
    assert list(org.forks) == ["acme-bots/api"]
    assert fork_posts(org) == 1
    assert tip(org.bare["acme/api"], BRANCH) is None  # always: never upstream


class _Refuses(BaseHTTPRequestHandler):
    """A git host that refuses the token: 403 to everything."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(403)
        self.send_header("content-length", "0")
        self.end_headers()

    do_POST = do_GET


def test_a_push_refused_with_403_goes_to_a_fork(tmp_path: Path, org: Standin) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/acme/api.git"
        git(tmp_path / "api/clone", "remote", "add", "gh", url)
        plan = forked(write_plan(tmp_path, org.url), "auto, remote: gh")
        done = apply(plan)  # GitHub says it may push; the git host says 403
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    [pull] = org.pulls_of("acme/api")
    assert pull["head"]["label"] == "planrun-bot:planrun-bump"
    assert fork_tip(org) is not None

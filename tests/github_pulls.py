"""Pull-request endpoints of the GitHub stand-in (tests/github_standin.py), for changesets.

Pulls live per repository (``Standin.repos``); a repository mapped to a bare git folder
(``Standin.bare``) refuses a PR whose head branch is not there, as GitHub does, and
answers the head's real commit. Bodies and answers are validated with githubkit's models.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

from githubkit_schemas.latest import models as gh

from tests.github_standin import STAMP, Standin, _Refused, _user, _valid

PULLS = re.compile(r"^/repos/([^/]+/[^/]+)/pulls$")
PULL = re.compile(r"^/repos/([^/]+/[^/]+)/pulls/(\d+)$")
MERGE = re.compile(r"^/repos/([^/]+/[^/]+)/pulls/(\d+)/merge$")
REVIEWERS = re.compile(r"^/repos/([^/]+/[^/]+)/pulls/(\d+)/requested_reviewers$")
REVIEWS = re.compile(r"^/repos/([^/]+/[^/]+)/pulls/(\d+)/reviews$")
CHECK_RUNS = re.compile(r"^/repos/([^/]+/[^/]+)/commits/([0-9a-f]{7,40})/check-runs$")


def head_sha(d: Standin, repo: str, branch: str) -> str:
    """The commit of ``branch`` in the repository's bare folder (422 if it is not there)."""
    folder = d.bare.get(repo)
    if folder is None:
        return "0" * 40
    done = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise _Refused(422, f"Validation Failed: head {branch!r} does not exist in {repo}")
    return done.stdout.strip()


def repository(repo: str) -> dict[str, Any]:
    """A repository as GitHub answers it inside a pull request's ``base``."""
    api, web = f"https://api.github.com/repos/{repo}", f"https://github.com/{repo}"
    urls = {
        f"{n}_url": f"{api}/{n}"
        for n in [
            "archive",
            "assignees",
            "blobs",
            "branches",
            "collaborators",
            "comments",
            "commits",
            "compare",
            "contents",
            "contributors",
            "deployments",
            "downloads",
            "events",
            "forks",
            "git_commits",
            "git_refs",
            "git_tags",
            "issue_comment",
            "issue_events",
            "issues",
            "keys",
            "labels",
            "languages",
            "merges",
            "milestones",
            "notifications",
            "pulls",
            "releases",
            "stargazers",
            "statuses",
            "subscribers",
            "subscription",
            "tags",
            "teams",
            "trees",
            "hooks",
        ]
    }
    counts = dict.fromkeys(
        (
            "forks",
            "forks_count",
            "stargazers_count",
            "watchers_count",
            "size",
            "open_issues_count",
            "open_issues",
            "watchers",
        ),
        0,
    )
    return {
        "id": abs(hash(repo)) % 10**6,
        "node_id": f"R_{repo}",
        "name": repo.split("/")[1],
        "full_name": repo,
        "license": None,
        "owner": _user(repo.split("/")[0]),
        "html_url": web,
        "description": None,
        "fork": False,
        "url": api,
        "git_url": f"git://github.com/{repo}.git",
        "ssh_url": f"git@github.com:{repo}.git",
        "clone_url": f"{web}.git",
        "mirror_url": None,
        "svn_url": web,
        "homepage": None,
        "language": None,
        "default_branch": "main",
        "has_pages": False,
        "disabled": False,
        "pushed_at": STAMP,
        "created_at": STAMP,
        "updated_at": STAMP,
        **urls,
        **counts,
    }


def head_repository(d: Standin, repo: str, head: str) -> str:
    """The repository a PR's ``head`` (``BRANCH`` or ``OWNER:BRANCH``) is in: ``repo``,
    or ``OWNER``'s fork of it (422 when there is none, as GitHub answers)."""
    owner = head.rpartition(":")[0]
    if not owner or owner == repo.split("/")[0]:
        return repo
    for fork, parent in d.forks.items():
        if parent == repo and fork.split("/")[0] == owner:
            return fork
    raise _Refused(422, f"Validation Failed: head {head!r}: {owner} has no fork of {repo}")


def pull_data(d: Standin, repo: str, number: int, change: dict[str, Any]) -> dict[str, Any]:
    """A new pull request as GitHub answers it."""
    api = f"https://api.github.com/repos/{repo}"
    web = f"https://github.com/{repo}/pull/{number}"
    head_repo = head_repository(d, repo, change["head"])

    def ref(branch: str, sha: str, where: str = repo) -> dict[str, Any]:
        owner = where.split("/")[0]
        return {
            "label": f"{owner}:{branch}",
            "ref": branch,
            "repo": repository(where),
            "sha": sha,
            "user": _user(owner),
        }

    links = {n: {"href": f"{api}/pulls/{number}/{n}"} for n in ("comments", "commits", "statuses")}
    links.update(
        html={"href": web},
        issue={"href": f"{api}/issues/{number}"},
        review_comments={"href": f"{api}/pulls/{number}/comments"},
        review_comment={"href": f"{api}/pulls/comments{{/number}}"},
        self={"href": f"{api}/pulls/{number}"},
    )
    head = change["head"].split(":")[-1]
    pull = {
        "url": f"{api}/pulls/{number}",
        "id": 50_000 + number,
        "node_id": f"PR_{number}",
        "html_url": web,
        "diff_url": f"{web}.diff",
        "patch_url": f"{web}.patch",
        "issue_url": f"{api}/issues/{number}",
        "commits_url": f"{api}/pulls/{number}/commits",
        "review_comments_url": f"{api}/pulls/{number}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{number}/comments",
        "statuses_url": f"{api}/statuses/{number}",
        "number": number,
        "state": "open",
        "locked": False,
        "title": change.get("title") or "",
        "user": _user("planrun-bot"),
        "body": change.get("body"),
        "labels": [],
        "milestone": None,
        "created_at": STAMP,
        "updated_at": STAMP,
        "closed_at": None,
        "merged_at": None,
        "head": ref(head, head_sha(d, head_repo, head), head_repo),
        "base": ref(change["base"], "1" * 40),
        "_links": links,
        "author_association": "NONE",
        "auto_merge": None,
        "draft": bool(change.get("draft")),
        "merged": False,
        "mergeable": True,
        "mergeable_state": "clean",
        "merged_by": None,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": 1,
        "additions": 1,
        "deletions": 0,
        "changed_files": 1,
        "requested_reviewers": [],
    }
    return _valid(gh.PullRequest, pull)


class PullRoutes:
    """Mixed into the stand-in's handler: ``self.data`` and ``self.repo`` are set."""

    data: Standin
    repo: str

    def _pull(self, number: str) -> dict[str, Any]:
        pull = self.data.pulls.get((self.repo, int(number)))
        if pull is None:
            raise _Refused(404, "Not Found")
        return pull

    def list_pulls(self, *, query: dict[str, str], body: Any) -> Any:
        d = self.data
        state = query.get("state", "open")
        head = query.get("head")
        rows = [
            p
            for (repo, _), p in sorted(d.pulls.items())
            if repo == self.repo
            and (state == "all" or p["state"] == state)
            and (head is None or p["head"]["label"] == head)
        ]
        return 200, [_valid(gh.PullRequestSimple, p) for p in rows], {}

    def create_pull(self, *, query: dict[str, str], body: Any) -> Any:
        from tests.github_routes import _body

        change = _body(gh.ReposOwnerRepoPullsPostBody, body)
        d = self.data
        with d.lock:
            where = head_repository(d, self.repo, change["head"]).split("/")[0]
            label = f"{where}:{change['head'].split(':')[-1]}"
            if any(
                p["head"]["label"] == label and p["state"] == "open"
                for (r, _), p in d.pulls.items()
                if r == self.repo
            ):
                raise _Refused(
                    422, f"Validation Failed: A pull request already exists for {label}."
                )
            number = 1 + max((n for (r, n) in d.pulls if r == self.repo), default=0)
            pull = pull_data(d, self.repo, number, change)
            d.pulls[(self.repo, number)] = pull
        return 201, pull, {}

    def get_pull(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        pull = self._pull(number)
        if pull["state"] == "open":
            where = pull["head"]["repo"]["full_name"]
            pull["head"]["sha"] = head_sha(self.data, where, pull["head"]["ref"])
        return 200, _valid(gh.PullRequest, pull), {}

    def edit_pull(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        from tests.github_routes import _body

        change = _body(gh.ReposOwnerRepoPullsPullNumberPatchBody, body)
        with self.data.lock:
            pull = self._pull(number)
            for name in ("title", "body", "state"):
                if name in change:
                    pull[name] = change[name]
            pull["closed_at"] = STAMP if pull["state"] == "closed" else None
        return 200, _valid(gh.PullRequest, pull), {}

    def merge_pull(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        from tests.github_routes import _body

        _body(gh.ReposOwnerRepoPullsPullNumberMergePutBody, body or {})
        with self.data.lock:
            pull = self._pull(number)
            if pull["state"] != "open" or pull["draft"]:
                raise _Refused(405, "Pull Request is not mergeable")
            pull.update(state="closed", merged=True, merged_at=STAMP, closed_at=STAMP)
        answer = {"sha": pull["head"]["sha"], "merged": True, "message": "Pull Request merged"}
        return 200, _valid(gh.PullRequestMergeResult, answer), {}

    def add_pull_labels(self, number: str, body: Any) -> Any:
        from tests.github_routes import _body

        change = _body(gh.ReposOwnerRepoIssuesIssueNumberLabelsPostBodyOneof0, body)
        with self.data.lock:
            pull = self._pull(number)
            have = [label["name"] for label in pull["labels"]]
            names = have + [n for n in change.get("labels") or [] if n not in have]
            pull["labels"] = [{**self.data.label(n), "archived_by": None} for n in names]
        return 200, [_valid(gh.Label, {**la, "archived_at": None}) for la in pull["labels"]], {}

    def request_reviewers(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        from tests.github_routes import _body

        change = _body(gh.ReposOwnerRepoPullsPullNumberRequestedReviewersPostBodyAnyof0, body)
        with self.data.lock:
            pull = self._pull(number)
            pull["requested_reviewers"] = [_user(n) for n in change.get("reviewers") or []]
        return 201, _valid(gh.PullRequestSimple, pull), {}

    def list_reviews(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        self._pull(number)
        rows = self.data.reviews.get((self.repo, int(number)), [])
        return 200, [_valid(gh.PullRequestReview, r) for r in rows], {}

    def list_check_runs(self, sha: str, *, query: dict[str, str], body: Any) -> Any:
        runs = self.data.check_runs.get(sha, [])
        answer = {"total_count": len(runs), "check_runs": runs}
        return 200, _valid(gh.ReposOwnerRepoCommitsRefCheckRunsGetResponse200, answer), {}


def review(repo: str, number: int, login: str, state: str) -> dict[str, Any]:
    """A review as GitHub answers it (``APPROVED``, ``CHANGES_REQUESTED``, ...)."""
    web = f"https://github.com/{repo}/pull/{number}"
    return _valid(
        gh.PullRequestReview,
        {
            "id": abs(hash((repo, number, login))) % 10**6,
            "node_id": f"R_{login}",
            "user": _user(login),
            "body": "",
            "state": state,
            "html_url": web,
            "pull_request_url": f"https://api.github.com/repos/{repo}/pulls/{number}",
            "_links": {"html": {"href": web}, "pull_request": {"href": web}},
            "commit_id": "0" * 40,
            "author_association": "MEMBER",
        },
    )


def check_run(sha: str, name: str, conclusion: str | None) -> dict[str, Any]:
    """A check run on ``sha``: completed with ``conclusion``, or in progress (None)."""
    url = f"https://api.github.com/check-runs/{abs(hash((sha, name))) % 10**6}"
    return _valid(
        gh.CheckRun,
        {
            "id": abs(hash((sha, name))) % 10**6,
            "head_sha": sha,
            "node_id": f"CR_{name}",
            "external_id": None,
            "url": url,
            "html_url": url,
            "details_url": None,
            "status": "completed" if conclusion else "in_progress",
            "conclusion": conclusion,
            "started_at": STAMP,
            "completed_at": STAMP if conclusion else None,
            "output": {
                "title": None,
                "summary": None,
                "text": None,
                "annotations_count": 0,
                "annotations_url": f"{url}/annotations",
            },
            "name": name,
            "check_suite": None,
            "app": None,
            "pull_requests": [],
        },
    )


PULL_ROUTES: list[tuple[re.Pattern[str], dict[str, Any]]] = [
    (PULLS, {"GET": PullRoutes.list_pulls, "POST": PullRoutes.create_pull}),
    (PULL, {"GET": PullRoutes.get_pull, "PATCH": PullRoutes.edit_pull}),
    (MERGE, {"PUT": PullRoutes.merge_pull}),
    (REVIEWERS, {"POST": PullRoutes.request_reviewers}),
    (REVIEWS, {"GET": PullRoutes.list_reviews}),
    (CHECK_RUNS, {"GET": PullRoutes.list_check_runs}),
]

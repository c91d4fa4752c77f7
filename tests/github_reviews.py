"""Review endpoints of the GitHub stand-in (tests/github_standin.py), for follow-ups and
draft → ready: a PR's review comments, check runs with their output, and GraphQL's
``markPullRequestReadyForReview``.

REST answers are validated with githubkit's models. GraphQL requests are parsed and run
with graphql-core against the part of GitHub's schema this mutation uses (its types as
GitHub's schema declares them), so a malformed query, a wrong argument or a node id that
is not a PR's is refused as GitHub refuses it.
"""

from __future__ import annotations

import re
from typing import Any

import graphql
from githubkit_schemas.latest import models as gh

from tests import github_pulls as pulls
from tests.github_standin import STAMP, Standin, _Refused, _user, _valid

REVIEW_COMMENTS = re.compile(r"^/repos/([^/]+/[^/]+)/pulls/(\d+)/comments$")
GRAPHQL = re.compile(r"^/graphql$")

#: GitHub's own declarations of what markPullRequestReadyForReview reads and answers.
SCHEMA = graphql.build_schema(
    """
    type Query { viewer: User! }
    type User { login: String! }
    type Mutation {
      markPullRequestReadyForReview(
        input: MarkPullRequestReadyForReviewInput!
      ): MarkPullRequestReadyForReviewPayload
    }
    input MarkPullRequestReadyForReviewInput { clientMutationId: String, pullRequestId: ID! }
    type MarkPullRequestReadyForReviewPayload {
      clientMutationId: String
      pullRequest: PullRequest
    }
    type PullRequest { id: ID!, number: Int!, isDraft: Boolean!, title: String! }
    """
)


class ReviewRoutes:
    """Mixed into the stand-in's handler: ``self.data`` and ``self.repo`` are set."""

    data: Standin
    repo: str

    def list_review_comments(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        if (self.repo, int(number)) not in self.data.pulls:
            raise _Refused(404, "Not Found")
        rows = self.data.review_comments.get((self.repo, int(number)), [])
        return 200, [_valid(gh.PullRequestReviewComment, r) for r in rows], {}

    def graphql(self, *, query: dict[str, str], body: Any) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise _Refused(400, "Problems parsing JSON")
        d = self.data
        with d.lock:
            d.graphql.append(body)

        def ready(_info: Any, input: dict[str, Any]) -> dict[str, Any]:
            node = input["pullRequestId"]
            with d.lock:
                found = [p for p in d.pulls.values() if p["node_id"] == node]
                if not found:
                    raise graphql.GraphQLError(
                        f"Could not resolve to a node with the global id of '{node}'"
                    )
                found[0]["draft"] = False
            pull = found[0]
            return {"pullRequest": {"id": node, "number": pull["number"], "isDraft": False,
                                    "title": pull["title"]}}  # fmt: skip

        result = graphql.graphql_sync(
            SCHEMA,
            body["query"],
            root_value={"markPullRequestReadyForReview": ready},
            variable_values=body.get("variables"),
        )
        if result.errors:
            problems = [e.message for e in result.errors]
            if not any("Could not resolve" in p for p in problems):
                d.problems.append(f"graphql refused: {problems}")
            return 200, {"data": result.data, "errors": [{"message": p} for p in problems]}, {}
        return 200, {"data": result.data}, {}


def review(repo: str, number: int, login: str, state: str, body: str, ident: int) -> dict[str, Any]:
    """A review with ``body`` (``CHANGES_REQUESTED``, ``APPROVED``, ``COMMENTED``)."""
    made = pulls.review(repo, number, login, state)
    made.update(id=ident, node_id=f"PRR_{ident}", body=body, submitted_at=STAMP)
    return _valid(gh.PullRequestReview, made)


def review_comment(
    repo: str, number: int, review_id: int, ident: int, path: str, line: int, body: str
) -> dict[str, Any]:
    """A comment of review ``review_id`` on ``path`` at ``line``."""
    api = f"https://api.github.com/repos/{repo}/pulls"
    web = f"https://github.com/{repo}/pull/{number}"
    return _valid(
        gh.PullRequestReviewComment,
        {
            "url": f"{api}/comments/{ident}",
            "pull_request_review_id": review_id,
            "id": ident,
            "node_id": f"PRRC_{ident}",
            "diff_hunk": "@@ -1 +1 @@",
            "path": path,
            "line": line,
            "commit_id": "0" * 40,
            "original_commit_id": "0" * 40,
            "user": _user("octocat"),
            "body": body,
            "created_at": STAMP,
            "updated_at": STAMP,
            "html_url": f"{web}#discussion_r{ident}",
            "pull_request_url": f"{api}/{number}",
            "author_association": "MEMBER",
            "_links": {
                "self": {"href": f"{api}/comments/{ident}"},
                "html": {"href": f"{web}#discussion_r{ident}"},
                "pull_request": {"href": f"{api}/{number}"},
            },
        },
    )


def failing_check(sha: str, name: str, ident: int, title: str, summary: str, text: str) -> Any:
    """A completed check run on ``sha`` that failed, with its output."""
    run = pulls.check_run(sha, name, "failure")
    output = {**run["output"], "title": title, "summary": summary, "text": text}
    run.update(id=ident, node_id=f"CR_{ident}", output=output)
    return _valid(gh.CheckRun, run)


REVIEW_ROUTES: list[tuple[re.Pattern[str], dict[str, Any]]] = [
    (REVIEW_COMMENTS, {"GET": ReviewRoutes.list_review_comments}),
    (GRAPHQL, {"POST": ReviewRoutes.graphql}),
]

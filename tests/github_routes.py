"""The routes of the GitHub stand-in (tests/github_standin.py): one method per endpoint."""

from __future__ import annotations

import json
import re
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from githubkit_schemas.latest import models as gh
from pydantic import BaseModel, ValidationError

from tests.github_forks import FORK_ROUTES, ForkRoutes
from tests.github_pulls import PULL_ROUTES, PullRoutes
from tests.github_repos import REPO_ROUTES, RepoRoutes
from tests.github_reviews import REVIEW_ROUTES, ReviewRoutes
from tests.github_standin import PER_PAGE_MAX, STAMP, Standin, _Refused, _user, _valid
from tests.standin_http import JSONHandler

ISSUES = re.compile(r"^/repos/([^/]+/[^/]+)/issues$")
ISSUE = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)$")
COMMENTS = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$")
COMMENT = re.compile(r"^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$")
LABELS = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/labels$")


def _body(model: type[BaseModel], data: Any) -> dict[str, Any]:
    """A request body as GitHub's model takes it: valid, and without unknown fields."""
    if not isinstance(data, dict):
        raise _Refused(400, "Problems parsing JSON")
    unknown = set(data) - {f.alias or n for n, f in model.model_fields.items()}
    if unknown:
        raise _Refused(422, f"unknown fields {sorted(unknown)} for {model.__name__}")
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise _Refused(422, f"Validation Failed: {exc}") from None
    return data


class Handler(ForkRoutes, RepoRoutes, PullRoutes, ReviewRoutes, JSONHandler):
    data: ClassVar[Standin]  # type: ignore[misc]
    content_type = "application/json; charset=utf-8"

    def _serve(self, method: str) -> None:
        d = self.data
        path, query, raw = self._request()
        body = json.loads(raw) if raw else None
        try:
            self._check(method, raw.decode())
            with d.lock:
                d.requests.append((method, path, body))
            status, answer, headers = self._route(method, path, query, body)
        except _Refused as refused:
            status, answer, headers = refused.status, {"message": str(refused)}, refused.headers
        except AssertionError as broken:  # the stand-in's own fault: the test fails
            d.problems.append(str(broken))
            status, answer, headers = 500, {"message": "stand-in error"}, {}
        self._send(status, answer, headers)

    def _check(self, method: str, raw: str) -> None:
        d = self.data
        if self.headers.get("authorization") != f"Bearer {d.token}":
            raise _Refused(401, "Bad credentials")
        if self.headers.get("x-github-api-version") != "2022-11-28":
            raise _Refused(400, "missing or unsupported X-GitHub-Api-Version")
        with d.lock:
            if d.rate_limited > 0:
                d.rate_limited -= 1
                if d.rate_limit_status == 429:
                    raise _Refused(429, "secondary rate limit", {"retry-after": "1"})
                reset = str(int(time.time()) + 1)
                headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
                raise _Refused(403, "API rate limit exceeded", headers)
            failing = d.fail_writes if method != "GET" else d.fail_reads
            if failing > 0:
                if method != "GET":
                    d.fail_writes -= 1
                else:
                    d.fail_reads -= 1
                raise _Refused(503, "Service Unavailable")
        if method != "GET" and d.hold_writes is not None and d.hold_when in raw:
            d.held.set()
            d.hold_writes.wait(timeout=60)
            if d.drop_held:
                raise _Refused(503, "Service Unavailable")

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        for pattern, methods in ROUTES:
            found = pattern.match(path)
            if found and method in methods:
                if not found.groups():  # not under /repos/{owner}/{repo}
                    return methods[method](self, query=query, body=body)
                if found.group(1) not in (self.data.repo, *self.data.repos):
                    raise _Refused(404, "Not Found")
                self.repo = found.group(1)
                return methods[method](self, *found.groups()[1:], query=query, body=body)
        self.data.problems.append(f"unknown request {method} {path}")
        raise _Refused(404, "Not Found")

    # ------------------------------------------------------------ endpoints

    def list_issues(self, *, query: dict[str, str], body: Any) -> Any:
        d = self.data
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _Refused(422, f"state {state!r}")
        wanted = {n for n in query.get("labels", "").split(",") if n}
        issues = [
            i
            for _, i in sorted(d.issues.items())
            if (state == "all" or i["state"] == state)
            and wanted <= {label["name"] for label in i["labels"]}
        ]
        if query.get("direction") == "desc":
            issues.reverse()
        return self._page("issues", issues, query, gh.Issue)

    def _page(self, what: str, rows: list[Any], query: dict[str, str], model: Any) -> Any:
        per_page = int(query.get("per_page", 30))
        if not 1 <= per_page <= PER_PAGE_MAX:
            raise _Refused(422, "per_page")
        page = int(query.get("page", 1))
        chunk = rows[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(rows):
            rest = {k: v for k, v in query.items() if k != "page"}
            params = "&".join(f"{k}={v}" for k, v in {**rest, "page": page + 1}.items())
            url = f"{self.data.url}{urlsplit(self.path).path}?{params}"
            headers["link"] = f'<{url}>; rel="next"'
        return 200, [_valid(model, r) for r in chunk], headers

    def get_issue(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        with self.data.lock:
            if self.data.odd_answers > 0:
                self.data.odd_answers -= 1
                return 200, ["not", "an", "issue"], {}
        issue = self.data.issues.get(int(number))
        if issue is None:
            raise _Refused(404, "Not Found")
        return 200, _valid(gh.Issue, issue), {}

    def edit_issue(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        change = _body(gh.ReposOwnerRepoIssuesIssueNumberPatchBody, body)
        with self.data.lock:
            issue = self.data.issues[int(number)]
            if "state" in change:
                issue["state"] = change["state"]
                issue["state_reason"] = change.get("state_reason")
                issue["closed_at"] = STAMP if change["state"] == "closed" else None
            if "labels" in change:
                issue["labels"] = [self.data.label(n) for n in change["labels"]]
        return 200, _valid(gh.Issue, issue), {}

    def set_labels(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        change = _body(gh.ReposOwnerRepoIssuesIssueNumberLabelsPutBodyOneof0, body)
        names = change.get("labels")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _Refused(422, "labels must be a list of names")
        with self.data.lock:
            issue = self.data.issues[int(number)]
            issue["labels"] = [self.data.label(n) for n in names]
        return (
            200,
            [
                _valid(gh.Label, {**la, "archived_at": None, "archived_by": None})
                for la in issue["labels"]
            ],
            {},
        )

    def add_labels(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        return self.add_pull_labels(number, body)

    def list_comments(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        return self._page("comments", self.data.comments_on(int(number)), query, gh.IssueComment)

    def create_comment(self, number: str, *, query: dict[str, str], body: Any) -> Any:
        change = _body(gh.ReposOwnerRepoIssuesIssueNumberCommentsPostBody, body)
        d = self.data
        with d.lock:
            if self.repo == d.repo and int(number) in d.issues:
                pass
            elif (self.repo, int(number)) not in d.pulls:
                raise _Refused(404, "Not Found")
            d._next_id += 1
            ident = d._next_id
            comment = {
                "id": ident,
                "node_id": f"IC_{ident}",
                "url": f"https://api.github.com/repos/{d.repo}/issues/comments/{ident}",
                "html_url": f"https://github.com/{self.repo}/issues/{number}#issuecomment-{ident}",
                "body": change["body"],
                "user": _user("planrun-bot"),
                "created_at": STAMP,
                "updated_at": STAMP,
                "issue_url": f"https://api.github.com/repos/{self.repo}/issues/{number}",
                "author_association": "NONE",
            }
            d.comments[ident] = _valid(gh.IssueComment, comment)
        return 201, comment, {}

    def edit_comment(self, ident: str, *, query: dict[str, str], body: Any) -> Any:
        change = _body(gh.ReposOwnerRepoIssuesCommentsCommentIdPatchBody, body)
        with self.data.lock:
            comment = self.data.comments.get(int(ident))
            if comment is None:
                raise _Refused(404, "Not Found")
            comment["body"] = change["body"]
        return 200, _valid(gh.IssueComment, comment), {}


ROUTES: list[tuple[re.Pattern[str], dict[str, Any]]] = [
    (ISSUES, {"GET": Handler.list_issues}),
    (ISSUE, {"GET": Handler.get_issue, "PATCH": Handler.edit_issue}),
    (COMMENTS, {"GET": Handler.list_comments, "POST": Handler.create_comment}),
    (COMMENT, {"PATCH": Handler.edit_comment}),
    (LABELS, {"PUT": Handler.set_labels, "POST": Handler.add_labels}),
    *PULL_ROUTES,
    *REPO_ROUTES,
    *REVIEW_ROUTES,
    *FORK_ROUTES,
]

"""Changesets: a project's verified work published as a GitHub pull request
(docs/batch-changes.md). Imported only by a plan that has a ``changeset:``."""

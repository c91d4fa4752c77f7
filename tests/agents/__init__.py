"""Helpers for the tests that run real agent CLIs: installing pinned versions, a scripted model."""

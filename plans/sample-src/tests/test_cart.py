"""A test that is not part of the batch refactor (the glob covers app/ only)."""

from app.cart import total


def test_total() -> None:
    assert total([1.0, 2.5]) == 3.5

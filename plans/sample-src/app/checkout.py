"""Checkout (sample code for plans/batch-refactor.yaml)."""

from app.cart import total


def pay(prices: list[float]) -> str:
    amount = total(prices)
    print(f"charging {amount}")
    return f"paid {amount}"

"""A shopping cart (sample code for plans/batch-refactor.yaml)."""


def total(prices: list[float]) -> float:
    print("computing the total of", len(prices), "prices")
    return round(sum(prices), 2)

"""Inventory (sample code for plans/batch-refactor.yaml): nothing to migrate here."""

STOCK = {"apple": 3, "pear": 0}


def in_stock(name: str) -> bool:
    return STOCK.get(name, 0) > 0

STOCK = {"apple": 3, "pear": 5}


def in_stock(name):
    return STOCK.get(name, 0) > 0

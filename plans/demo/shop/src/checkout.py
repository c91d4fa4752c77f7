def checkout(cart_total, discount=0):
    return max(cart_total - discount, 0)

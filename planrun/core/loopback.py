"""Whether a host name or address is this machine's loopback: what a server planrun starts
(the board, the Plane agent's webhooks) binds unless told otherwise, and what the board
takes as its own name in a ``Host`` header."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """``localhost``, or an IPv4 or IPv6 loopback address (no brackets, no port)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""A tiny service (sample code for plans/multi-project.yaml)."""

ROUTES = ["/health", "/orders"]


def handle(path: str) -> int:
    return 200 if path in ROUTES else 404

"""Issue trackers (SPEC §8, docs/trackers.md): items as a fan-out source, status back.

- :mod:`planrun.trackers.source`: :func:`~planrun.trackers.source.fetch_items`, the one
  read of a tracker while a plan compiles;
- :mod:`planrun.trackers.http`: one HTTP request at a time, rate limits and pagination;
- :mod:`planrun.trackers.github`: GitHub Issues' few endpoints, and items from issues;
- :mod:`planrun.trackers.status`: what an item should show at each moment (pure);
- :mod:`planrun.trackers.outbox`: the durable outbox in the store's journal and its
  delivery during and after a run.

The HTTP client (httpx) is an optional extra (``planrun[github]``): it is imported only
here, and only when a plan has a tracker.
"""

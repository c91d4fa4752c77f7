"""The live web board of a run (``planrun board``, docs/board.md).

A read-only page fed by the store (through :class:`planrun.state.store.StoreReader`), so it
shows a run while ``apply`` writes it and after it ended:

- :mod:`.snapshot` reads what the page shows (columns by status, the task page);
- :mod:`.graph` draws the task graph as server-rendered SVG, fan-outs collapsed;
- :mod:`.logtail` turns a growing log file into safe lines;
- :mod:`.render` renders the Jinja2 templates (autoescaped, every value redacted);
- :mod:`.http` is a small HTTP/1.1 server on trio streams with h11;
- :mod:`.app` routes requests to pages, static files and server-sent event streams.

Nothing here writes the store, and nothing but ``planrun board`` imports it: neither
``import planrun`` nor ``apply`` loads h11 or these modules.
"""

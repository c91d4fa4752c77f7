"""The pure core: outcomes, the graph, run state, the one decision, fingerprints, budgets,
usage, redaction, time formatting and typed events. No I/O, no trio, no store."""

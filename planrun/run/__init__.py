"""Putting one run together: prepare it from the decision, schedule it (trio), run each
attempt, land its work, and record it through the ledger."""

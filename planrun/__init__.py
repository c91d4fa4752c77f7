"""planrun: run fleets of coding agents and command-line jobs from a YAML plan kept in git."""

from __future__ import annotations

__version__ = "0.1.0.dev0"

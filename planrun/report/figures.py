"""Tokens and cost as people read them, for ``planrun status`` and the Markdown summary.

Plain functions of numbers (no models), so ``planrun status`` stays free of pydantic.
"""

from __future__ import annotations


def tokens_text(tokens: int | None) -> str:
    """``950``, ``9,500``, ``95.0k``, ``9.5M``; ``-`` when unknown."""
    if tokens is None:
        return "-"
    if tokens < 10_000:
        return f"{tokens:,}"
    if tokens < 1_000_000:
        return f"{tokens / 1000:.1f}k"
    return f"{tokens / 1_000_000:.1f}M"


def cost_text(cost_usd: float | None) -> str:
    """``$0.75``, ``$1,234.50``, ``<$0.01``; ``-`` when unknown."""
    if cost_usd is None:
        return "-"
    if 0 < cost_usd < 0.005:
        return "<$0.01"
    return f"${cost_usd:,.2f}"


def usage_text(input_tokens: int | None, output_tokens: int | None, cost: float | None) -> str:
    """``12.3k tokens (10.0k in, 2.3k out), $0.75``; empty when nothing is known."""
    if input_tokens is None and output_tokens is None and cost is None:
        return ""
    total = (input_tokens or 0) + (output_tokens or 0)
    text = f"{tokens_text(total)} tokens ({tokens_text(input_tokens or 0)} in, "
    text += f"{tokens_text(output_tokens or 0)} out)"
    return text + (f", {cost_text(cost)}" if cost is not None else "")


def duration_text(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m04s``, ``1h02m``; ``-`` when unknown (status, the board)."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"

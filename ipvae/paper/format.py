"""Markdown formatting of measured values (mean +- std over seeds) for the experiment reports."""

from __future__ import annotations


def value(number: float | None, digits: int = 3) -> str:
    if number is None:
        return "-"
    if abs(number) >= 1e4:
        return f"{number:,.0f}"
    return f"{number:.{digits}f}"


def spread(summary: dict | None, digits: int = 3, scale: float = 1.0) -> str:
    """'mean +- std' (std over seeds; just the mean for one seed)."""
    if not summary:
        return "-"
    mean = summary["mean"] * scale
    if summary.get("n", 1) > 1:
        return f"{value(mean, digits)} ± {value(summary['std'] * scale, digits)}"
    return value(mean, digits)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def figure(name: str, caption: str, prefix: str) -> str:
    return f"![{caption}]({prefix}{name})"


def over_seeds(seeds) -> str:
    """'mean ± std over seeds 0, 1, 2' (or 'one seed (0): no spread')."""
    seeds = list(seeds)
    if len(seeds) == 1:
        return f"one seed ({seeds[0]}): no spread"
    return "mean ± std over seeds " + ", ".join(str(seed) for seed in seeds)

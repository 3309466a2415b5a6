"""Pieces every benchmark report uses: the machine's load and how numbers are written in summaries."""

from __future__ import annotations

import json
import os
from pathlib import Path


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on the machine slows wall-clock figures."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def number(value) -> str:
    """A figure for a markdown table: thousands separated, fewer decimals the larger it is."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 1 else f"{value:.2f}"
    return f"{value:,}"


def write_report(report: dict, out: Path | None, summary: str) -> None:
    """The JSON report to `out` with the markdown summary on stdout, or the JSON on stdout."""
    text = json.dumps(report, indent=2)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(summary)
    else:
        print(text)

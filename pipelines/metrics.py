"""The AI-TOD figures a job reports: AITODMetric's result keys -> the tables' columns, in percent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# AITODMetric result keys -> table columns, in the tables' order.
AITOD_KEYS = {
    "aitod/AP": "AP",
    "aitod/AP50": "AP50",
    "aitod/AP75": "AP75",
    "aitod/APvt": "APvt",
    "aitod/APt": "APt",
    "aitod/APs": "APs",
    "aitod/APm": "APm",
}
METRIC_COLUMNS: tuple[str, ...] = tuple(AITOD_KEYS.values())


def table_metrics(raw: dict[str, Any]) -> dict[str, float | None]:
    """AI-TOD metrics in percent (AP .. APm) from an evaluator's results.

    Args:
        raw: ``runner.test()``'s dict; ``AITODMetric`` reports fractions in [0, 1] (or -1 when a size
            range has no ground truth).

    Returns:
        ``{"AP": 23.6, ...}``; a metric the evaluator did not report (or reported as -1) is ``None``.
    """
    out: dict[str, float | None] = {}
    for key, name in AITOD_KEYS.items():
        value = raw.get(key)
        out[name] = None if value is None or float(value) < 0 else round(100.0 * float(value), 2)
    return out


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table (the reports of tables and of training)."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]

"""ChartQA relaxed accuracy and plain exact-match accuracy (eval-metrics.md §3 and §4).

InternVL passes the *prediction* in the "target" slot of the pix2struct rule, so the relative error is divided by
the prediction and a prediction that parses to 0 always falls back to string comparison. ``order="internvl"``
reproduces that (needed for the 83.8 ChartQA figure); ``order="gold"`` divides by the gold answer (paper rule).
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_RELATIVE_CHANGE = 0.05
ORDERS = ("internvl", "gold")


def to_number(text: str) -> float | None:
    """Python float parsing, with a trailing ``%`` meaning /100; ``None`` when it does not parse."""
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def _relaxed(target: str, other: str) -> bool:
    """pix2struct rule with ``target`` as the denominator: numeric within 5 %, else case-insensitive equality."""
    other_value = to_number(other)
    target_value = to_number(target)
    if other_value is not None and target_value:
        return abs(other_value - target_value) / abs(target_value) <= MAX_RELATIVE_CHANGE
    return other.lower() == target.lower()


def relaxed_correct(prediction: str, answers: str | Sequence[str], order: str = "internvl") -> bool:
    """ChartQA relaxed correctness of one prediction against one gold string or a list of them.

    The prediction is stripped; gold strings are not (as in InternVL).
    """
    if order not in ORDERS:
        raise ValueError(f"unknown ChartQA argument order {order!r}; use one of {ORDERS}")
    golds = [answers] if isinstance(answers, str) else list(answers)
    pred = prediction.strip()
    if order == "internvl":
        return any(_relaxed(pred, gold) for gold in golds)
    return any(_relaxed(gold, pred) for gold in golds)


def exact_match(prediction: str, answers: str | Sequence[str]) -> bool:
    """AI2D / OCR-VQA accuracy: stripped, lowercased whole-string equality with any answer (no letter extraction)."""
    golds = [answers] if isinstance(answers, str) else list(answers)
    pred = prediction.strip().lower()
    return any(pred == gold.strip().lower() for gold in golds)

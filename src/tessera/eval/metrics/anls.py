"""ANLS, the DocVQA / InfographicVQA metric, as the RRC DocVQA script computes it (eval-metrics.md §2).

Quirks kept: the edit distance is taken on stripped, lowercased, whitespace-collapsed strings, but the
denominator is the length of the *raw* strings (uppercased); a score of exactly 0.5 survives the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

THRESHOLD = 0.5


def levenshtein(a: str, b: str) -> int:
    """Unit-cost edit distance (insert, delete, substitute) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _clean(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls(prediction: str, answers: Sequence[str], threshold: float = THRESHOLD) -> float:
    """ANLS of one prediction: 1 - min normalised distance over the answers, zeroed below ``threshold``."""
    if isinstance(answers, str):
        raise TypeError("ANLS answers must be a list of strings, not one string; wrap it in a list")
    if not answers:
        raise ValueError("ANLS needs at least one ground-truth answer; got none")
    if not isinstance(prediction, str):
        raise TypeError(f"ANLS prediction must be a string, got {type(prediction).__name__}")
    best = 1.0
    pred_clean = _clean(prediction)
    for answer in answers:
        length = max(len(answer.upper()), len(prediction.upper()))
        distance = 0.0 if length == 0 else levenshtein(_clean(answer), pred_clean) / length
        best = min(best, distance)
    score = 1.0 - best
    return 0.0 if score < threshold else score

"""MathVista testmini, rule-approximated (eval-metrics.md §9b).

The official pipeline asks GPT-4 to extract the answer from the response. Without an LLM this module applies
InternVL's deterministic rules (empty, exact choice text, int/float parse, "Answer:" quick extract) and then a
deterministic fallback (last option letter for multiple choice, last number for numeric answers). Scores made
this way must be reported as "rule-approximated": they trail GPT extraction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from tessera.eval.metrics.anls import levenshtein

_QUICK = re.compile(r"(?:final answer|answer)\s*[:：]\s*(.+)", re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+")
_PAREN_LETTER = re.compile(r"\(([a-zA-Z])\)")
_LONE_LETTER = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")


def extract_answer(response: str, problem: Mapping) -> str:
    """Rule-based stand-in for InternVL's GPT-4 extraction. ``problem`` holds question_type, answer_type, choices."""
    response = response.strip()
    if not response:
        return ""
    choices = list(problem.get("choices") or [])
    if problem.get("question_type") == "multi_choice" and response in choices:
        return response
    answer_type = problem.get("answer_type")
    if answer_type == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if answer_type == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    quick = _QUICK.search(response)
    if quick:
        tail = quick.group(1).strip().rstrip(".")
        if tail:
            response = tail
    if problem.get("question_type") == "multi_choice":
        letters = _PAREN_LETTER.findall(response) or _LONE_LETTER.findall(response)
        valid = [chr(ord("A") + i) for i in range(len(choices))]
        letters = [x.upper() for x in letters if x.upper() in valid]
        return letters[-1] if letters else response
    if answer_type in ("integer", "float"):
        numbers = _NUMBER.findall(response)
        return numbers[-1].replace(",", "") if numbers else response
    return response


def _most_similar(text: str, choices: Sequence[str]) -> str:
    distances = [levenshtein(text, str(c)) for c in choices]
    return str(choices[distances.index(min(distances))])


def normalize_extraction(extraction: str, problem: Mapping) -> str | None:
    """MathVista ``normalize_extracted_answer``: letters/nearest text for MC, int/round(float, precision) else."""
    question_type, answer_type = problem.get("question_type"), problem.get("answer_type")
    if question_type == "multi_choice":
        choices = list(problem.get("choices") or [])
        if not choices:
            return extraction
        extraction = extraction.strip()
        letter = _PAREN_LETTER.findall(extraction)
        if letter:
            extraction = letter[0].upper()
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if extraction in options:
            return str(choices[options.index(extraction)])
        return _most_similar(extraction, choices)
    try:
        if answer_type == "integer":
            return str(int(float(extraction)))
        if answer_type == "float":
            return str(round(float(extraction), int(problem["precision"])))
    except (ValueError, OverflowError, KeyError, TypeError):
        return None  # the reference's bare except: an unparseable extraction (or precision) scores wrong
    return str(extraction)


def mathvista_correct(response: str, problem: Mapping) -> bool:
    """Rule-approximated correctness of one response: normalised extraction == gold answer string."""
    normalized = normalize_extraction(extract_answer(response, problem), problem)
    return normalized is not None and normalized == str(problem.get("answer"))

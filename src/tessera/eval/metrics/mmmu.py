"""MMMU open-answer rule parser (MMMU's ``parse_open_response`` / ``eval_open``) used by InternVL; §9a.

Multiple-choice MMMU questions go through :func:`tessera.eval.metrics.choice.ivl_letter` instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL = {":", ",", ".", "!", "?", ";", "'"}
_NUM_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUM_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUM_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def extract_numbers(text: str) -> list[str]:
    """Comma-grouped, scientific and plain numbers found in ``text`` (in that order, as strings)."""
    return _NUM_COMMAS.findall(text) + _NUM_SCIENTIFIC.findall(text) + _NUM_SIMPLE.findall(text)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def normalize_candidate(text: str) -> list[float | str]:
    """A number (commas removed) becomes a float rounded to 2 dp; a string is lowercased, and a one-character
    string becomes the pair ``" x"``/``"x "`` so that it only matches as a separate word."""
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def _key_subresponses(response: str) -> list[str]:
    response = response.strip().strip(".").lower()
    subs = re.split(r"\.\s(?=[A-Z])|\n", response)
    keys = []
    for index, sub in enumerate(subs):
        indicators = _INDICATORS + (("=",) if index == len(subs) - 1 else ())
        shortest = None
        for indicator in indicators:
            if indicator in sub:
                tail = sub.split(indicator)[-1].strip()
                if shortest is None or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL:
            keys.append(shortest)
    return keys or [response]


def parse_open_response(response: str) -> list[float | str]:
    """Candidate answers of an open response: key tails after indicator words plus all numbers, normalised."""
    keys = _key_subresponses(response)
    raw = list(keys)
    for key in keys:
        raw.extend(extract_numbers(key))
    out: list[float | str] = []
    for item in raw:
        for cand in normalize_candidate(item):
            if cand not in out:
                out.append(cand)
    return out


def eval_open(gold: str | Sequence[str], candidates: Sequence[float | str]) -> bool:
    """Correct if a numeric candidate equals a numeric gold, or a normalised gold string is inside a string one."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    norm = [g for answer in golds for g in normalize_candidate(str(answer))]
    for cand in candidates:
        if isinstance(cand, str):
            if any(isinstance(g, str) and g in cand for g in norm):
                return True
        elif cand in norm:
            return True
    return False


def eval_multi_choice(gold: str | Sequence[str], letter: str) -> bool:
    """MMMU multiple choice: the post-processed letter equals the gold letter (or any of a gold list)."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    return letter in golds

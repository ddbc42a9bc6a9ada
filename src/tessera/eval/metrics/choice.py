"""Multiple-choice answer extraction (eval-metrics.md §6).

* :func:`ivl_letter`: InternVL's own post-processing (MMBench/CCBench/SEED/MMMU-MC/ScienceQA scripts, 1.5 era).
* :func:`can_infer`: VLMEvalKit's rule extractor as of May 2024 (MMBench/RealWorldQA/...); ``None`` = unresolved.
* :func:`seed_letter`: SEED's scorer, which ignores post-processing and takes the raw first character.
* :func:`circular_eval`: MMBench/CCBench CircularEval grouping (a question counts only if every copy is right).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_SEPARATORS = ".()[],:;!*#{}"
CIRCULAR_STRIDE = 1_000_000


def ivl_letter(prediction: str, options: Mapping[str, str]) -> str:
    """InternVL's letter post-processing; returns the (possibly unchanged) stripped prediction.

    ``options`` maps each present letter to its option text, in letter order.
    1. strip; 2. a single character is returned as is (even ``c`` or a non-option letter);
    3. a leading option letter wins; 4. else the first option (letter order) whose text is a substring;
    5. else the stripped prediction unchanged (never equal to a letter, so it scores wrong).
    """
    pred = prediction.strip()
    if len(pred) == 1:
        return pred
    if pred and pred[0] in options:
        return pred[0]
    for letter, text in options.items():
        if text in pred:
            return letter
    return pred


def _can_infer_option(answer: str, letters: Sequence[str]) -> str | None:
    if "Failed to obtain answer via API" in answer:
        return None
    if any(refusal in answer for refusal in REFUSALS):
        return "Z"
    for char in _SEPARATORS:
        answer = answer.replace(char, " ")
    tokens = answer.split()
    found = [letter for letter in letters if letter in tokens]
    if len(found) == 1:
        return found[0]
    if not found and "Z" in tokens:
        return "Z"
    return None


def _can_infer_text(answer: str, options: Mapping[str, str]) -> str | None:
    answer = answer.lower()
    candidates = [letter for letter, text in options.items() if str(text).lower() in answer]
    return candidates[0] if len(candidates) == 1 else None


def can_infer(prediction: str, options: Mapping[str, str]) -> str | None:
    """VLMEvalKit (May 2024) rule extraction: a lone option letter token, else a unique option-text match.

    Returns the letter, ``"Z"`` for refusals, or ``None`` when unresolved (VLMEvalKit would then ask an LLM
    judge; without one an unresolved answer counts wrong).
    """
    answer = str(prediction)
    return _can_infer_option(answer, list(options)) or _can_infer_text(answer, options)


def seed_letter(prediction: str) -> str:
    """SEED's rule: the raw prediction's first character when it is longer than one character (no strip)."""
    return prediction[0] if len(prediction) > 1 else prediction


def circular_eval(rows: Iterable[tuple[int, bool | None]]) -> dict[int, int]:
    """Group ``(index, correct)`` rows by ``index % 1e6``; a group scores 1 only if every copy is correct.

    ``correct`` is True/False for a resolved answer and None for an unresolved one (no judge: counts wrong).
    Returns ``{main_index: 0 or 1}``.
    """
    groups: dict[int, list[bool | None]] = {}
    for index, correct in rows:
        groups.setdefault(int(index) % CIRCULAR_STRIDE, []).append(correct)
    return {key: int(all(c is True for c in values)) for key, values in groups.items()}

"""OCRBench v1 hit rule and category groups (eval-metrics.md §5)."""

from __future__ import annotations

from collections.abc import Sequence

HME_CATEGORY = "Handwritten Mathematical Expression Recognition"
HME_DATASET = "HME100k"
TEXT_RECOGNITION = (
    "Regular Text Recognition", "Irregular Text Recognition", "Artistic Text Recognition",
    "Handwriting Recognition", "Digit String Recognition", "Non-Semantic Text Recognition",
)
# Report groups: Text Recognition is the sum of the six recognition categories.
GROUPS = {
    "Text Recognition": TEXT_RECOGNITION,
    "Scene Text-centric VQA": ("Scene Text-centric VQA",),
    "Doc-oriented VQA": ("Doc-oriented VQA",),
    "Key Information Extraction": ("Key Information Extraction",),
    "Handwritten Mathematical Expression Recognition": (HME_CATEGORY,),
}


def ocrbench_hit(prediction: str, answers: str | Sequence[str], hme: bool = False) -> int:
    """1 when any answer is a substring of the prediction after OCRBench's normalisation, else 0.

    Non-HME: lowercase, strip, newline -> space (no whitespace collapsing). HME: strip, newline -> space, then
    delete every space; case-sensitive.
    """
    golds = [answers] if isinstance(answers, str) else list(answers)
    if hme:
        pred = prediction.strip().replace("\n", " ").replace(" ", "")
        return int(any(g.strip().replace("\n", " ").replace(" ", "") in pred for g in golds))
    pred = prediction.lower().strip().replace("\n", " ")
    return int(any(g.lower().strip().replace("\n", " ") in pred for g in golds))

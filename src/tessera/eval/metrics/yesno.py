"""Yes/no benchmarks: MME (acc + acc+), POPE (F1 per split) and HallusionBench (aAcc, fAcc, qAcc); §7-8."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tessera.eval.metrics.vqa import process_punctuation

MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                  "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def mme_clean(response: str) -> str:
    """InternVL's MME generation-time clean-up: 不是/是/否 -> No/Yes/No, lowercase, true/false, drop CJK."""
    text = response.replace("\n", "").replace("不是", "No").replace("是", "Yes").replace("否", "No")
    text = text.lower().replace("true", "yes").replace("false", "no")
    return _CJK.sub("", text)


def mme_label(response: str) -> str:
    """``yes``/``no``/``other`` from a raw response: clean-up, exact match, else the first 4 characters."""
    text = mme_clean(response).lower()
    if text in ("yes", "no"):
        return text
    prefix = text[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def mme_subtask_score(images: Iterable[Sequence[bool]]) -> dict[str, float]:
    """acc, acc+ (both in %) and score = acc + acc+ for one subtask, given per-image question correctness."""
    images = [list(i) for i in images]
    questions = [c for image in images for c in image]
    if not questions:
        raise ValueError("MME subtask has no questions")
    acc = 100.0 * sum(questions) / len(questions)
    acc_plus = 100.0 * sum(all(image) for image in images) / len(images)
    return {"acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus}


def pope_label(response: str) -> str:
    """POPE answer mapping: first sentence, commas removed, single-space split; No/not/no -> ``no`` else ``yes``."""
    text = response.split(".")[0] if "." in response else response
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Precision, recall, F1, accuracy, yes-ratio with ``yes`` as positive (labels/preds are yes/no strings).

    The reference divides by zero when nothing is predicted positive; here such ratios are reported as 0.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"POPE: {len(predictions)} predictions for {len(labels)} labels (matched by order)")
    if not labels:
        raise ValueError("POPE split has no questions")
    pairs = list(zip(predictions, labels))
    tp = sum(p == "yes" and g == "yes" for p, g in pairs)
    fp = sum(p == "yes" and g != "yes" for p, g in pairs)
    tn = sum(p != "yes" and g != "yes" for p, g in pairs)
    fn = sum(p != "yes" and g == "yes" for p, g in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": (tp + tn) / len(pairs),
            "yes_ratio": sum(p == "yes" for p in predictions) / len(pairs), "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def hallusion_label(response: str) -> str:
    """VLMEvalKit yes/no extraction: lowercase, punctuation pass, split; Yes/No only if the other is absent."""
    words = process_punctuation(response.lower(), official=True).split()
    if "yes" in words and "no" not in words:
        return "Yes"
    if "no" in words and "yes" not in words:
        return "No"
    return "Unknown"


def hallusion_scores(rows: Sequence[tuple[str, str, bool]]) -> dict[str, float]:
    """aAcc, fAcc, qAcc (in %) and their mean from ``(row index, l2-category, correct)`` rows.

    set_id, figure_id and question_id are the 4th, 5th and 6th ``_``-separated fields of the row index.
    """
    if not rows:
        raise ValueError("HallusionBench: no rows to score")
    figures: dict[tuple[str, str, str], list[bool]] = {}
    questions: dict[tuple[str, str, str], list[bool]] = {}
    for index, l2, correct in rows:
        fields = str(index).split("_")
        if len(fields) < 6:
            raise ValueError(f"HallusionBench index {index!r} must have at least 6 '_'-separated fields")
        figures.setdefault((l2, fields[3], fields[4]), []).append(correct)
        questions.setdefault((l2, fields[3], fields[5]), []).append(correct)
    a_acc = 100.0 * sum(c for _, _, c in rows) / len(rows)
    f_acc = 100.0 * sum(all(v) for v in figures.values()) / len(figures)
    q_acc = 100.0 * sum(all(v) for v in questions.values()) / len(questions)
    return {"aAcc": a_acc, "fAcc": f_acc, "qAcc": q_acc, "overall": (a_acc + f_acc + q_acc) / 3}

"""Scorers for the InternVL 1.5 benchmark suite, as defined in the project's eval-metrics notes.

Each function scores single predictions; benchmark-level aggregation lives with each benchmark in
:mod:`tessera.eval.benchmarks`.
"""

from tessera.eval.metrics.anls import anls, levenshtein
from tessera.eval.metrics.choice import can_infer, circular_eval, ivl_letter, seed_letter
from tessera.eval.metrics.mathvista import extract_answer, mathvista_correct, normalize_extraction
from tessera.eval.metrics.mmmu import eval_multi_choice, eval_open, parse_open_response
from tessera.eval.metrics.ocrbench import ocrbench_hit
from tessera.eval.metrics.relaxed import exact_match, relaxed_correct
from tessera.eval.metrics.vqa import normalize_internvl, normalize_official, vqa_accuracy
from tessera.eval.metrics.yesno import (
    hallusion_label,
    hallusion_scores,
    mme_label,
    mme_subtask_score,
    pope_label,
    pope_metrics,
)

__all__ = [
    "anls", "levenshtein", "can_infer", "circular_eval", "ivl_letter", "seed_letter", "extract_answer",
    "mathvista_correct", "normalize_extraction", "eval_multi_choice", "eval_open", "parse_open_response",
    "ocrbench_hit", "exact_match", "relaxed_correct", "normalize_internvl", "normalize_official", "vqa_accuracy",
    "hallusion_label", "hallusion_scores", "mme_label", "mme_subtask_score", "pope_label", "pope_metrics",
]

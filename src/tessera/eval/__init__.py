"""Benchmark evaluation for tessera: InternVL 1.5's benchmarks, scored exactly as the reference scorers score.

* :mod:`tessera.eval.metrics`: the scorers (VQA accuracy, ANLS, relaxed accuracy, OCRBench, MCQ, MME, ...).
* :mod:`tessera.eval.benchmarks`: readers for the published files + official prompts and settings.
* :func:`evaluate`: predict (resumable JSONL, data-parallel under torchrun) and score; :func:`score_run`
  re-scores saved predictions; :func:`write_report` writes the summary table and the max_tiles plot.
* CLI: ``tessera eval`` (:mod:`tessera.eval.cli`) or ``python -m tessera.eval``.
"""

from tessera.eval.benchmarks import BENCHMARKS, Benchmark, Item, Score, get_benchmark
from tessera.eval.report import write_report
from tessera.eval.runner import evaluate, load_items, predict, score_run

__all__ = ["BENCHMARKS", "Benchmark", "Item", "Score", "evaluate", "get_benchmark", "load_items", "predict",
           "score_run", "write_report"]

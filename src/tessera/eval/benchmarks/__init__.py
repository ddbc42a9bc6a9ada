"""Benchmark registry: ``BENCHMARKS[name]`` gives the reader, official settings and scorer of one benchmark."""

from tessera.eval.benchmarks import choice, reasoning, synth, vqa, yesno  # noqa: F401  (registration)
from tessera.eval.benchmarks.base import BENCHMARKS, Benchmark, Item, Score


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark called ``name`` (case-insensitive, ``-`` accepted for ``_``)."""
    key = name.strip().lower().replace("-", "_")
    if key not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[key]


__all__ = ["BENCHMARKS", "Benchmark", "Item", "Score", "get_benchmark"]

"""What a benchmark is: items to ask, official generation settings, and a scorer over saved predictions.

A prediction record (one JSONL line) is ``{"id", "prompt", "prediction", "answer", "meta"}``; it carries the
ground truth so that scoring never needs the data directory again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHORT_ANSWER = "Answer the question using a single word or phrase."
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
MC_INSTRUCTION_CN = "请直接回答选项字母。"


@dataclass
class Item:
    """One question. ``images``: image sources (path, bytes, base64 str, PIL), possibly empty.

    ``merge_images``: all images are tiled separately and passed as ONE tile block behind one ``<image>``
    (InternVL's MMMU evaluation); otherwise each image gets its own placeholder.
    """

    id: str
    prompt: str
    images: list[Any] = field(default_factory=list)
    answer: Any = None
    meta: dict = field(default_factory=dict)
    merge_images: bool = False


@dataclass
class Score:
    """A benchmark result. ``score`` is the headline number on the paper's scale (None: no ground truth)."""

    score: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    note: str = ""

    def to_dict(self) -> dict:
        return {"score": self.score, "metrics": self.metrics, "n": self.n, "note": self.note}


class Benchmark:
    """Base class. Subclasses set the class attributes and implement :meth:`load` and :meth:`score`.

    ``max_tiles=None`` means "the model config's max_dynamic_patch"; ``unit`` describes the headline scale.
    """

    name: str = ""
    max_tiles: int | None = 6
    max_new_tokens: int = 100
    unit: str = "%"
    description: str = ""

    def load(self, data_dir: Path) -> list[Item]:
        raise NotImplementedError

    def score(self, records: list[dict], options: dict | None = None) -> Score:
        """Score prediction records. ``options``: scorer switches (``vqa_normalizer``, ``chartqa_order``)."""
        raise NotImplementedError

    def check(self, data_dir: Path) -> Path:
        if not data_dir.is_dir():
            what = "is a file, not a directory" if data_dir.exists() else "does not exist"
            raise FileNotFoundError(f"{self.name}: data directory {data_dir} {what}")
        return data_dir


BENCHMARKS: dict[str, Benchmark] = {}


def register(cls: type[Benchmark]) -> type[Benchmark]:
    """Class decorator: add one instance to :data:`BENCHMARKS` under ``cls.name``."""
    if not cls.name or cls.name in BENCHMARKS:
        raise ValueError(f"benchmark name {cls.name!r} is empty or already registered")
    BENCHMARKS[cls.name] = cls()
    return cls


def without_answers(records: list[dict]) -> bool:
    return any(r.get("answer") is None for r in records)


def no_ground_truth(records: list[dict]) -> Score:
    return Score(None, n=len(records),
                 note="no ground truth in these records (a test split?): predictions only, submit them")


def mean(values: list[float]) -> float:
    if not values:
        raise ValueError("nothing to average: no records to score")
    return sum(values) / len(values)


def grouped_mean(records: list[dict], key: Callable[[dict], str], value: Callable[[dict], float]) -> dict:
    groups: dict[str, list[float]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(value(r))
    return {k: 100.0 * mean(v) for k, v in sorted(groups.items())}

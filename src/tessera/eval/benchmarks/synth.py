"""The project's synthetic held-out split (``tessera.synth``), read from its meta JSON + JSONL annotation.

Meta: ``{name: {"root": image root, "annotation": jsonl path, ...}}``; each JSONL line: ``{"id", "image",
"conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": answer}], "task"}``.
Only the first question/answer turn of each line is asked. Exact match (case-insensitive, stripped), per task
and overall; max_tiles defaults to the model config's ``max_dynamic_patch``.
"""

from __future__ import annotations

from pathlib import Path

from tessera.eval.benchmarks.base import (
    Benchmark,
    Item,
    Score,
    grouped_mean,
    mean,
    no_ground_truth,
    register,
    without_answers,
)
from tessera.eval.data import read_json, read_jsonl, resolve_image
from tessera.eval.metrics import exact_match

_PREFIX = "<image>\n"


def _is_meta(path: Path) -> bool:
    try:
        data = read_json(path)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and bool(data) and all(
        isinstance(v, dict) and "annotation" in v for v in data.values())


def find_meta(data: Path) -> Path:
    """``data`` itself if it is a meta file, else the one meta JSON in it (a ``*test*`` one if several)."""
    if data.is_file():
        if not _is_meta(data):
            raise ValueError(f"synth: {data} is not a meta JSON ({{name: {{'root', 'annotation'}}}})")
        return data
    metas = sorted(p for p in data.glob("*.json") if _is_meta(p))
    if len(metas) > 1:
        metas = [p for p in metas if "test" in p.name] or metas
    if len(metas) != 1:
        found = ", ".join(p.name for p in metas) or "none"
        raise FileNotFoundError(f"synth: need exactly one meta JSON (or one named *test*) in {data}; found {found}")
    return metas[0]


def _resolve(value: str, base: Path, kind: str) -> Path:
    path = Path(value)
    for candidate in (path, base / path, base / path.name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"synth: {kind} {value!r} not found (also looked in {base})")


@register
class Synth(Benchmark):
    name, max_tiles, max_new_tokens = "synth", None, 64

    def load(self, data_dir: Path) -> list[Item]:
        meta_path = find_meta(data_dir)
        meta = read_json(meta_path)
        items = []
        for name, entry in meta.items():
            annotation = _resolve(entry["annotation"], meta_path.parent, "annotation")
            root = Path(entry.get("root") or meta_path.parent)
            bases = [root, meta_path.parent] if root.is_dir() else [meta_path.parent]
            for n, line in enumerate(read_jsonl(annotation), start=1):
                turns = line.get("conversations") or []
                if len(turns) < 2 or turns[0].get("from") != "human" or turns[1].get("from") != "gpt":
                    raise ValueError(f"{annotation}:{n}: expected conversations [human, gpt, ...]")
                question = turns[0]["value"]
                question = question[len(_PREFIX):] if question.startswith(_PREFIX) else question
                images = line.get("image") or []
                images = [images] if isinstance(images, str) else list(images)
                images = [resolve_image(i, bases, "synth") for i in images]
                item_id = str(line.get("id", n)) if len(meta) == 1 else f"{name}/{line.get('id', n)}"
                items.append(Item(item_id, question, images, turns[1]["value"],
                                  {"task": line.get("task", "all"), "source": name}))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)

        def hit(r):
            return float(exact_match(r["prediction"], str(r["answer"])))

        acc = mean([hit(r) for r in records])
        return Score(100.0 * acc, {"accuracy": 100.0 * acc,
                                   "per_task": grouped_mean(records, lambda r: str(r["meta"]["task"]), hit)},
                     len(records))

"""Run benchmarks: generate predictions (sharded, batched, resumable) then score them from the saved files.

Layout of ``out_dir``::

    <benchmark>/tiles-<N>/run.json           settings the predictions were made with (pinned for resume)
    <benchmark>/tiles-<N>/predictions.jsonl  {"id", "prompt", "prediction", "answer", "meta"} per line
    <benchmark>/tiles-<N>/scores.json        the benchmark's score (re-derived from predictions.jsonl)
    summary.md, summary.json, tiles_sweep.png   see tessera.eval.report

The model is any object with ``batch_chat(questions, images, *, max_tiles, max_new_tokens, temperature)``
(``tessera.load`` returns one); ``prepare_images`` is used, when present, for MMMU's one-block multi-image input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tessera.eval import store
from tessera.eval.benchmarks import Benchmark, Item, get_benchmark
from tessera.eval.distributed import Dist


@dataclass
class RunSettings:
    """One (benchmark, max_tiles) run. ``max_tiles``/``max_new_tokens`` are already resolved to numbers."""

    benchmark: str
    model: str
    max_tiles: int
    max_new_tokens: int
    batch_size: int = 1
    limit: int | None = None
    score_options: dict = field(default_factory=dict)

    def info(self) -> dict:
        return {"benchmark": self.benchmark, "model": self.model, "max_tiles": self.max_tiles,
                "max_new_tokens": self.max_new_tokens}


def run_dir_for(out_dir: Path, benchmark: str, max_tiles: int) -> Path:
    return Path(out_dir) / benchmark / f"tiles-{max_tiles}"


def resolve_max_tiles(bench: Benchmark, vlm: Any) -> int:
    """The benchmark's official max_tiles, or the model config's max_dynamic_patch when it has none."""
    if bench.max_tiles is not None:
        return bench.max_tiles
    value = getattr(getattr(vlm, "config", None), "max_dynamic_patch", None)
    if value is None:
        raise ValueError(f"{bench.name}: default max_tiles comes from the model config's max_dynamic_patch, "
                         f"which this model does not have; pass --max-tiles")
    return int(value)


def load_items(bench: Benchmark, data_dir: Path, limit: int | None = None) -> list[Item]:
    """Read the benchmark's items, check ids are unique, keep the first ``limit``."""
    items = bench.load(Path(data_dir))
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"{bench.name}: duplicate item id {item.id!r} in {data_dir}")
        seen.add(item.id)
    if limit is not None:
        if limit <= 0:
            raise ValueError(f"--limit must be positive, got {limit}")
        items = items[:limit]
    if not items:
        raise ValueError(f"{bench.name}: no items found in {data_dir}")
    return items


def generate_batch(vlm: Any, items: Sequence[Item], max_tiles: int, max_new_tokens: int) -> list[str]:
    """Answer a batch of items greedily; returns one string per item, in order."""
    answers: list[str | None] = [None] * len(items)
    merged = [i for i, it in enumerate(items)
              if it.merge_images and len(it.images) > 1 and callable(getattr(vlm, "prepare_images", None))]
    plain = [i for i in range(len(items)) if i not in merged]
    common = dict(max_tiles=max_tiles, max_new_tokens=max_new_tokens, temperature=0.0)
    if plain:
        out = vlm.batch_chat([items[i].prompt for i in plain], [items[i].images or None for i in plain], **common)
        for i, text in zip(plain, _checked(out, len(plain))):
            answers[i] = text
    if merged:
        import torch

        blocks = [vlm.prepare_images(items[i].images, max_tiles)[0] for i in merged]
        out = vlm.batch_chat([items[i].prompt for i in merged], pixel_values=torch.cat(blocks),
                             num_patches_list=[b.shape[0] for b in blocks], **common)
        for i, text in zip(merged, _checked(out, len(merged))):
            answers[i] = text
    return answers  # type: ignore[return-value]


def _checked(out: Any, n: int) -> list[str]:
    if not isinstance(out, (list, tuple)) or len(out) != n or not all(isinstance(t, str) for t in out):
        raise TypeError(f"batch_chat must return a list of {n} strings, got {type(out).__name__}")
    return list(out)


def predict(vlm: Any, items: Sequence[Item], run_dir: Path, settings: RunSettings, dist: Dist | None = None,
            progress: bool = True) -> list[dict] | None:
    """Generate the missing predictions of ``items`` into ``run_dir``; every rank calls this.

    Returns the merged records (in item order) on rank 0, None elsewhere.
    """
    dist = dist or Dist()
    run_dir.mkdir(parents=True, exist_ok=True)
    store.check_run_info(run_dir, settings.info())  # every rank raises alike on a mismatch
    dist.barrier()
    if dist.is_main and not (run_dir / store.RUN_INFO).exists():
        store.write_json_atomic(run_dir / store.RUN_INFO, settings.info())
    done = store.read_done(run_dir)
    dist.barrier()  # every rank has read the same state before anyone appends
    todo = [it for it in items if it.id not in done]
    mine = todo[dist.rank :: dist.world]
    writer = store.Appender(store.rank_file(run_dir, dist.rank))
    bar = tqdm(total=len(mine), desc=f"{settings.benchmark} tiles={settings.max_tiles}", unit="q",
               disable=not (progress and dist.is_main), dynamic_ncols=True)
    try:
        for start in range(0, len(mine), settings.batch_size):
            batch = mine[start : start + settings.batch_size]
            for item, text in zip(batch, generate_batch(vlm, batch, settings.max_tiles, settings.max_new_tokens)):
                writer.write({"id": item.id, "prompt": item.prompt, "prediction": text, "answer": item.answer,
                              "meta": item.meta})
            bar.update(len(batch))
    finally:
        bar.close()
        writer.close()
    dist.barrier()
    if not dist.is_main:
        return None
    records = store.merge(run_dir, [it.id for it in items])
    wanted = {it.id for it in items}
    return [r for r in records if r["id"] in wanted]


def score_records(benchmark: str, records: list[dict], run_dir: Path, info: dict,
                  options: dict | None = None) -> dict:
    """Score records with the benchmark's scorer and write ``scores.json`` next to them."""
    result = {**info, **get_benchmark(benchmark).score(records, options or {}).to_dict()}
    result["unit"] = get_benchmark(benchmark).unit
    store.write_json_atomic(run_dir / store.SCORES, result)
    return result


def score_run(run_dir: Path, options: dict | None = None) -> dict:
    """Re-score a finished run directory from its ``predictions.jsonl`` (no model, no data needed)."""
    run_dir = Path(run_dir)
    info_path = run_dir / store.RUN_INFO
    if not info_path.exists():
        raise FileNotFoundError(f"{run_dir}: no {store.RUN_INFO}; not a tessera eval run directory")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if any(run_dir.glob("predictions.rank*.jsonl")):
        store.merge(run_dir, [])
    records = store.read_records(run_dir / store.MERGED)
    if not records:
        raise ValueError(f"{run_dir}: no predictions to score")
    return score_records(info["benchmark"], records, run_dir, info, options)


def find_runs(out_dir: Path, benchmarks: Sequence[str] | None = None) -> list[Path]:
    """Run directories under ``out_dir`` (optionally only those of ``benchmarks``), sorted."""
    runs = sorted(p.parent for p in Path(out_dir).glob(f"*/tiles-*/{store.RUN_INFO}"))
    if benchmarks:
        names = {get_benchmark(b).name for b in benchmarks}
        runs = [r for r in runs if r.parent.name in names]
    return sorted(runs, key=lambda r: (r.parent.name, int(r.name.split("-")[1])))


def evaluate(vlm: Any, benchmarks: Sequence[str], data_dir: Path, out_dir: Path, *, model: str,
             max_tiles: Sequence[int] | None = None, max_new_tokens: int | None = None, batch_size: int = 1,
             limit: int | None = None, score_options: dict | None = None, dist: Dist | None = None,
             progress: bool = True) -> list[dict]:
    """Predict and score every (benchmark, max_tiles) pair; returns the score dicts (on rank 0 only)."""
    dist = dist or Dist()
    data_dir, out_dir = Path(data_dir).expanduser(), Path(out_dir).expanduser()
    if batch_size <= 0:
        raise ValueError(f"--batch-size must be positive, got {batch_size}")
    results = []
    for name in benchmarks:
        bench = get_benchmark(name)
        bench_data = data_dir / bench.name if (data_dir / bench.name).is_dir() else data_dir
        items = load_items(bench, bench_data, limit)
        for tiles in max_tiles or [resolve_max_tiles(bench, vlm)]:
            settings = RunSettings(bench.name, model, int(tiles), max_new_tokens or bench.max_new_tokens,
                                   batch_size, limit, score_options or {})
            run_dir = run_dir_for(out_dir, bench.name, settings.max_tiles)
            records = predict(vlm, items, run_dir, settings, dist, progress)
            if dist.is_main:
                results.append(score_records(bench.name, records, run_dir, settings.info(), score_options))
    return results

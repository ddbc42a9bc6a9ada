"""Prediction files: per-rank append-only JSONL while generating, one merged ``predictions.jsonl`` after.

Everything is resumable: whatever lines reached the disk count as done (a line cut by a crash is dropped and
regenerated), and the run's settings are pinned in ``run.json`` so a resume cannot silently mix settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

MERGED = "predictions.jsonl"
RUN_INFO = "run.json"
SCORES = "scores.json"
PINNED = ("benchmark", "model", "max_tiles", "max_new_tokens")


def rank_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"predictions.rank{rank}.jsonl"


def read_records(path: Path) -> list[dict]:
    """Records of one JSONL file; a truncated last line (interrupted write) is ignored, other bad lines raise."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if n == len(lines):  # last line without its newline: cut short by an interruption
                break
            raise ValueError(f"{path}:{n}: corrupt prediction line ({e}); delete the line to regenerate it") from e
    return records


def read_done(run_dir: Path) -> dict[str, dict]:
    """All records on disk for this run (merged file first, then every rank file); first record per id wins."""
    done: dict[str, dict] = {}
    for path in [run_dir / MERGED, *sorted(run_dir.glob("predictions.rank*.jsonl"))]:
        for record in read_records(path):
            done.setdefault(str(record["id"]), record)
    return done


class Appender:
    """Append records to a JSONL file, one flushed line each; repairs a half-written last line first."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size:
            data = path.read_bytes()
            if not data.endswith(b"\n"):
                path.write_bytes(data[: data.rfind(b"\n") + 1])
        self.file = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def write_jsonl_atomic(path: Path, records: Sequence[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def merge(run_dir: Path, order: Sequence[str]) -> list[dict]:
    """Merge every record into ``predictions.jsonl`` (ids in ``order`` first, then any others) and remove the
    rank files. Returns the merged records."""
    done = read_done(run_dir)
    records = [done[i] for i in order if i in done]
    wanted = set(order)
    records += [r for i, r in done.items() if i not in wanted]
    write_jsonl_atomic(run_dir / MERGED, records)
    for path in run_dir.glob("predictions.rank*.jsonl"):
        path.unlink()
    return records


def check_run_info(run_dir: Path, info: dict) -> None:
    """Refuse to resume a run directory made with other settings (model, max_tiles, max_new_tokens...)."""
    path = run_dir / RUN_INFO
    if not path.exists():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    diff = {k: (old.get(k), info.get(k)) for k in PINNED if old.get(k) != info.get(k)}
    if diff:
        details = "; ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{run_dir} holds predictions made with other settings ({details}). "
                         f"Use another --out directory or delete {run_dir} to start over.")

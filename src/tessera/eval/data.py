"""Readers for benchmark files as they are published: JSON, JSONL, TSV (base64 images), parquet, image folders.

All errors name the file and say what was expected, so a wrongly laid out data directory is easy to fix.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# pandas' default NA strings: VLMEvalKit and InternVL read their TSVs with pandas, so these cells are "missing".
NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".JPG", ".JPEG", ".PNG")


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON object per line ({e})") from e
    return rows


def read_tsv(path: Path) -> list[dict[str, str | None]]:
    """Rows of a tab-separated file with a header; pandas NA strings become ``None``."""
    csv.field_size_limit(sys.maxsize)  # base64 images make very long cells
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty TSV (expected a header row)")
        return [{k: (None if v is None or v in NA_STRINGS else v) for k, v in row.items()} for row in reader]


def read_parquet(path: Path) -> list[dict]:
    """Rows of a parquet file as dicts (image columns stay ``{"bytes", "path"}`` structs)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow is in the eval extra
        raise ImportError("reading parquet benchmarks needs pyarrow: pip install 'tessera[eval]'") from e
    return pq.read_table(path).to_pylist()


def find_file(root: Path, patterns: Sequence[str], what: str) -> Path:
    """The single file under ``root`` (recursively) matching the first pattern that matches anything."""
    for pattern in patterns:
        hits = sorted(p for p in root.rglob(pattern) if p.is_file())
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            listing = ", ".join(str(h.relative_to(root)) for h in hits[:6])
            raise FileNotFoundError(
                f"{what}: several files match {pattern!r} under {root}: {listing}. Point --data at a directory "
                f"holding only the split to evaluate."
            )
    raise FileNotFoundError(f"{what}: no file matching {' or '.join(patterns)} under {root}")


def find_files(root: Path, pattern: str, what: str) -> list[Path]:
    hits = sorted(p for p in root.rglob(pattern) if p.is_file())
    if not hits:
        raise FileNotFoundError(f"{what}: no file matching {pattern!r} under {root}")
    return hits


def resolve_image(rel: str, bases: Iterable[Path], what: str) -> str:
    """Find image ``rel`` below one of ``bases``; also tries dropping leading path components of ``rel``
    (published files often carry paths relative to some other repository's root)."""
    parts = Path(rel).parts
    bases = list(bases)
    for base in bases:
        for start in range(len(parts)):
            candidate = base.joinpath(*parts[start:])
            if candidate.is_file():
                return str(candidate)
    raise FileNotFoundError(f"{what}: image {rel!r} not found under {', '.join(str(b) for b in bases)}")


def tsv_image_column(rows: list[dict], path: Path) -> list[str | None]:
    """Base64 images of a VLMEvalKit TSV; a short all-digit cell refers to the image of the row with that index."""
    by_index = {str(r.get("index")): r.get("image") for r in rows}
    out = []
    for row in rows:
        image = row.get("image")
        if image is not None and len(image) <= 64 and image.strip().isdigit():
            ref = by_index.get(image.strip())
            if ref is None or (len(ref) <= 64 and ref.strip().isdigit()):
                raise ValueError(f"{path}: row {row.get('index')} refers to image of row {image}, which has none")
            image = ref
        out.append(image)
    return out


def image_bytes(cell: Any) -> bytes | None:
    """The bytes of a parquet/HF image struct (``{"bytes", "path"}``), raw bytes, or None."""
    if cell is None:
        return None
    if isinstance(cell, (bytes, bytearray)):
        return bytes(cell)
    if isinstance(cell, dict) and cell.get("bytes") is not None:
        return bytes(cell["bytes"])
    return None


def folder_image(folder: Path, stem: str) -> Path | None:
    """``folder/stem.<any image suffix>`` if it exists."""
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None

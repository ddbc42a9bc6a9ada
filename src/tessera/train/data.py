"""Training data in the official InternVL format: a meta JSON naming JSONL annotation files (fact sheet 7.3).

Meta: ``{name: {"root", "annotation", "data_augment", "repeat_time", "length", ["max_dynamic_patch"]}}``.
Relative ``root``/``annotation`` paths are resolved against the meta file's folder first, then the
current directory. ``repeat_time`` r: r < 1 keeps the first floor(n * r) lines; r >= 1 repeats the lines
int(r) times plus the first floor(n * frac(r)) lines.

JSONL sample: ``{"image": str | [str, ...] | absent, "video": str | absent, "conversations": [{"from":
"human"|"gpt", "value": str}, ...], "length": int (optional)}``. Lines are parsed lazily; every problem
(malformed JSON, missing or unreadable image, an image cut by ``max_seq_length``, ...) makes
:meth:`TrainDataset.__getitem__` return a :class:`Skipped` record instead of raising, so a run never dies
on one bad sample; the engine counts and reports them.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..images import ImageError, ImageNotFound, load_image
from ..preprocess import dynamic_tiles
from ..templates import IMAGE_PLACEHOLDER, IMG_CONTEXT_TOKEN, Template, image_tokens
from ..tokenizer import Tokenizer
from .conversation import SkipSample, encode_conversation, normalize_turns

REASONS = {
    "malformed_line": "line is not a JSON object",
    "malformed_sample": "sample does not follow the format (conversations / roles / placeholders)",
    "image_missing": "image file not found",
    "image_unreadable": "image file cannot be decoded",
    "video_unreadable": "video cannot be decoded (or PyAV is not installed)",
    "image_truncated": "max_seq_length would cut through an image's tokens",
    "no_labels": "no answer tokens (none in the sample or all past max_seq_length)",
    "tokenization_mismatch": "the tokenizer merges across an answer boundary",
    "too_many_images": "more images than data.max_images",
    "image_tokens_in_text": "the text itself contains image tokens (<img>, </img>, <IMG_CONTEXT>)",
    "sample_error": "unexpected error while building the sample (see the example)",
}


class DataError(ValueError):
    """A meta file or dataset that cannot be used at all (bad meta JSON, missing annotation file)."""


@dataclass
class DatasetSpec:
    """One entry of the meta JSON."""

    name: str
    root: Path
    annotation: Path
    data_augment: bool = False
    repeat_time: float = 1.0
    max_dynamic_patch: int | None = None


@dataclass
class Sample:
    """A tokenized sample: ids and labels [s], uint8 tiles [T, S, S, 3] and image_flags [T] (0 = dummy)."""

    input_ids: list[int]
    labels: list[int]
    tiles: np.ndarray
    image_flags: list[int]

    @property
    def num_labels(self) -> int:
        return sum(1 for x in self.labels if x != -100)


@dataclass
class Skipped:
    """A sample that was dropped, with the reason key and where it came from."""

    reason: str
    where: str
    detail: str = ""


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    beside = base / path
    return beside if beside.exists() else Path.cwd() / path


def read_meta(meta_path: str | Path) -> list[DatasetSpec]:
    """Parse and check the meta JSON; errors name the dataset and the key."""
    meta_path = Path(meta_path).expanduser()
    if not meta_path.is_file():
        raise DataError(f"meta file {meta_path} not found (data.meta_path)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not meta:
        raise DataError(f"{meta_path}: expected a non-empty object {{name: {{root, annotation, ...}}}}")
    specs = []
    for name, entry in meta.items():
        if not isinstance(entry, dict) or "annotation" not in entry:
            raise DataError(f"{meta_path}: dataset {name!r} needs at least an 'annotation' (.jsonl path)")
        ann = str(entry["annotation"])
        if not ann.endswith(".jsonl"):
            raise DataError(f"{meta_path}: dataset {name!r}: annotation {ann!r} must be a .jsonl file")
        root = str(entry.get("root", "") or "")
        if root.startswith("s3://") or ann.startswith("s3://"):
            raise DataError(f"{meta_path}: dataset {name!r}: s3:// paths are not supported; mount or copy the data")
        annotation = _resolve(meta_path.parent, ann)
        if not annotation.is_file():
            raise DataError(f"{meta_path}: dataset {name!r}: annotation file {annotation} not found")
        repeat = float(entry.get("repeat_time", 1))
        if repeat <= 0:
            raise DataError(f"{meta_path}: dataset {name!r}: repeat_time must be > 0, got {repeat}")
        mdp = entry.get("max_dynamic_patch")
        specs.append(DatasetSpec(
            name=str(name), root=_resolve(meta_path.parent, root) if root else meta_path.parent,
            annotation=annotation, data_augment=bool(entry.get("data_augment", False)), repeat_time=repeat,
            max_dynamic_patch=int(mdp) if mdp is not None else None,
        ))
    return specs


def repeat_lines(n: int, repeat_time: float) -> list[int]:
    """Line indices after ``repeat_time`` (see the module docstring)."""
    if repeat_time < 1:
        return list(range(math.floor(n * repeat_time)))
    whole, frac = int(repeat_time), repeat_time - int(repeat_time)
    return list(range(n)) * whole + list(range(math.floor(n * frac)))


@dataclass
class ImageSettings:
    """Tiling settings taken from the model config (the recipe may override them there)."""

    image_size: int
    num_image_token: int
    min_tiles: int = 1
    max_tiles: int = 12
    use_thumbnail: bool = True
    dynamic: bool = True


class TrainDataset:
    """All datasets of a meta file as one indexable list. ``dataset[(epoch, index)]`` -> Sample | Skipped.

    The key carries the epoch so that the random JPEG quality of ``data_augment`` depends only on
    (seed, epoch, index): any worker, any resume, the same pixels.
    """

    def __init__(
        self,
        specs: list[DatasetSpec],
        tokenizer: Tokenizer,
        template: Template,
        images: ImageSettings,
        *,
        system_message: str | None = None,
        max_seq_length: int = 4096,
        seed: int = 42,
        video_frames: int = 8,
        max_images: int = 64,
    ):
        self.specs = specs
        self.tokenizer = tokenizer
        self.template = template
        self.images = images
        self.system_message = system_message
        self.max_seq_length = max_seq_length
        self.seed = seed
        self.video_frames = video_frames
        self.max_images = max_images
        self.context_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
        self.lines: list[list[str]] = []
        index = []
        for d, spec in enumerate(specs):
            with open(spec.annotation, encoding="utf-8") as f:
                lines = [line for line in f.read().splitlines() if line.strip()]
            self.lines.append(lines)
            index += [(d, i) for i in repeat_lines(len(lines), spec.repeat_time)]
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def where(self, index: int) -> str:
        d, i = self.index[index]
        return f"{self.specs[d].annotation.name}:{i + 1}"

    def raw(self, index: int) -> dict | None:
        d, i = self.index[index]
        try:
            item = json.loads(self.lines[d][i])
        except json.JSONDecodeError:
            return None
        return item if isinstance(item, dict) else None

    def __getitem__(self, key: tuple[int, int]) -> Sample | Skipped:
        epoch, index = key
        item = self.raw(index)
        if item is None:
            return Skipped("malformed_line", self.where(index), "not a JSON object")
        spec = self.specs[int(self.index[index][0])]
        rng = np.random.default_rng([self.seed, epoch, index])
        try:
            sample = self._build(item, spec, rng)
        except SkipSample as skip:
            return Skipped(skip.reason, self.where(index), skip.detail)
        except Exception as exc:  # one odd sample must never end a long run; it is counted and reported
            return Skipped("sample_error", self.where(index), f"{type(exc).__name__}: {exc}")
        slots = sample.input_ids.count(self.context_id)
        if slots != sum(sample.image_flags) * self.images.num_image_token:
            return Skipped("image_tokens_in_text", self.where(index), f"{slots} <IMG_CONTEXT> tokens for "
                           f"{sum(sample.image_flags)} tiles")
        return sample

    # ------------------------------------------------------------------ building one sample
    def _build(self, item: dict, spec: DatasetSpec, rng: np.random.Generator) -> Sample:
        turns = normalize_turns(item.get("conversations"))
        max_tiles = spec.max_dynamic_patch or self.images.max_tiles
        if item.get("video"):
            tiles, counts = self._video(spec, str(item["video"]))
            special = "\n".join(f"Frame-{i + 1}: {IMAGE_PLACEHOLDER}" for i in range(len(counts)))
            first = turns[0][1] if "<video>" in turns[0][1] else "<video>\n" + turns[0][1]
            turns[0] = (0, first.replace("<video>", special, 1))
        elif item.get("image"):
            paths = item["image"] if isinstance(item["image"], list) else [item["image"]]
            if not all(isinstance(p, str) for p in paths):
                raise SkipSample("malformed_sample", "'image' must be a path or a list of paths")
            if len(paths) > self.max_images:
                raise SkipSample("too_many_images", f"{len(paths)} images > data.max_images {self.max_images}")
            per_image = max(1, max_tiles // len(paths)) if len(paths) > 1 else max_tiles
            tiles_list = [self._tiles(self._load(spec, p), per_image) for p in paths]
            counts = [t.shape[0] for t in tiles_list]
            tiles = np.concatenate(tiles_list) if len(tiles_list) > 1 else tiles_list[0]
            placeholders = sum(text.count(IMAGE_PLACEHOLDER) for _, text in turns)
            if len(paths) == 1 and IMAGE_PLACEHOLDER not in turns[0][1]:
                turns[0] = (0, IMAGE_PLACEHOLDER + "\n" + turns[0][1])
            elif len(paths) > 1 and placeholders != len(paths):
                raise SkipSample("malformed_sample", f"{len(paths)} images but {placeholders} <image> placeholders")
        else:  # text-only: the official dummy tile (a white image), image_flags 0
            s = self.images.image_size
            tiles = np.full((1, s, s, 3), 255, dtype=np.uint8)
            enc = encode_conversation(
                self.tokenizer, self.template, turns, system_message=self.system_message,
                max_length=self.max_seq_length,
            )
            return Sample(enc.input_ids, enc.labels, tiles, [0])
        if spec.data_augment:
            tiles = jpeg_augment(tiles, rng)
        blocks = [image_tokens(n, self.images.num_image_token) for n in counts]
        enc = encode_conversation(
            self.tokenizer, self.template, turns, blocks, system_message=self.system_message,
            max_length=self.max_seq_length,
        )
        return Sample(enc.input_ids, enc.labels, tiles, [1] * int(tiles.shape[0]))

    def _load(self, spec: DatasetSpec, rel: str) -> Image.Image:
        path = spec.root / Path(rel).expanduser()  # an absolute rel replaces the root
        try:
            return load_image(path, allow_urls=False)
        except ImageNotFound as exc:
            raise SkipSample("image_missing", str(exc)) from None
        except (ImageError, OSError) as exc:
            raise SkipSample("image_unreadable", f"{rel}: {exc}") from None

    def _tiles(self, image: Image.Image, max_tiles: int) -> np.ndarray:
        im = self.images
        if not im.dynamic:
            return np.asarray(image.resize((im.image_size, im.image_size)))[None]
        return dynamic_tiles(
            image, min_tiles=min(im.min_tiles, max_tiles), max_tiles=max_tiles, image_size=im.image_size,
            use_thumbnail=im.use_thumbnail,
        )

    def _video(self, spec: DatasetSpec, rel: str) -> tuple[np.ndarray, list[int]]:
        try:
            from ..video import load_video

            frames = load_video(spec.root / Path(rel).expanduser(), num_segments=self.video_frames)
        except ImageNotFound as exc:
            raise SkipSample("image_missing", str(exc)) from None
        except (ImageError, ImportError, OSError) as exc:
            raise SkipSample("video_unreadable", f"{rel}: {exc}") from None
        tiles = np.stack([self._tiles(f, 1)[0] for f in frames])
        return tiles, [1] * len(frames)

    # ------------------------------------------------------------------ lengths for group_by_length
    def estimated_length(self, index: int) -> int:
        """The sample's ``length`` field, else the official estimate: tokens of the '\\n'-joined turns plus
        num_image_token x (max tiles + thumbnail) when it has images."""
        item = self.raw(index)
        if item is None:
            return 0
        if isinstance(item.get("length"), int):
            return item["length"]
        convs = item.get("conversations") or []
        text = "\n".join(t.get("value", "") for t in convs if isinstance(t, dict) and isinstance(t.get("value"), str))
        n = len(self.tokenizer.encode(text))
        if item.get("image") or item.get("video"):
            n += self.images.num_image_token * (self.images.max_tiles + int(self.images.use_thumbnail))
        return n


def jpeg_augment(tiles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Re-encode each tile as JPEG with a quality drawn uniformly from 75..100 (the official augmentation)."""
    out = np.empty_like(tiles)
    for k, tile in enumerate(tiles):
        buf = io.BytesIO()
        Image.fromarray(tile).save(buf, format="JPEG", quality=int(rng.integers(75, 101)))
        buf.seek(0)
        out[k] = np.asarray(Image.open(buf).convert("RGB"))
    return out

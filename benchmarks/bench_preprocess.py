"""Image preprocessing speed: the official pipeline vs tessera, on a 3840x2160 JPEG.

(a) official, written out here: ``Image.open().convert("RGB")``, ``dynamic_preprocess`` (one resize, a
    ``crop`` per tile, thumbnail), then per tile the ``build_transform`` steps (Resize to 448, a no-op for
    448 tiles; ToTensor; Normalize) in torch (torchvision is not installed next to this torch), then
    ``torch.stack``;
(b) tessera: ``dynamic_tiles(path)`` + ``to_pixel_values``, what ``prepare_images`` and ``VLM.chat`` run for a
    file (the JPEG is decoded straight to an array, :mod:`tessera.jpeg`; ``--via-pil`` starts from
    ``load_image(path)``, a PIL image, instead).

Both run in the same process, alternating, for max_tiles 12 and 40; the table shows medians. The uint8 tiles
of both pipelines must be identical (checked every run).

    python benchmarks/bench_preprocess.py [--repeats 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

from tessera.images import load_image
from tessera.preprocess import IMAGENET_MEAN, IMAGENET_STD, dynamic_tiles, to_pixel_values

REPO = Path(__file__).resolve().parents[1]
UHD_PNG = REPO.parent / "shared" / "conformance" / "preprocess" / "images" / "uhd_3840x2160.png"


# ---------------------------------------------------------------------------------------- official (a)


def official_dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=True):
    """The official tiling, step by step (set of candidate grids, closest aspect ratio, resize, crops)."""
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height
    target_ratios = {
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    }
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])
    best_diff, best = float("inf"), (1, 1)
    area = orig_width * orig_height
    for ratio in target_ratios:
        diff = abs(aspect_ratio - ratio[0] / ratio[1])
        if diff < best_diff:
            best_diff, best = diff, ratio
        elif diff == best_diff and area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
            best = ratio
    target_width, target_height = image_size * best[0], image_size * best[1]
    blocks = best[0] * best[1]
    resized = image.resize((target_width, target_height))
    cols = target_width // image_size
    tiles = []
    for i in range(blocks):
        box = ((i % cols) * image_size, (i // cols) * image_size, (i % cols + 1) * image_size, (i // cols + 1) * image_size)
        tiles.append(resized.crop(box))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles


_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def official_transform(tile: Image.Image, size: int = 448) -> torch.Tensor:
    tile = tile.convert("RGB") if tile.mode != "RGB" else tile
    if tile.size != (size, size):  # Resize((448, 448)); torchvision returns 448x448 tiles unchanged
        tile = tile.resize((size, size), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.array(tile, copy=True)).permute(2, 0, 1).contiguous()  # ToTensor
    x = x.float().div(255)
    return (x - _MEAN) / _STD  # Normalize


def official_pipeline(path: str, max_num: int):
    image = Image.open(path).convert("RGB")
    tiles = official_dynamic_preprocess(image, max_num=max_num)
    return torch.stack([official_transform(t) for t in tiles]), tiles


# ------------------------------------------------------------------------------------------ tessera (b)


def tessera_pipeline(path: str, max_num: int):
    tiles = dynamic_tiles(path, max_tiles=max_num)
    return to_pixel_values(tiles), tiles


def tessera_pipeline_via_pil(path: str, max_num: int):
    tiles = dynamic_tiles(load_image(path), max_tiles=max_num)
    return to_pixel_values(tiles), tiles


# ---------------------------------------------------------------------------------------------- main


def make_jpeg(directory: str) -> str:
    if UHD_PNG.exists():
        image = Image.open(UHD_PNG).convert("RGB")
    else:  # no fixtures: a synthetic 4K picture (gradients + noise)
        y, x = np.mgrid[0:2160, 0:3840]
        noise = np.random.default_rng(0).integers(-30, 30, (2160, 3840, 3))
        arr = np.stack([x * 255 // 3839, y * 255 // 2159, (x ^ y) & 255], -1) + noise
        image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    path = os.path.join(directory, "uhd_3840x2160_q90.jpg")
    image.save(path, quality=90)
    return path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15, help="timed runs per pipeline and setting (>= 10)")
    ap.add_argument("--max-tiles", type=int, nargs="+", default=[12, 40])
    ap.add_argument("--image", help="use this image instead of the 4K JPEG made from the fixtures")
    ap.add_argument("--json", nargs="?", const="-", help="also write the results as JSON (to a file or stdout)")
    ap.add_argument("--via-pil", action="store_true", help="tessera starts from load_image(path) (a PIL image)")
    args = ap.parse_args()
    if args.repeats < 10:
        ap.error("--repeats must be at least 10")

    with tempfile.TemporaryDirectory() as tmp:
        path = args.image or make_jpeg(tmp)
        w, h = Image.open(path).size
        rows = []
        for max_num in args.max_tiles:
            times: dict[str, list[float]] = {"official": [], "tessera": []}
            fns = {"official": official_pipeline,
                   "tessera": tessera_pipeline_via_pil if args.via_pil else tessera_pipeline}
            for name in fns:  # warm-up (thread pool, allocator)
                fns[name](path, max_num)
            for _ in range(args.repeats):
                for name, fn in fns.items():
                    t0 = time.perf_counter()
                    out = fn(path, max_num)
                    times[name].append((time.perf_counter() - t0) * 1000)
                    if name == "official":
                        ref_pv, ref_tiles = out
                    else:
                        pv, tiles = out
                ref_u8 = np.stack([np.asarray(t) for t in ref_tiles])
                if not np.array_equal(ref_u8, tiles):
                    sys.exit(f"uint8 tiles differ from the official pipeline (max_tiles={max_num})")
            official_ms = statistics.median(times["official"])
            tessera_ms = statistics.median(times["tessera"])
            rows.append(
                {
                    "max_tiles": max_num,
                    "tiles": int(tiles.shape[0]),
                    "official_ms": round(official_ms, 1),
                    "tessera_ms": round(tessera_ms, 1),
                    "speedup": round(official_ms / tessera_ms, 2),
                    "official_min_ms": round(min(times["official"]), 1),
                    "tessera_min_ms": round(min(times["tessera"]), 1),
                    "tiles_identical": True,
                    "pixel_values_max_abs_diff": float((pv - ref_pv).abs().max()),
                }
            )

    machine = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "torch": torch.__version__,
        "tessera_input": "PIL image (load_image)" if args.via_pil else "file path",
    }
    print(f"image: {w}x{h} JPEG q90, {args.repeats} repeats | {machine['cpu']}, {machine['cores']} cores")
    print("| max tiles | tiles | official median (min) ms | tessera median (min) ms | speedup | uint8 tiles |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['max_tiles']} | {r['tiles']} | {r['official_ms']:.1f} ({r['official_min_ms']:.1f}) | "
            f"{r['tessera_ms']:.1f} ({r['tessera_min_ms']:.1f}) | {r['speedup']:.2f}x | identical |"
        )
    if args.json:
        text = json.dumps({"machine": machine, "image": [w, h], "repeats": args.repeats, "results": rows}, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()

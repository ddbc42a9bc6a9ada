"""The fixed example images of ``examples/`` (shapes, document, chart) with questions and expected answers.

They come from the same drawing code as the training data, at a given tile size, from fixed seeds; the scene is
re-drawn with the next seed until it suits a demo (e.g. the chart is a bar chart), so the files only change when
the drawing code does. ``examples/examples.json`` lists the questions and answers for scripts,
``examples/README.md`` for people.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import chart, document, shapes
from . import vocab as V
from .dataset import sample_rng

DOC_GRID = (4, 3)  # 12 tiles: the example page is squashed 4x wide / 3x high in a single tile


def _shapes_example(tile_size: int):
    for attempt in range(1000):
        rng = sample_rng(0, "example-shapes", attempt)
        image, scene = shapes.draw_scene(rng, tile_size)
        kinds = [s.kind for s in scene]
        unique = [k for k in V.SHAPES if kinds.count(k) == 1]
        if 3 <= len(scene) <= 5 and unique and image.width > image.height:
            break
    kind = unique[0]
    target = next(s for s in scene if s.kind == kind)
    other = next(s for s in scene if s.kind != kind) if len(set(kinds)) > 1 else target
    qa = [
        ("count", "How many shapes are there?", str(len(scene))),
        ("color", f"What color is the {kind}?", target.color),
        ("position", f"Where is the {other.color} {other.kind}?", V.POSITIONS[other.cell]),
        ("shape", f"What shape is in the {V.POSITIONS[target.cell]}?", kind),
        ("count", "图中有几个形状？", str(len(scene))),
    ]
    return image, qa


def _document_example(tile_size: int, text_px: int):
    rng = sample_rng(0, "example-document", 0)
    image, boxes = document.draw_page(rng, tile_size, text_px, [DOC_GRID], ["red"])
    return image, [("read", "What is written in the red box?", boxes[0].text)]


def _chart_example(tile_size: int, text_px: int, max_tiles: int):
    for attempt in range(1000):
        image, scene = chart.draw_chart(sample_rng(0, "example-chart", attempt), tile_size, text_px, max_tiles)
        if scene.style == "bar" and image.width > image.height:
            break
    tallest = scene.labels[scene.values.index(max(scene.values))]
    qa = [
        ("chart", f"What is the value of {scene.labels[0]}?", str(scene.values[0])),
        ("chart", "Which bar is the tallest?", tallest),
    ]
    return image, qa


def write_examples(
    out_dir: str | Path = "examples", tile_size: int = 112, text_px: int = 12, chart_text_px: int = 14, max_tiles: int = 12
) -> list[dict]:
    """Write shapes.png, document.png, chart.png, examples.json and README.md into ``out_dir``.

    Returns the entries of examples.json: ``{"image", "width", "height", "questions": [{"task", "question",
    "answer"}]}``. Use the tile size the model was trained with.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = {
        "shapes.png": _shapes_example(tile_size),
        "document.png": _document_example(tile_size, text_px),
        "chart.png": _chart_example(tile_size, chart_text_px, max_tiles),
    }
    entries = []
    for name, (image, qa) in made.items():
        image.save(out / name, format="PNG")
        questions = [{"task": t, "question": q, "answer": a} for t, q, a in qa]
        entries.append({"image": name, "width": image.width, "height": image.height, "questions": questions})
    (out / "examples.json").write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(entries, tile_size), encoding="utf-8")
    return entries


def _readme(entries: list[dict], tile_size: int) -> str:
    lines = [
        "# Example images",
        "",
        "Made by `python -m tessera.synth --examples examples` (tessera.synth, the generator of the bundled model's",
        f"training data) at tile size {tile_size}. The bundled model should answer these questions with exactly",
        "the expected answer, e.g.:",
        "",
        "```bash",
        'tessera chat --image examples/document.png "What is written in the red box?"',
        "```",
        "",
        "| image | size | question | expected answer |",
        "|---|---|---|---|",
    ]
    for entry in entries:
        for qa in entry["questions"]:
            size = f"{entry['width']}x{entry['height']}"
            lines.append(f"| `{entry['image']}` | {size} | {qa['question']} | `{qa['answer']}` |")
    lines += [
        "",
        "The Chinese question is answered only by a model trained with Chinese phrasings (`chinese=True`).",
        f"`document.png` is {DOC_GRID[0]}x{DOC_GRID[1]} tiles: its text is readable in the 12 full-resolution tiles",
        "(run with max_num >= 12) but not in a single tile (max_num = 1), where the page is squashed 4x.",
        "",
    ]
    return "\n".join(lines)

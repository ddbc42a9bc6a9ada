"""Shape scenes: 1-6 coloured shapes on a 3x3 layout, for counting, colour, shape-name and position questions.

Every shape sits in its own cell of a 3x3 grid over the canvas (so "top left" etc. is unambiguous) and no two
shapes share both colour and kind (so "the red circle" always names one shape). Canvases come in several aspect
ratios and sizes, not tied to the tile grid: these questions must also be answerable from a single tile.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from . import vocab as V

ASPECTS = ((1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (2, 1), (1, 2), (16, 9))
_BACKGROUNDS = ((255, 255, 255), (246, 246, 240), (238, 242, 248), (245, 240, 232), (236, 236, 236))
_SUPERSAMPLE = 2  # draw at 2x and downsample: smooth edges, still deterministic


@dataclass(frozen=True)
class Shape:
    kind: str  # one of vocab.SHAPES
    color: str  # one of vocab.COLORS
    cell: int  # 0..8, row-major 3x3 cell index (vocab.POSITIONS[cell])


def draw_scene(
    rng: random.Random, tile_size: int, max_shapes: int = V.MAX_SHAPES, big: bool = False,
    repeat_kinds: bool = False,
) -> tuple[Image.Image, list[Shape]]:
    """Draw a random scene of 1..max_shapes shapes. Returns the RGB image (long side tile_size..3.5*tile_size)
    and its shapes. ``big``: one shape in the centre cell, filling most of the image (a curriculum step).
    ``repeat_kinds`` (training only): 2..max_shapes shapes of only one or two kinds, so a kind comes in several
    colours (the scenes "How many stars?" gets wrong, see ``SynthConfig.kind_repeats``)."""
    aw, ah = rng.choice(ASPECTS)
    long_side = rng.randint(tile_size, int(3.5 * tile_size))
    scale = long_side / max(aw, ah)
    width, height = max(32, round(aw * scale)), max(32, round(ah * scale))
    kinds = rng.sample(V.SHAPES, rng.randint(1, 2)) if repeat_kinds and not big else V.SHAPES
    n = 1 if big else rng.randint(min(2, max_shapes) if repeat_kinds else 1, max_shapes)
    cells = [4] if big else rng.sample(range(9), n)
    pairs = rng.sample([(c, k) for c in V.COLORS for k in kinds], n)
    shapes = [Shape(kind=k, color=c, cell=cell) for (c, k), cell in zip(pairs, cells)]

    s = _SUPERSAMPLE
    image = Image.new("RGB", (width * s, height * s), rng.choice(_BACKGROUNDS))
    draw = ImageDraw.Draw(image)
    cw, ch = width * s / 3, height * s / 3
    for shape in shapes:
        row, col = divmod(shape.cell, 3)
        # Stay well inside the cell (at most half the free margin off-centre): the position answer must be obvious.
        size = rng.uniform(0.45, 0.75) * min(cw, ch) * (3 if big else 1)
        cx = (col + 0.5) * cw + rng.uniform(-0.5, 0.5) * (cw - size) / 2
        cy = (row + 0.5) * ch + rng.uniform(-0.5, 0.5) * (ch - size) / 2
        draw_shape(draw, shape.kind, cx, cy, size, V.COLORS[shape.color])
    return image.resize((width, height), Image.LANCZOS), shapes


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, size: float, fill) -> None:
    """Fill one shape of ``kind`` centred at (cx, cy), ``size`` pixels across (scenes and benchmarks share it)."""
    r = size / 2
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif kind == "square":
        q = 0.85 * r  # a square looks bigger than a circle of the same width
        draw.rectangle((cx - q, cy - q, cx + q, cy + q), fill=fill)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill=fill)
    elif kind == "star":
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else 0.45 * r
            angle = -math.pi / 2 + i * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"unknown shape kind {kind!r}; expected one of {V.SHAPES}")


KEY_ECHOES = ("none", "full", "partial")


def echo_key(key: str, answer: str, mode: str) -> str:
    """The answer with the question's key copied before it: ``full`` -> ``top left: red``, ``partial`` -> its
    last word only (``left: red``; a one-word key stays whole), ``none`` -> ``red``."""
    if mode == "none":
        return answer
    if mode == "partial":
        key = key.split()[-1]
    return f"{key}: {answer}"


def ask(rng: random.Random, shapes: list[Shape], task: str, chinese: bool = False,
        describe_sep: str = ": ", key_echo: str = "none", echo_counts: bool = False,
        row_mates: bool = False, count_kinds: bool = False) -> tuple[str, str, tuple]:
    """One (question, answer, fact) of ``task`` (count/color/shape/position) about the scene.

    ``fact`` identifies what is asked, whatever the phrasing (to avoid asking the same thing twice).

    ``chinese`` asks count and colour questions with Chinese phrasings (colour answers then in Chinese too);
    other tasks ignore it. ``key_echo`` (training only, English questions that name a shape by its place,
    colour or kind): the answer starts with that key, see :func:`echo_key` and ``SynthConfig.key_echo``; with
    ``echo_counts`` counts by colour or kind too (``red: 2``, ``circles: 1``). It draws nothing from ``rng``:
    the same seed asks the same questions in every mode. ``row_mates`` (training only): a position question
    asks a shape that shares its row with another one when the scene has such shapes. ``count_kinds``
    (training only): a count question asks by kind, a kind the scene has three times in four.
    """
    by_kind = {k: [s for s in shapes if s.kind == k] for k in V.SHAPES}
    by_color = {c: [s for s in shapes if s.color == c] for c in V.COLORS}
    if task == "count":
        count_echo = key_echo if echo_counts and not chinese else "none"
        mode = "kind" if count_kinds else rng.choice(("all", "all", "color", "kind"))
        if mode == "all":
            q = rng.choice(V.Q_COUNT_ALL_ZH if chinese else V.Q_COUNT_ALL)
            return q, str(len(shapes)), ("count",)
        if mode == "color":
            color = rng.choice(list(V.COLORS))
            if chinese:
                q = rng.choice(V.Q_COUNT_COLOR_ZH).format(color=V.COLORS_ZH[color])
            else:
                q = rng.choice(V.Q_COUNT_COLOR).format(color=color)
            return q, echo_key(color, str(len(by_color[color])), count_echo), ("count", color)
        present = [k for k in V.SHAPES if by_kind[k]]
        kind = rng.choice(present if count_kinds and rng.random() < 0.75 else V.SHAPES)
        if chinese:
            q = rng.choice(V.Q_COUNT_KIND_ZH).format(kind=V.SHAPES_ZH[kind])
        else:
            q = rng.choice(V.Q_COUNT_KIND).format(kinds=V.SHAPES_PLURAL[kind])
        return q, echo_key(V.SHAPES_PLURAL[kind], str(len(by_kind[kind])), count_echo), ("count", kind)
    if task == "color":
        unique_kinds = [k for k in V.SHAPES if len(by_kind[k]) == 1]
        if chinese and unique_kinds:
            kind = rng.choice(unique_kinds)
            q = rng.choice(V.Q_COLOR_KIND_ZH).format(kind=V.SHAPES_ZH[kind])
            return q, V.COLORS_ZH[by_kind[kind][0].color], ("color", by_kind[kind][0].cell)
        if unique_kinds and rng.random() < 0.5:
            kind = rng.choice(unique_kinds)
            answer = echo_key(kind, by_kind[kind][0].color, key_echo)
            return rng.choice(V.Q_COLOR_KIND).format(kind=kind), answer, ("color", by_kind[kind][0].cell)
        shape = rng.choice(shapes)
        pos = V.POSITIONS[shape.cell]
        return rng.choice(V.Q_COLOR_POS).format(pos=pos), echo_key(pos, shape.color, key_echo), ("color", shape.cell)
    if task == "shape":
        unique_colors = [c for c in V.COLORS if len(by_color[c]) == 1]
        if unique_colors and rng.random() < 0.5:
            color = rng.choice(unique_colors)
            answer = echo_key(color, by_color[color][0].kind, key_echo)
            return rng.choice(V.Q_SHAPE_COLOR).format(color=color), answer, ("shape", by_color[color][0].cell)
        shape = rng.choice(shapes)
        pos = V.POSITIONS[shape.cell]
        return rng.choice(V.Q_SHAPE_POS).format(pos=pos), echo_key(pos, shape.kind, key_echo), ("shape", shape.cell)
    if task == "describe":
        return rng.choice(V.Q_DESCRIBE), describe(shapes, describe_sep), ("describe",)
    if task == "locate":
        return rng.choice(V.Q_LOCATE), locate(shapes), ("locate",)
    if task == "tally":
        return rng.choice(V.Q_TALLY), tally(shapes), ("tally",)
    if task == "paint":
        return rng.choice(V.Q_PAINT), paint(shapes), ("paint",)
    if task == "tally_kind":
        return rng.choice(V.Q_TALLY_KIND), tally_kind(shapes), ("tally_kind",)
    if task == "position":
        pool = shapes
        if row_mates:
            pool = [s for s in shapes if any(o is not s and o.cell // 3 == s.cell // 3 for o in shapes)] or shapes
        shape = rng.choice(pool)
        q = rng.choice(V.Q_POSITION).format(color=shape.color, kind=shape.kind)
        return q, echo_key(f"{shape.color} {shape.kind}", V.POSITIONS[shape.cell], key_echo), ("position", shape.cell)
    known = ", ".join(t for t, kind in V.TASK_KIND.items() if kind == "shapes")
    raise ValueError(f"shapes cannot answer task {task!r}; expected one of {known}")


def describe(shapes: list[Shape], sep: str = ": ") -> str:
    """Every shape, row-major by cell, one line each (``top left: red circle``; ``sep=" "``: ``top left red
    circle``, where the colour is predicted at the place's own last word, see ``SynthConfig.describe_sep``).

    A training-only answer: each shape's place, colour and kind are supervised, so the model gets a dense,
    grounded signal per image instead of one or two answer tokens. Empty cells are not listed: an "empty"
    line would be the most likely answer for most cells and let the model score well without looking."""
    return "\n".join(f"{V.POSITIONS[s.cell]}{sep}{s.color} {s.kind}" for s in sorted(shapes, key=lambda s: s.cell))


def locate(shapes: list[Shape]) -> str:
    """Every shape's place, by colour then kind, one line each (``red circle: top left``).

    A training-only answer, :func:`describe` turned around: each line looks a place up from the colour and kind
    just written, the lookup that "Where is the red circle?" needs (the model answered that question with one
    place for every shape asked, docs/bundled-model/history.md, twelfth session). Ordered by colour, not by
    place, so the place cannot be known from the order."""
    colors, kinds = list(V.COLORS), list(V.SHAPES)
    ordered = sorted(shapes, key=lambda s: (colors.index(s.color), kinds.index(s.kind)))
    return "\n".join(f"{s.color} {s.kind}: {V.POSITIONS[s.cell]}" for s in ordered)


def tally(shapes: list[Shape]) -> str:
    """How many shapes of each colour, every colour in ``V.COLORS`` order, absent ones too (``red: 2``, ...,
    ``purple: 0``).

    A training-only answer: six count-by-colour lookups per image, each right after its key, for the question
    "How many red shapes are there?", which the model answered with one number for every colour of a scene
    (docs/bundled-model/history.md, thirteenth session). Zeros are listed because that question asks absent
    colours too."""
    return "\n".join(f"{c}: {sum(s.color == c for s in shapes)}" for c in V.COLORS)


def paint(shapes: list[Shape]) -> str:
    """Every shape's colour by its kind, one line each, ordered by kind then colour (``circle: red``).

    A training-only answer, the lookup "What color is the circle?" needs: each colour right after the kind it
    belongs to (the model answered that question with one colour for every kind of a scene,
    docs/bundled-model/history.md, thirteenth session). Ordered by kind, so the order gives no colour away."""
    order = sorted(shapes, key=lambda s: (V.SHAPES.index(s.kind), list(V.COLORS).index(s.color)))
    return "\n".join(f"{s.kind}: {s.color}" for s in order)


def tally_kind(shapes: list[Shape]) -> str:
    """How many shapes of each kind, every kind in ``V.SHAPES`` order, absent ones too, by the plural the count
    question uses (``circles: 2``, ..., ``stars: 0``).

    A training-only answer, :func:`tally` by kind: four count-by-kind lookups per image, each right after its key,
    for "How many circles are there?" (58 % right on 74 fresh questions after stage 35, the weakest count form;
    docs/bundled-model/history.md, fourteenth session)."""
    return "\n".join(f"{V.SHAPES_PLURAL[k]}: {sum(s.kind == k for s in shapes)}" for k in V.SHAPES)

"""Simple bar and line charts: 3-5 labelled points with their values (1-9) printed on the chart.

Values are all distinct, so "largest" and "smallest" always have one answer; the y scale is fixed (9 = full
height) so heights compare across images. Charts are whole tile grids (like pages) so that small labels are not
blurred by resampling.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from . import vocab as V
from .fonts import text_font

CHART_GRIDS = ((2, 2), (3, 2), (4, 2), (3, 3))
_BACKGROUNDS = ((255, 255, 255), (248, 248, 244), (242, 246, 250))


@dataclass(frozen=True)
class Chart:
    style: str  # "bar" or "line"
    labels: tuple[str, ...]
    values: tuple[int, ...]


def draw_chart(rng: random.Random, tile_size: int, text_px: int, max_tiles: int) -> tuple[Image.Image, Chart]:
    """Draw a random bar or line chart. Returns the image and what it shows."""
    grids = [g for g in CHART_GRIDS if g[0] * g[1] <= max_tiles] or [(1, 1)]
    cols, rows = rng.choice(grids)
    width, height = cols * tile_size, rows * tile_size
    n = rng.randint(3, 5)
    chart = Chart(
        style=rng.choice(("bar", "line")),
        labels=tuple(rng.sample(V.CHART_LABELS, n)),
        values=tuple(rng.sample(range(V.CHART_VALUES[0], V.CHART_VALUES[1] + 1), n)),
    )
    image = Image.new("RGB", (width, height), rng.choice(_BACKGROUNDS))
    draw = ImageDraw.Draw(image)
    font = text_font(text_px)
    color = rng.choice(V.CHART_BAR_COLORS)

    margin = text_px
    top, bottom = margin + 2 * text_px, height - margin - 2 * text_px  # room for values above, labels below
    left, right = margin, width - margin
    slot = (right - left) / n
    draw.line((left, bottom, right, bottom), fill=(60, 60, 60), width=2)

    def y_of(value: int) -> float:
        return bottom - (bottom - top) * value / V.CHART_VALUES[1]

    centers = [left + slot * (i + 0.5) for i in range(n)]
    if chart.style == "line":
        draw.line([(x, y_of(v)) for x, v in zip(centers, chart.values)], fill=color, width=3)
    for x, label, value in zip(centers, chart.labels, chart.values):
        y = y_of(value)
        if chart.style == "bar":
            half = min(slot * 0.3, 2.5 * text_px)
            draw.rectangle((x - half, y, x + half, bottom), fill=color)
        else:
            r = max(3, text_px // 4)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
        draw.text((x, y - 4), str(value), fill=(0, 0, 0), font=font, anchor="md")
        draw.text((x, bottom + 4), label, fill=(0, 0, 0), font=font, anchor="ma")
    return image, chart


def ask(rng: random.Random, chart: Chart) -> tuple[str, str, tuple]:
    """One (question, answer, fact) about the chart: a label's value, or the label with the largest/smallest value."""
    mode = rng.choice(("value", "value", "max", "min"))
    if mode == "value":
        i = rng.randrange(len(chart.labels))
        return rng.choice(V.Q_CHART_VALUE).format(label=chart.labels[i]), str(chart.values[i]), ("value", i)
    pick = max if mode == "max" else min
    answer = chart.labels[chart.values.index(pick(chart.values))]
    templates = V.Q_CHART_MAX if mode == "max" else V.Q_CHART_MIN
    if chart.style == "bar":
        templates = templates + (V.Q_BAR_MAX if mode == "max" else V.Q_BAR_MIN)
    return rng.choice(templates), answer, (mode,)

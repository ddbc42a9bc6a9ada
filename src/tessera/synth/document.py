"""Document pages: a grid of small printed words and numbers with coloured boxes marking cells to read.

The page is exactly ``cols x rows`` tiles (``cols * tile_size`` by ``rows * tile_size`` pixels) with
``cols * rows`` tiles chosen so that InternVL's dynamic tiling picks that very grid (an exact aspect-ratio match;
with max_tiles >= cols * rows). Text is ``text_px`` pixels high: legible in the full-resolution tiles, but squashed
by a factor max(cols, rows) >= 3 in the single-tile view (and in the thumbnail), where a 12 px word becomes
3-4 px and unreadable. Cells never straddle a tile edge, so each word is seen whole inside one tile.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from . import vocab as V
from .fonts import text_font

_PAPER = ((255, 255, 255), (250, 248, 240), (244, 246, 250))
_INK = ((0, 0, 0), (30, 30, 30), (20, 20, 60))


@dataclass(frozen=True)
class Box:
    color: str  # one of vocab.BOX_COLORS
    text: str  # the word or number inside
    xy: tuple[int, int, int, int]  # box rectangle (x0, y0, x1, y1) in page pixels


def page_grids(max_tiles: int, min_tiles: int) -> list[tuple[int, int]]:
    """Tile grids (cols, rows) a page may have: 2 <= cols, rows; min_tiles <= cols * rows <= max_tiles."""
    grids = [(c, r) for c in range(2, 7) for r in range(2, 7) if min_tiles <= c * r <= max_tiles]
    if not grids:
        raise ValueError(
            f"no page grid with {min_tiles} <= cols*rows <= {max_tiles} (cols, rows >= 2): "
            "raise max_tiles or lower doc_min_tiles"
        )
    return grids


def cell_layout(tile_size: int, text_px: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Cell width, height and the top-left corners of the cells inside one tile.

    A cell holds a 4-character word with a margin for the box; cells are spread evenly over the tile.
    """
    font = text_font(text_px)
    left, top, right, bottom = font.getbbox("MMMM")
    pad = max(3, text_px // 3)
    cell_w, cell_h = (right - left) + 2 * pad, text_px + 2 * pad
    nx, ny = tile_size // (cell_w + 2), tile_size // (cell_h + 2)
    if nx < 1 or ny < 1:
        raise ValueError(f"text_px={text_px} is too large for tile_size={tile_size}: no 4-letter word fits a tile")
    gap_x, gap_y = (tile_size - nx * cell_w) / (nx + 1), (tile_size - ny * cell_h) / (ny + 1)
    corners = [
        (round(gap_x * (i + 1) + cell_w * i), round(gap_y * (j + 1) + cell_h * j)) for j in range(ny) for i in range(nx)
    ]
    return cell_w, cell_h, corners


def draw_page(
    rng: random.Random,
    tile_size: int,
    text_px: int,
    grids: list[tuple[int, int]],
    box_colors: list[str],
    number_fraction: float = 0.35,
) -> tuple[Image.Image, list[Box]]:
    """Draw a page and mark one distinct cell per entry of ``box_colors``. Returns the image and the boxes.

    Each filled cell holds a three-digit number with probability ``number_fraction``, else a word of vocab.WORDS.
    """
    cols, rows = rng.choice(grids)
    width, height = cols * tile_size, rows * tile_size
    image = Image.new("RGB", (width, height), rng.choice(_PAPER))
    draw = ImageDraw.Draw(image)
    font = text_font(text_px)
    ink = rng.choice(_INK)
    cell_w, cell_h, corners = cell_layout(tile_size, text_px)

    cells = []  # (x0, y0, text)
    for ty in range(rows):
        for tx in range(cols):
            for cx, cy in corners:
                if rng.random() < 0.1:
                    continue  # an empty cell now and then, like a ragged line end
                if rng.random() < number_fraction:
                    text = str(rng.randint(*V.NUMBER_RANGE))
                else:
                    text = rng.choice(V.WORDS)
                cells.append((tx * tile_size + cx, ty * tile_size + cy, text))
    for x0, y0, text in cells:
        # Centre the text in its cell (anchor "mm": middle of the ink box horizontally, of the line vertically).
        draw.text((x0 + cell_w / 2, y0 + cell_h / 2), text, fill=ink, font=font, anchor="mm")

    boxes = []
    for color, (x0, y0, text) in zip(box_colors, rng.sample(cells, len(box_colors))):
        xy = (x0, y0, x0 + cell_w - 1, y0 + cell_h - 1)
        draw.rectangle(xy, outline=V.BOX_COLORS[color], width=2)
        boxes.append(Box(color=color, text=text, xy=xy))
    return image, boxes


def ask(rng: random.Random, box: Box) -> tuple[str, str, tuple]:
    """The (question, answer, fact) for one marked box."""
    return rng.choice(V.Q_READ).format(box=box.color), box.text, ("read", box.color)

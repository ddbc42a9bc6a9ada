"""The bundled-model diagnostics in benchmarks/ run (tiny settings): the learning-rate check and the probe."""

from __future__ import annotations

import importlib.util
import random
import re

import numpy as np

from tessera.vlm import default_model_path

from conftest import REPO


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learnability_reports_each_learning_rate(capsys):
    learnability = _script("learnability")
    assert learnability.main(["--lrs", "1e-3,1.5e-4", "--steps", "2", "--batch", "2", "--every", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if re.match(r"\| [0-9.e-]+ \| \d", line)]
    assert [row.split(" | ")[:2] for row in rows] == [["| 0.001", "1"], ["| 0.001", "2"], ["| 0.00015", "1"],
                                                      ["| 0.00015", "2"]]


def test_learnability_draws_the_named_colour_and_cell():
    learnability = _script("learnability")
    pixels, color, cell = learnability.draw(random.Random(3))
    row, col = divmod(cell, 3)
    cy, cx = int((row + 0.5) * 112 / 3), int((col + 0.5) * 112 / 3)
    assert tuple(pixels[cy, cx]) == learnability.V.COLORS[color]
    assert (np.abs(pixels.astype(int) - pixels[cy, cx]).sum(-1) == 0).sum() < 112 * 112 / 9  # one cell's worth


def test_probe_shapes_scores_the_bundled_model(capsys):
    assert _script("probe_shapes").main([str(default_model_path()), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"color \d+% position \d+% shape \d+% \(2 scenes\)", out), out

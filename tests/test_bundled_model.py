"""The bundled model ships in the package, loads with no path, and answers the example questions on CPU.

Its measured accuracy on the held-out synthetic split is reported in the README (docs/bundled-model/);
here we check what must hold on every machine: it is the default, it is small, it answers quickly, and
every answer is a well-formed answer of the task it was asked (a word of that task's closed vocabulary).
"""

from __future__ import annotations

import functools
import json
import time

import pytest

import tessera
from tessera.synth import vocab as V
from tessera.vlm import default_model_path

from conftest import REPO

VALID = {
    "count": {str(i) for i in range(V.MAX_SHAPES + 1)},
    "color": set(V.COLORS) | set(V.COLORS_ZH.values()),
    "shape": set(V.SHAPES),
    "position": set(V.POSITIONS),
    "read": set(V.WORDS) | {str(n) for n in range(V.NUMBER_RANGE[0], V.NUMBER_RANGE[1] + 1)},
    "chart": set(V.CHART_LABELS) | {str(n) for n in range(V.CHART_VALUES[0], V.CHART_VALUES[1] + 1)},
}


@pytest.fixture(scope="module")
def vlm():
    return tessera.load()


def test_bundled_model_is_small_and_default(vlm):
    files = list(default_model_path().iterdir())
    assert {f.name for f in files} >= {"config.json", "model.safetensors", "tokenizer.model"}
    assert sum(f.stat().st_size for f in files) < 30 * 2**20
    assert vlm.path == default_model_path()
    assert vlm.config.template == "internlm2-chat" and vlm.config.image_size == 112


def _examples():
    data = json.loads((REPO / "examples" / "examples.json").read_text())
    return [(e["image"], q["question"], q["task"]) for e in data for q in e["questions"]]


@pytest.mark.parametrize("image, question, task", _examples())
def test_answers_example_questions_quickly_and_in_vocabulary(vlm, image, question, task):
    start = time.perf_counter()
    got = vlm.chat(question, REPO / "examples" / image, max_new_tokens=16)
    assert time.perf_counter() - start < 10  # about a second on a 2-core CPU; generous for a busy CI box
    assert got in VALID[task], f"{task}: {question!r} -> {got!r}"


# Held-out accuracy the shipped model must keep (the 100 questions per task of the seed-0 test split that
# `tessera eval --bench synth` scores, at the default tiles: the README's numbers, about 4 s in all). Set below
# the measured accuracy and far above chance, so that a model that does not look at the image fails: see the
# README's bundled-model table. 12 questions per task were too few to hold a floor: the eighth session's
# stage-9 build got 3 of the first 12 position questions right and 44 of the 100. Reading's floor is the
# issue's target (80 %; measured 100 %); the others sit 4-9 points under the stage-44 model's 94 / 97 / 99 %.
HELD_OUT_FLOOR = {"color": 0.9, "position": 0.9, "count": 0.9, "read": 0.8}


@functools.cache
def _held_out_right(vlm, task: str, max_tiles: int | None = None) -> int:
    """How many of the task's 100 held-out questions the model answers exactly right (cached: the reading
    floor and the tile-gap test share the 12-tile run)."""
    from tessera.synth.bundle import COMMON
    from tessera.synth.dataset import SynthConfig, make_sample

    cfg = SynthConfig(**COMMON).resolved()
    offset = V.TASKS.index(task)
    right = 0
    for i in range(100):
        image, [(_, question, answer)] = make_sample(cfg, 0, "test", offset + i * len(V.TASKS))
        right += vlm.chat(question, image, max_new_tokens=16, max_tiles=max_tiles) == answer
    return right


@pytest.mark.parametrize("task", sorted(HELD_OUT_FLOOR))
def test_answers_held_out_questions_correctly(vlm, task):
    right = _held_out_right(vlm, task)
    assert right / 100 >= HELD_OUT_FLOOR[task], f"{task}: {right}/100 held-out answers right"


def test_small_text_needs_the_tiles(vlm):
    """The paper's finding in miniature: the page's words are read with its tiles, not from one squashed tile
    (the issue asks for at least 30 points between them)."""
    tiled, single = _held_out_right(vlm, "read"), _held_out_right(vlm, "read", max_tiles=1)
    assert tiled - single >= 30, f"read: {tiled}/100 with up to 12 tiles, {single}/100 with one"


def test_readme_first_command_answers_correctly(capsys):
    """The quick start's first command (after its install) gives the right answer about its example image."""
    import re
    import shlex

    from tessera.cli import main

    readme = (REPO / "README.md").read_text()
    command = re.search(r"```bash\npip install -e \. && (tessera chat [^\n]+)\n```", readme).group(1)
    argv = shlex.split(command)[1:]
    image, question = argv[argv.index("--image") + 1], argv[-1]
    truth = {(REPO / "examples" / e["image"]).resolve(): {q["question"]: q["answer"] for q in e["questions"]}
             for e in (json.loads((REPO / "examples" / "examples.json").read_text()))}
    answer = truth[(REPO / image).resolve()][question]
    argv[argv.index("--image") + 1] = str(REPO / image)
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == answer

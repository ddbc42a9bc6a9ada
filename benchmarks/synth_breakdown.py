"""Accuracy per question form of a synthetic-benchmark run: which shape questions need the shape's kind?
Which boxed texts are read: words or numbers?

    python benchmarks/synth_breakdown.py RUN_DIR [RUN_DIR ...]

``RUN_DIR`` is a ``tessera eval --bench synth`` output directory holding ``predictions.jsonl`` (for example
``runs/tessera-tiny/eval/synth/tiles-12`` after the bundle build). Each shape question is matched back to the template that asked it
(``tessera.synth.vocab``), so "What color is the square?" (needs the kind) and "What color is the shape in the
top left?" (needs only the place) are scored apart. A model that cannot tell the kinds apart is near chance on
every form that names or asks a kind and fine on the others; the task averages hide that. The forms asked in both
languages are also scored per language ("colour by kind, Chinese"): a Chinese question is one token of the bundled
model's tokenizer, an English one a few. Reading questions are
split by their answer (a word of the page vocabulary or a three-digit number, where every digit must be right),
with the share of the numbers' digits that are right in place.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

from tessera.eval.metrics import exact_match
from tessera.synth import vocab as V

# (form, needs the kind?, templates). The form of a question is the first whose template matches it.
FORMS = (
    ("count all", False, V.Q_COUNT_ALL + V.Q_COUNT_ALL_ZH),
    ("count by colour", False, V.Q_COUNT_COLOR + V.Q_COUNT_COLOR_ZH),
    ("count by kind", True, V.Q_COUNT_KIND + V.Q_COUNT_KIND_ZH),
    ("colour by kind", True, V.Q_COLOR_KIND + V.Q_COLOR_KIND_ZH),
    ("colour by place", False, V.Q_COLOR_POS),
    ("kind by colour", True, V.Q_SHAPE_COLOR),
    ("kind by place", True, V.Q_SHAPE_POS),
    ("place by colour + kind", True, V.Q_POSITION),
)

_SLOTS = {
    "color": (*V.COLORS, *V.COLORS_ZH.values()),
    "kind": (*V.SHAPES, *V.SHAPES_ZH.values()),
    "kinds": tuple(V.SHAPES_PLURAL.values()),
    "pos": V.POSITIONS,
    "box": tuple(V.BOX_COLORS),
}


def _pattern(template: str) -> re.Pattern:
    """A template as a regex: each ``{slot}`` matches exactly the words that can fill it."""
    parts = re.split(r"(\{\w+\})", template)
    regex = "".join("(?:" + "|".join(map(re.escape, _SLOTS[p[1:-1]])) + ")" if p.startswith("{") else re.escape(p)
                    for p in parts)
    return re.compile(f"^{regex}$")


PATTERNS = [(form, kind, _pattern(t)) for form, kind, templates in FORMS for t in templates]
BILINGUAL = ("count all", "count by colour", "count by kind", "colour by kind")
READ_PATTERNS = [_pattern(t) for t in V.Q_READ]
READ_ROWS = ("read a word", "read a number", "digits of the numbers")


def _is_chinese(question: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in question)


def form_of(question: str) -> tuple[str, bool] | None:
    """(form, needs the kind) of a shape question, or None for a page or chart question."""
    for form, kind, pattern in PATTERNS:
        if pattern.match(question.strip()):
            return form, kind
    return None


def breakdown(predictions: Path) -> dict[str, tuple[int, int]]:
    """form -> (correct, total) over the run's shape and reading questions (``exact_match``, as ``tessera eval``
    scores; for "digits of the numbers": digits right in place, digits asked)."""
    scores: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in predictions.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        answer, prediction = str(rec["answer"]), rec["prediction"]
        if any(p.match(rec["prompt"].strip()) for p in READ_PATTERNS):
            number = answer.isdigit()
            row = scores["read a number" if number else "read a word"]
            row[0] += int(exact_match(prediction, answer))
            row[1] += 1
            if number:
                digits = scores["digits of the numbers"]
                digits[0] += sum(a == b for a, b in zip(answer, prediction.strip()))
                digits[1] += len(answer)
            continue
        found = form_of(rec["prompt"])
        if found is None:
            continue
        ok = int(exact_match(rec["prediction"], str(rec["answer"])))
        keys = [found[0], "needs the kind" if found[1] else "does not need it"]
        if found[0] in BILINGUAL:
            keys.append(f"{found[0]}, {'Chinese' if _is_chinese(rec['prompt']) else 'English'}")
        for key in keys:
            scores[key][0] += ok
            scores[key][1] += 1
    return {k: (v[0], v[1]) for k, v in scores.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="tessera eval output directories (predictions.jsonl)")
    args = ap.parse_args(argv)
    tables = [breakdown(run / "predictions.jsonl") for run in args.runs]
    rows = [row for f, _, _ in FORMS
            for row in ((f, f"{f}, English", f"{f}, Chinese") if f in BILINGUAL else (f,))]
    rows += ["needs the kind", "does not need it", *READ_ROWS]
    print("| question form | " + " | ".join(str(run) for run in args.runs) + " |")
    print("|---" + "|---:" * len(args.runs) + "|")
    for row in rows:
        cells = [f"{100 * t[row][0] / t[row][1]:.0f} % of {t[row][1]}" if row in t else "-" for t in tables]
        print(f"| {row} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

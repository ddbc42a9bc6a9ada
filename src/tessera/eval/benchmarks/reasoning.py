"""MMMU (validation, rule-based as InternVL scores it) and MathVista testmini (rule-approximated)."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

from tessera.eval.benchmarks.base import (
    MC_INSTRUCTION,
    SHORT_ANSWER,
    Benchmark,
    Item,
    Score,
    grouped_mean,
    mean,
    no_ground_truth,
    register,
    without_answers,
)
from tessera.eval.data import find_files, image_bytes, read_parquet
from tessera.eval.metrics import (
    eval_multi_choice,
    eval_open,
    ivl_letter,
    mathvista_correct,
    parse_open_response,
)


def _parse_listish(value):
    """MMMU stores lists (options, some open answers) as Python-literal strings."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


@register
class MMMU(Benchmark):
    """MMMU from the published parquet files (``<Subject>/validation-*.parquet``). All images of a question are
    tiled separately and concatenated into one tile block behind one ``<image>``, as InternVL's script does."""

    name, max_tiles, max_new_tokens = "mmmu", 6, 10
    split = "validation"

    def load(self, data_dir: Path) -> list[Item]:
        files = find_files(self.check(data_dir), f"{self.split}-*.parquet", "mmmu")
        items = []
        for path in files:
            for row in read_parquet(path):
                choices = _parse_listish(row["options"]) or []
                options = {string.ascii_uppercase[i]: str(c).strip() for i, c in enumerate(choices)}
                question = row["question"].strip()
                if options:
                    question += "\n" + "\n".join(f"{k}. {v}" for k, v in options.items())
                qtype = row["question_type"]
                question += "\n" + (MC_INSTRUCTION if qtype == "multiple-choice" else SHORT_ANSWER)
                images = [b for k in range(1, 8) if (b := image_bytes(row.get(f"image_{k}"))) is not None]
                subject = re.sub(r"^[a-z]+_|_\d+$", "", row["id"])
                answer = _parse_listish(row.get("answer"))
                items.append(Item(row["id"], question.strip(), images, answer,
                                  {"options": options, "question_type": qtype, "subject": subject},
                                  merge_images=True))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)

        def hit(r):
            opts = r["meta"]["options"]
            pred = ivl_letter(r["prediction"], opts) if opts else r["prediction"]
            if r["meta"]["question_type"] == "multiple-choice":
                return float(eval_multi_choice(r["answer"], pred))
            return float(eval_open(r["answer"], parse_open_response(pred)))

        acc = mean([hit(r) for r in records])
        per_subject = grouped_mean(records, lambda r: r["meta"]["subject"], hit)
        return Score(100.0 * acc, {"accuracy": 100.0 * acc, "per_subject": per_subject}, len(records))


@register
class MathVista(Benchmark):
    """MathVista testmini from the published parquet (``testmini-*.parquet``); prompt = ``query``.

    Scored with rules instead of GPT-4 answer extraction: the number is labelled rule-approximated.
    """

    name, max_tiles, max_new_tokens = "mathvista", 6, 4096
    FIELDS = ("question_type", "answer_type", "choices", "precision", "answer")

    def load(self, data_dir: Path) -> list[Item]:
        files = find_files(self.check(data_dir), "testmini-*.parquet", "mathvista")
        items = []
        for path in files:
            for row in read_parquet(path):
                image = image_bytes(row.get("decoded_image"))
                meta = {k: row.get(k) for k in self.FIELDS}
                if isinstance(meta["precision"], float) and meta["precision"] != meta["precision"]:
                    meta["precision"] = None  # NaN in the parquet for non-float answers
                items.append(Item(str(row["pid"]), row["query"], [image] if image else [], row.get("answer"),
                                  meta))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)

        def hit(r):
            return float(mathvista_correct(r["prediction"], {**r["meta"], "answer": r["answer"]}))

        acc = mean([hit(r) for r in records])
        per_type = grouped_mean(records, lambda r: r["meta"]["question_type"], hit)
        return Score(100.0 * acc, {"accuracy": 100.0 * acc, "per_question_type": per_type}, len(records),
                     "rule-approximated: rules + deterministic fallback instead of GPT-4 answer extraction")

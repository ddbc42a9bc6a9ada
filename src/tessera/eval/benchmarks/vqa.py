"""Short-answer benchmarks: TextVQA, DocVQA, InfoVQA, ChartQA, AI2D (InternVL scripts) and OCRBench (VLMEvalKit)."""

from __future__ import annotations

import ast
from pathlib import Path

from tessera.eval.benchmarks.base import (
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
from tessera.eval.data import find_file, read_json, read_jsonl, read_tsv, resolve_image, tsv_image_column
from tessera.eval.metrics import anls, exact_match, ocrbench_hit, relaxed_correct, vqa_accuracy
from tessera.eval.metrics.ocrbench import GROUPS, HME_CATEGORY, HME_DATASET


def _internvl_prompt(question: str) -> str:
    return question + " " + SHORT_ANSWER


@register
class TextVQA(Benchmark):
    """TextVQA val, official ``TextVQA_0.5.1_val.json`` + ``train_images/``; InternVL VQA accuracy."""

    name, max_tiles, max_new_tokens = "textvqa", 24, 10

    def load(self, data_dir: Path) -> list[Item]:
        path = find_file(self.check(data_dir), ["TextVQA_*_val.json", "TextVQA*.json"], "textvqa")
        data = read_json(path)
        if not isinstance(data, dict) or "data" not in data:
            raise ValueError(f"{path}: expected the official TextVQA layout {{'data': [...]}}")
        bases = [path.parent / "train_images", path.parent / "images", path.parent, data_dir]
        items = []
        for q in data["data"]:
            image = resolve_image(f"{q['image_id']}.jpg", bases, "textvqa")
            items.append(Item(str(q["question_id"]), _internvl_prompt(q["question"]), [image], q.get("answers")))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        variant = (options or {}).get("vqa_normalizer", "internvl")
        acc = mean([vqa_accuracy(r["prediction"], r["answer"], variant) for r in records])
        return Score(100.0 * acc, {"accuracy": acc, "normalizer": variant}, len(records))


class _ANLSBench(Benchmark):
    """DocVQA/InfoVQA official JSON ``{"data": [{"questionId", "question", <image key>, "answers"}]}``."""

    max_new_tokens = 100
    patterns: tuple[str, ...] = ()
    image_key = "image"
    image_dirs: tuple[str, ...] = ()

    def load(self, data_dir: Path) -> list[Item]:
        path = find_file(self.check(data_dir), self.patterns, self.name)
        data = read_json(path)
        if not isinstance(data, dict) or "data" not in data:
            raise ValueError(f"{path}: expected the official layout {{'data': [...]}}")
        bases = [path.parent / d for d in self.image_dirs] + [path.parent, data_dir]
        items = []
        for q in data["data"]:
            image = resolve_image(q[self.image_key], bases, self.name)
            items.append(Item(str(q["questionId"]), _internvl_prompt(q["question"]), [image], q.get("answers")))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        value = mean([anls(r["prediction"], r["answer"]) for r in records])
        return Score(100.0 * value, {"anls": value}, len(records))


@register
class DocVQA(_ANLSBench):
    name, max_tiles = "docvqa", 18
    patterns = ("val_v1.0_withQT.json", "val_v1.0.json", "test_v1.0.json", "*_v1.0*.json")
    image_dirs = ("documents",)


@register
class InfoVQA(_ANLSBench):
    name, max_tiles = "infovqa", 24
    patterns = ("infographic*VQA_val*.json", "infographic*VQA_test*.json", "infographic*.json")
    image_key = "image_local_name"
    image_dirs = ("infographicsvqa_images", "infographicVQA_images", "images")


@register
class ChartQA(Benchmark):
    """ChartQA test (official ``test/test_human.json`` + ``test_augmented.json`` + ``png/``); relaxed accuracy,
    reported as the mean of the human and augmented splits."""

    name, max_tiles, max_new_tokens = "chartqa", 12, 100
    SPLITS = ("human", "augmented")

    def load(self, data_dir: Path) -> list[Item]:
        self.check(data_dir)
        items = []
        for split in self.SPLITS:
            try:
                path = find_file(data_dir, [f"test_{split}.json"], "chartqa")
            except FileNotFoundError:
                continue
            bases = [path.parent / "png", path.parent, data_dir]
            for i, q in enumerate(read_json(path)):
                image = resolve_image(q["imgname"], bases, "chartqa")
                items.append(Item(f"{split}/{i}", _internvl_prompt(q["query"]), [image], q.get("label"),
                                  {"split": split}))
        if not items:
            raise FileNotFoundError(f"chartqa: neither test_human.json nor test_augmented.json under {data_dir}")
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        order = (options or {}).get("chartqa_order", "internvl")
        per_split = grouped_mean(records, lambda r: r["meta"]["split"],
                                 lambda r: float(relaxed_correct(r["prediction"], r["answer"], order)))
        headline = mean(list(per_split.values()))
        note = "" if len(per_split) == 2 else f"only {', '.join(per_split)} present: not the paper's average"
        return Score(headline, {**per_split, "order": order}, len(records), note)


@register
class AI2D(Benchmark):
    """AI2D test as InternVL evaluates it: ``ai2d_test_vlmevalkit.jsonl`` (question carries the options),
    no prompt suffix, whole-string exact match against the letter."""

    name, max_tiles, max_new_tokens = "ai2d", 6, 10

    def load(self, data_dir: Path) -> list[Item]:
        path = find_file(self.check(data_dir), ["ai2d_test_vlmevalkit.jsonl", "*.jsonl"], "ai2d")
        bases = [path.parent, data_dir]
        return [Item(str(q["question_id"]), q["question"], [resolve_image(q["image"], bases, "ai2d")],
                     q.get("answer")) for q in read_jsonl(path)]

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        acc = mean([float(exact_match(r["prediction"], r["answer"])) for r in records])
        return Score(100.0 * acc, {"accuracy": acc}, len(records))


@register
class OCRBench(Benchmark):
    """OCRBench v1: official ``OCRBench.json`` + ``OCRBench_Images/`` or VLMEvalKit ``OCRBench.tsv``.

    Prompt and generation length follow VLMEvalKit (May 2024), which produced the reported 724.
    """

    name, max_tiles, max_new_tokens, unit = "ocrbench", 6, 1024, "/1000"
    SUFFIX = "\n" + SHORT_ANSWER

    def load(self, data_dir: Path) -> list[Item]:
        self.check(data_dir)
        try:
            path = find_file(data_dir, ["OCRBench.json"], "ocrbench")
        except FileNotFoundError:
            return self._load_tsv(find_file(data_dir, ["OCRBench*.tsv"], "ocrbench (OCRBench.json or .tsv)"))
        bases = [path.parent / "OCRBench_Images", data_dir / "OCRBench_Images", path.parent, data_dir]
        items = []
        for q in read_json(path):
            answers = q["answers"] if isinstance(q["answers"], list) else [q["answers"]]
            hme = q.get("dataset_name") == HME_DATASET or q.get("type") == HME_CATEGORY
            items.append(Item(str(q["id"]), q["question"] + self.SUFFIX,
                              [resolve_image(q["image_path"], bases, "ocrbench")], answers,
                              {"category": q["type"], "hme": hme}))
        return items

    def _load_tsv(self, path: Path) -> list[Item]:
        rows = read_tsv(path)
        images = tsv_image_column(rows, path)
        items = []
        for row, image in zip(rows, images):
            answer = row.get("answer")
            answers = ast.literal_eval(answer) if answer and answer.startswith("[") else answer
            answers = [answers] if isinstance(answers, str) else answers
            items.append(Item(str(row["index"]), row["question"] + self.SUFFIX, [image], answers,
                              {"category": row["category"], "hme": row["category"] == HME_CATEGORY}))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        per_category: dict[str, int] = {}
        for r in records:
            hit = ocrbench_hit(r["prediction"], r["answer"], hme=r["meta"]["hme"])
            per_category[r["meta"]["category"]] = per_category.get(r["meta"]["category"], 0) + hit
        groups = {g: sum(per_category.get(c, 0) for c in cats) for g, cats in GROUPS.items()}
        total = sum(per_category.values())
        return Score(float(total), {"final_score": total, "final_score_norm": total / 10, **groups,
                                    "per_category": per_category}, len(records))

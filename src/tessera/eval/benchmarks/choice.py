"""Multiple-choice benchmarks: MMBench EN/CN and CCBench (CircularEval), RealWorldQA, SEED, ScienceQA."""

from __future__ import annotations

import re
import string
from pathlib import Path

from tessera.eval.benchmarks.base import (
    MC_INSTRUCTION,
    MC_INSTRUCTION_CN,
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
from tessera.eval.metrics import can_infer, circular_eval, ivl_letter, seed_letter
from tessera.eval.metrics.choice import CIRCULAR_STRIDE

_CJK = re.compile(r"[\u4e00-\u9fff]")


def options_text(options: dict[str, str]) -> str:
    return "".join(f"\n{letter}. {text}" for letter, text in options.items())


class _TSVChoice(Benchmark):
    """VLMEvalKit-format MCQ TSV: index, question, hint, A..Z, answer, category, l2-category, image (base64)."""

    patterns: tuple[str, ...] = ("*.tsv",)
    circular = False
    instruction = MC_INSTRUCTION  # InternVL scripts: fixed per benchmark; None = VLMEvalKit's CJK detection

    def build_prompt(self, row: dict, options: dict[str, str]) -> str:
        question = row["question"]
        if row.get("hint"):
            question = row["hint"] + "\n" + question
        prompt = question + options_text(options)
        if self.instruction is not None:
            return prompt + "\n" + self.instruction
        cn = _CJK.search(prompt) is not None
        if options:
            return prompt + "\n" + (MC_INSTRUCTION_CN if cn else MC_INSTRUCTION)
        return prompt + ("\n请直接回答问题。" if cn else "\nAnswer the question directly.")

    def load(self, data_dir: Path) -> list[Item]:
        path = find_file(self.check(data_dir), self.patterns, self.name)
        rows = read_tsv(path)
        for column in ("index", "question", "image"):
            if rows and column not in rows[0]:
                raise ValueError(f"{path}: missing column {column!r} (expected a VLMEvalKit MCQ TSV)")
        items = []
        for row, image in zip(rows, tsv_image_column(rows, path)):
            options = {c: row[c] for c in string.ascii_uppercase if row.get(c) is not None}
            meta = {"options": options, "index": int(row["index"]), "category": row.get("category"),
                    "l2_category": row.get("l2-category")}
            items.append(Item(str(row["index"]), self.build_prompt(row, options), [image] if image else [],
                              row.get("answer"), meta))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        rows = []
        for r in records:
            letter = can_infer(r["prediction"], r["meta"]["options"])
            rows.append((r["meta"]["index"], None if letter is None else letter == r["answer"], r))
        unresolved = sum(c is None for _, c, _ in rows)
        vanilla = mean([float(c is True) for _, c, _ in rows])
        metrics = {"vanilla_accuracy": 100.0 * vanilla, "unresolved": unresolved}
        if not self.circular:
            metrics["per_category"] = grouped_mean(
                [r for _, _, r in rows], lambda r: str(r["meta"]["category"]),
                lambda r: float(can_infer(r["prediction"], r["meta"]["options"]) == r["answer"]))
            return Score(100.0 * vanilla, metrics, len(records), "unresolved answers count wrong (no LLM judge)")
        groups = circular_eval((i, c) for i, c, _ in rows)
        main = {r["meta"]["index"] % CIRCULAR_STRIDE: r for _, _, r in rows}
        for field in ("category", "l2_category"):
            per: dict[str, list[float]] = {}
            for key, hit in groups.items():
                per.setdefault(str(main[key]["meta"][field]), []).append(hit)
            metrics[f"per_{field}"] = {k: 100.0 * mean(v) for k, v in sorted(per.items())}
        circular = 100.0 * mean([float(h) for h in groups.values()])
        return Score(circular, metrics, len(records),
                     "CircularEval with VLMEvalKit's rule extractor; unresolved copies count wrong (no LLM judge)")


@register
class MMBenchEN(_TSVChoice):
    name, max_tiles, max_new_tokens = "mmbench_en", 6, 100
    patterns = ("MMBench_DEV_EN.tsv", "MMBench_TEST_EN.tsv", "MMBench*EN*.tsv", "*.tsv")
    circular = True


@register
class MMBenchCN(_TSVChoice):
    name, max_tiles, max_new_tokens = "mmbench_cn", 6, 100
    patterns = ("MMBench_DEV_CN.tsv", "MMBench_TEST_CN.tsv", "MMBench*CN*.tsv", "*.tsv")
    circular = True
    instruction = MC_INSTRUCTION_CN


@register
class CCBench(_TSVChoice):
    name, max_tiles, max_new_tokens = "ccbench", 6, 100
    patterns = ("CCBench*.tsv", "*.tsv")
    circular = True
    instruction = MC_INSTRUCTION_CN


@register
class RealWorldQA(_TSVChoice):
    """RealWorldQA via VLMEvalKit (prompt with CJK detection, max_new_tokens 1024, rule extraction)."""

    name, max_tiles, max_new_tokens = "realworldqa", 6, 1024
    patterns = ("RealWorldQA.tsv", "*.tsv")
    instruction = None


@register
class SEED(Benchmark):
    """SEED-Bench image questions (official ``SEED-Bench.json`` + ``SEED-Bench-image/``); first-character rule."""

    name, max_tiles, max_new_tokens = "seed", 6, 100

    def load(self, data_dir: Path) -> list[Item]:
        path = find_file(self.check(data_dir), ["SEED-Bench.json"], "seed")
        data = read_json(path)
        if not isinstance(data, dict) or "questions" not in data:
            raise ValueError(f"{path}: expected the official SEED-Bench.json layout {{'questions': [...]}}")
        type_names = {v: k for k, v in data.get("question_type", {}).items()}
        bases = [path.parent / "SEED-Bench-image", path.parent, data_dir]
        items = []
        for q in data["questions"]:
            if q.get("data_type", "image") != "image" or not 1 <= int(q["question_type_id"]) <= 9:
                continue
            options = {letter: q[f"choice_{letter.lower()}"] for letter in "ABCD"}
            prompt = q["question"] + options_text(options) + "\n" + MC_INSTRUCTION
            qtype = int(q["question_type_id"])
            items.append(Item(str(q["question_id"]), prompt, [resolve_image(q["data_id"], bases, "seed")],
                              q.get("answer"), {"question_type": type_names.get(qtype, str(qtype))}))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        def hit(r):
            return float(seed_letter(r["prediction"]) == r["answer"])
        acc = mean([hit(r) for r in records])
        per_type = grouped_mean(records, lambda r: r["meta"]["question_type"], hit)
        return Score(100.0 * acc, {"image_accuracy": 100.0 * acc, "per_type": per_type}, len(records))


@register
class ScienceQA(Benchmark):
    """ScienceQA test, image questions (InternVL ``scienceqa_test_img.jsonl``, or official ``problems.json`` +
    ``pid_splits.json`` + ``images/test/<pid>/``); InternVL letter post-processing, exact letter match."""

    name, max_tiles, max_new_tokens = "scienceqa", 6, 100

    def load(self, data_dir: Path) -> list[Item]:
        self.check(data_dir)
        try:
            path = find_file(data_dir, ["scienceqa_test_img.jsonl"], "scienceqa")
            rows = [(str(i), q, q["image"]) for i, q in enumerate(read_jsonl(path))]
            bases = [path.parent, data_dir]
        except FileNotFoundError:
            path = find_file(data_dir, ["problems.json"], "scienceqa (scienceqa_test_img.jsonl or problems.json)")
            problems = read_json(path)
            splits = read_json(find_file(data_dir, ["pid_splits.json"], "scienceqa"))
            rows = [(pid, problems[pid], f"{pid}/{problems[pid]['image']}") for pid in splits["test"]
                    if problems[pid].get("image")]
            bases = [path.parent / "images" / "test", path.parent / "test", path.parent, data_dir]
        items = []
        for qid, q, image in rows:
            options = {string.ascii_uppercase[i]: c for i, c in enumerate(q["choices"])}
            question = (q["hint"] + "\n" if q.get("hint") else "") + q["question"]
            prompt = (question + options_text(options) + "\n" + MC_INSTRUCTION).strip()
            answer = string.ascii_uppercase[int(q["answer"])] if q.get("answer") is not None else None
            items.append(Item(qid, prompt, [resolve_image(image, bases, "scienceqa")], answer,
                              {"options": options}))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        acc = mean([float(ivl_letter(r["prediction"], r["meta"]["options"]) == r["answer"]) for r in records])
        return Score(100.0 * acc, {"accuracy": 100.0 * acc}, len(records))

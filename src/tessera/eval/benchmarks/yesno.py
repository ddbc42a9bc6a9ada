"""Yes/no benchmarks: MME (release folder), POPE (LLaVA question file + COCO annotations), HallusionBench (TSV)."""

from __future__ import annotations

from pathlib import Path

from tessera.eval.benchmarks.base import (
    SHORT_ANSWER,
    Benchmark,
    Item,
    Score,
    mean,
    no_ground_truth,
    register,
    without_answers,
)
from tessera.eval.data import (
    find_file,
    find_files,
    folder_image,
    read_jsonl,
    read_tsv,
    resolve_image,
    tsv_image_column,
)
from tessera.eval.metrics import (
    hallusion_label,
    hallusion_scores,
    mme_label,
    mme_subtask_score,
    pope_label,
    pope_metrics,
)
from tessera.eval.metrics.yesno import MME_COGNITION, MME_PERCEPTION


@register
class MME(Benchmark):
    """MME from ``MME_Benchmark_release_version``: one folder per subtask holding either ``images/`` +
    ``questions_answers_YN/*.txt`` or images with same-named ``.txt`` files (``question<TAB>Yes|No`` lines)."""

    name, max_tiles, max_new_tokens, unit = "mme", 12, 20, "sum"
    SUBTASKS = MME_PERCEPTION + MME_COGNITION

    def _subtask_dir(self, root: Path, task: str) -> Path | None:
        hits = [p for p in [root / task, *root.glob(f"*/{task}")] if p.is_dir()]
        return hits[0] if hits else None

    def load(self, data_dir: Path) -> list[Item]:
        self.check(data_dir)
        items = []
        for task in self.SUBTASKS:
            folder = self._subtask_dir(data_dir, task)
            if folder is None:
                continue
            qa_dir = folder / "questions_answers_YN"
            image_dir = folder / "images" if qa_dir.is_dir() else folder
            for txt in sorted((qa_dir if qa_dir.is_dir() else folder).glob("*.txt")):
                image = folder_image(image_dir, txt.stem)
                if image is None:
                    raise FileNotFoundError(f"mme: no image named {txt.stem}.* in {image_dir} for {txt}")
                lines = [ln for ln in txt.read_text(encoding="utf-8").splitlines() if ln.strip()]
                for k, line in enumerate(lines):
                    question, sep, answer = line.rpartition("\t")
                    if not sep:
                        raise ValueError(f"{txt}:{k + 1}: expected 'question<TAB>Yes|No'")
                    items.append(Item(f"{task}/{txt.stem}/{k}", question.strip() + " " + SHORT_ANSWER,
                                      [str(image)], answer.strip(), {"task": task, "image": txt.stem}))
        if not items:
            raise FileNotFoundError(f"mme: no subtask folders ({', '.join(self.SUBTASKS[:3])}, ...) under {data_dir}")
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        by_task: dict[str, dict[str, list[bool]]] = {}
        for r in records:
            correct = mme_label(r["prediction"]) == r["answer"].strip().lower()
            by_task.setdefault(r["meta"]["task"], {}).setdefault(r["meta"]["image"], []).append(correct)
        subtasks = {t: mme_subtask_score(images.values()) for t, images in by_task.items()}
        perception = sum(s["score"] for t, s in subtasks.items() if t in MME_PERCEPTION)
        cognition = sum(s["score"] for t, s in subtasks.items() if t in MME_COGNITION)
        missing = [t for t in self.SUBTASKS if t not in subtasks]
        note = f"missing subtasks: {', '.join(missing)}" if missing else ""
        return Score(perception + cognition, {"perception": perception, "cognition": cognition,
                                              "subtasks": subtasks}, len(records), note)


@register
class POPE(Benchmark):
    """POPE in the LLaVA layout InternVL uses: ``llava_pope_test.jsonl`` (question_id, image, text, category),
    ``coco/coco_pope_<split>.json`` label files (matched to questions by order) and COCO ``val2014/`` images."""

    name, max_tiles, max_new_tokens = "pope", 6, 100

    def load(self, data_dir: Path) -> list[Item]:
        path = find_file(self.check(data_dir), ["llava_pope_test.jsonl"], "pope")
        questions = read_jsonl(path)
        bases = [path.parent / "val2014", data_dir / "val2014", path.parent, data_dir]
        labels = {}
        for ann in find_files(data_dir, "coco_pope_*.json", "pope annotations"):
            labels[ann.stem[len("coco_pope_"):]] = [row["label"] for row in read_jsonl(ann)]
        position: dict[str, int] = {}
        items = []
        for q in questions:
            split = q["category"]
            if split not in labels:
                raise FileNotFoundError(f"pope: no coco_pope_{split}.json under {data_dir} for question {q}")
            k = position.get(split, 0)
            position[split] = k + 1
            if k >= len(labels[split]):
                raise ValueError(f"pope: more {split} questions than labels in coco_pope_{split}.json")
            # InternVL: question + ' ' + '' (the prompt it defines is never passed), so a trailing space stays.
            items.append(Item(str(q["question_id"]), q["text"] + " ", [resolve_image(q["image"], bases, "pope")],
                              labels[split][k], {"split": split}))
        return items

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        splits: dict[str, list[dict]] = {}
        for r in records:
            splits.setdefault(r["meta"]["split"], []).append(r)
        per_split = {s: pope_metrics([pope_label(r["prediction"]) for r in rs], [r["answer"] for r in rs])
                     for s, rs in sorted(splits.items())}
        f1 = 100.0 * mean([m["f1"] for m in per_split.values()])
        return Score(f1, {"overall_f1": f1, "splits": per_split}, len(records))


@register
class HallusionBench(Benchmark):
    """HallusionBench from VLMEvalKit's ``HallusionBench.tsv``; reported number = mean(aAcc, fAcc, qAcc)."""

    name, max_tiles, max_new_tokens = "hallusionbench", 6, 1024
    SUFFIX = " Please answer yes or no. Answer the question using a single word or phrase."

    def load(self, data_dir: Path) -> list[Item]:
        path = find_file(self.check(data_dir), ["HallusionBench.tsv", "*.tsv"], "hallusionbench")
        rows = read_tsv(path)
        items = []
        for row, image in zip(rows, tsv_image_column(rows, path)):
            items.append(Item(str(row["index"]), row["question"] + self.SUFFIX, [image] if image else [],
                              row.get("answer"), {"l2_category": row.get("l2-category"),
                                                  "category": row.get("category")}))
        return items

    @staticmethod
    def _gold(answer: str) -> str:
        value = str(answer).strip().lower()
        return {"1": "Yes", "yes": "Yes", "0": "No", "no": "No"}.get(value, answer)

    def score(self, records, options=None):
        if without_answers(records):
            return no_ground_truth(records)
        rows = [(r["id"], str(r["meta"]["l2_category"]),
                 hallusion_label(r["prediction"]) == self._gold(r["answer"])) for r in records]
        unknown = sum(hallusion_label(r["prediction"]) == "Unknown" for r in records)
        res = hallusion_scores(rows)
        return Score(res["overall"], {**res, "unknown": unknown}, len(records),
                     "Unknown answers count wrong (no LLM judge)")

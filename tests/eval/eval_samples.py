"""Tiny benchmark samples in each benchmark's published file format, with scripted answers and hand-computed
expected scores (the derivations are in the comments; they come from eval-metrics.md, not from our code)."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


def png_bytes(color=(200, 30, 30), size=(16, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color))
    return path


def b64_png(color=(0, 90, 200)) -> str:
    return base64.b64encode(png_bytes(color)).decode()


def write_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join("" if v is None else str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def by_marker(table: dict[str, str]) -> Callable[[str, int], str]:
    """Answer with the value of the first key found in the question."""
    def answer(question: str, n_images: int) -> str:
        for key, value in table.items():
            if key in question:
                return value
        raise AssertionError(f"no scripted answer for {question!r}")
    return answer


@dataclass
class Sample:
    answer: Callable[[str, int], str]
    score: float
    n: int
    images_per_item: int | None = 1  # None: varies


def textvqa(root: Path) -> Sample:
    d = root / "textvqa"
    for i in (1, 2):
        write_png(d / "train_images" / f"img{i}.jpg")
    data = {"dataset_name": "textvqa", "data": [
        {"question_id": 1, "image_id": "img1", "question": "what does the sign say?", "answers": ["stop"] * 10},
        {"question_id": 2, "image_id": "img2", "question": "how many cats?", "answers": ["2"] * 2 + ["3"] * 8},
    ]}
    (d / "TextVQA_0.5.1_val.json").write_text(json.dumps(data))
    # "Stop" -> stop, k=10 -> 1.0 ; "two" -> 2, k=2 -> 0.6 ; mean 0.8
    return Sample(by_marker({"sign": "Stop", "cats": "two"}), 80.0, 2)


def docvqa(root: Path) -> Sample:
    d = root / "docvqa" / "val"
    write_png(d / "documents" / "doc1.png")
    write_png(d / "documents" / "doc2.png")
    data = {"dataset_name": "docvqa", "dataset_split": "val", "data": [
        {"questionId": 10, "question": "what is the greeting?", "image": "documents/doc1.png",
         "answers": ["hello world"]},
        {"questionId": 11, "question": "what is the code?", "image": "documents/doc2.png", "answers": ["abc"]},
    ]}
    (d / "val_v1.0.json").write_text(json.dumps(data))
    # 1 - 1/11 and 1.0 -> mean 0.954545
    return Sample(by_marker({"greeting": "hello wrld", "code": "ABC"}), 100 * (1 - 1 / 11 + 1) / 2, 2)


def infovqa(root: Path) -> Sample:
    d = root / "infovqa"
    write_png(d / "infographicsvqa_images" / "info1.jpeg")
    data = {"data": [
        {"questionId": 1, "question": "what ratio?", "image_local_name": "info1.jpeg", "answers": ["1.50"]},
        {"questionId": 2, "question": "which city?", "image_local_name": "info1.jpeg", "answers": ["yyyy"]},
    ]}
    (d / "infographicsVQA_val_v1.0_withQT.json").write_text(json.dumps(data))
    return Sample(by_marker({"ratio": "1.5", "city": "x"}), 100 * (0.75 + 0) / 2, 2)  # 0.75 and 0


def chartqa(root: Path) -> Sample:
    d = root / "chartqa" / "ChartQA Dataset" / "test"
    for name in ("c1.png", "c2.png", "c3.png"):
        write_png(d / "png" / name)
    (d / "test_human.json").write_text(json.dumps([
        {"imgname": "c1.png", "query": "value of bar one?", "label": "10"},
        {"imgname": "c2.png", "query": "value of bar two?", "label": "10.52"},
    ]))
    (d / "test_augmented.json").write_text(json.dumps([
        {"imgname": "c3.png", "query": "is it rising?", "label": "yes"},
    ]))
    # human: 10.4 vs 10 right, 10 vs 10.52 wrong (InternVL order) -> 50; augmented: Yes/yes right -> 100; mean 75
    return Sample(by_marker({"bar one": "10.4", "bar two": "10", "rising": "Yes"}), 75.0, 3)


def ai2d(root: Path) -> Sample:
    d = root / "ai2d"
    write_png(d / "images" / "1.png")
    write_jsonl(d / "ai2d_test_vlmevalkit.jsonl", [
        {"question_id": 1, "image": "images/1.png", "question": "Which part? A. x B. y", "answer": "A"},
        {"question_id": 2, "image": "images/1.png", "question": "Which stage? A. x B. y", "answer": "A"},
    ])
    return Sample(by_marker({"part": "A", "stage": "A."}), 50.0, 2)  # "A." is not "A"


def ocrbench(root: Path) -> Sample:
    d = root / "ocrbench"
    for name in ("IIIT5K/a.jpg", "HME100k/b.jpg", "textVQA/c.jpg"):
        write_png(d / "OCRBench_Images" / name)
    (d / "OCRBench" / "OCRBench.json").parent.mkdir(parents=True, exist_ok=True)
    (d / "OCRBench" / "OCRBench.json").write_text(json.dumps([
        {"dataset_name": "IIIT5K", "id": 0, "image_path": "IIIT5K/a.jpg", "question": "what is written?",
         "answers": ["hello"], "type": "Regular Text Recognition"},
        {"dataset_name": "HME100k", "id": 1, "image_path": "HME100k/b.jpg", "question": "write the formula",
         "answers": "\\frac{1}{2}", "type": "Handwritten Mathematical Expression Recognition"},
        {"dataset_name": "textVQA", "id": 2, "image_path": "textVQA/c.jpg", "question": "what brand?",
         "answers": ["hello"], "type": "Scene Text-centric VQA"},
    ]))
    # substring hit, HME hit after removing spaces, "hell" misses "hello" -> 2 / 1000
    return Sample(by_marker({"written": 'The text is "HELLO".', "formula": "\\frac { 1 } { 2 }", "brand": "hell"}),
                  2.0, 3)


MMB_HEADER = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "image"]


def _mmbench_rows() -> list[list]:
    texts = ["dog", "cat", "bird", "fish"]
    rows = []
    for k in range(4):  # question 0: four circular copies, options rotated, gold follows "dog"
        opts = texts[k:] + texts[:k]
        gold = "ABCD"[opts.index("dog")]
        rows.append([k * 1_000_000, "Which animal barks?", "Look closely." if k == 0 else None, *opts, gold,
                     "attribute", "FP-S", b64_png() if k == 0 else "0"])
    for k in range(2):  # question 1: two options, two copies
        opts = ["red", "blue"] if k == 0 else ["blue", "red"]
        rows.append([1 + k * 1_000_000, "Which colour is the sky?", None, *opts, None, None,
                     "AB"[opts.index("blue")], "color", "FP-C", b64_png((10, 10, 250))])
    return rows


def _mmbench_answer(question: str, n: int) -> str:
    if "barks" in question:  # always right: the letter in front of "dog"
        return re.search(r"\n([A-D])\. dog", question).group(1)
    return "A"  # sky: copy 0 has A=red (wrong), copy 1 has A=blue (right)


def mmbench_en(root: Path) -> Sample:
    write_tsv(root / "mmbench_en" / "MMBench_DEV_EN.tsv", MMB_HEADER, _mmbench_rows())
    # q0: 4/4 copies right -> group 1; q1: copy 0 gold B (A=red) answered A wrong, copy 1 gold A right -> group 0
    # circular = 50.0 ; vanilla = 5/6
    return Sample(_mmbench_answer, 50.0, 6)


def mmbench_cn(root: Path) -> Sample:
    write_tsv(root / "mmbench_cn" / "MMBench_DEV_CN.tsv", MMB_HEADER, _mmbench_rows())
    return Sample(_mmbench_answer, 50.0, 6)


def ccbench(root: Path) -> Sample:
    write_tsv(root / "ccbench" / "CCBench.tsv", MMB_HEADER, _mmbench_rows())
    return Sample(_mmbench_answer, 50.0, 6)


def realworldqa(root: Path) -> Sample:
    header = ["index", "question", "A", "B", "C", "answer", "category", "image"]
    write_tsv(root / "realworldqa" / "RealWorldQA.tsv", header, [
        [0, "How many lanes?", "1", "2", "3", "B", "driving", b64_png()],
        [1, "这是什么颜色？", "红", "蓝", None, "A", "color", b64_png()],
        [2, "What is the speed limit? Answer with a number.", None, None, None, "C", "driving", b64_png()],
    ])
    # "B" right; "这是红色" -> option text 红 -> A right; "50" unresolved -> wrong : 2/3
    return Sample(by_marker({"lanes": "B", "颜色": "这是红色", "speed": "50"}), 200 / 3, 3)


def seed(root: Path) -> Sample:
    d = root / "seed"
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        write_png(d / "SEED-Bench-image" / name)
    def q(qid, data_id, text, answer, qtype=1, dtype="image"):
        return {"question_id": qid, "data_id": data_id, "question": text, "answer": answer, "choice_a": "dog",
                "choice_b": "cat", "choice_c": "bird", "choice_d": "fish", "question_type_id": qtype,
                "data_type": dtype}
    data = {"question_type": {"Scene Understanding": 1, "Instance Identity": 2, "Action Recognition": 10},
            "questions": [q("101", "1.jpg", "Scene animal?", "B"), q("102", "2.jpg", "Which pet meows?", "C", 2),
                          q("103", "3.jpg", "Pet in the bowl?", "A", 2), q("104", "v.mp4", "Video?", "A", 10, "video")]}
    (d / "SEED-Bench.json").write_text(json.dumps(data))
    # "B. cat" -> B right; "C" right; " A" -> first char " " wrong -> 2/3 ; video question skipped
    return Sample(by_marker({"Scene": "B. cat", "meows": "C", "bowl": " A"}), 200 / 3, 3)


def scienceqa(root: Path) -> Sample:
    d = root / "scienceqa"
    problems = {
        "1": {"question": "Which animal meows?", "choices": ["dog", "cat"], "answer": 1, "hint": "",
              "image": "image.png", "split": "test"},
        "2": {"question": "Which is a bird?", "choices": ["dog", "cat", "robin"], "answer": 2,
              "hint": "Think about feathers.", "image": "image.png", "split": "test"},
        "3": {"question": "No picture here?", "choices": ["a", "b"], "answer": 0, "hint": "", "image": None,
              "split": "test"},
        "4": {"question": "Train item?", "choices": ["a", "b"], "answer": 0, "hint": "", "image": "image.png",
              "split": "train"},
    }
    (d / "problems.json").parent.mkdir(parents=True, exist_ok=True)
    (d / "problems.json").write_text(json.dumps(problems))
    (d / "pid_splits.json").write_text(json.dumps({"test": ["1", "2", "3"], "train": ["4"]}))
    for pid in ("1", "2", "4"):
        write_png(d / "images" / "test" / pid / "image.png")
    # "The answer is cat" -> ivl_letter B right ; "(C)" stays "(C)" wrong -> 50 ; question 3 has no image: skipped
    return Sample(by_marker({"meows": "The answer is cat", "bird": "(C)"}), 50.0, 2)


def _parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def mmmu(root: Path) -> Sample:
    img = {"bytes": png_bytes(), "path": "x.png"}
    none = None

    def row(id_, question, options, answer, qtype, images):
        r = {"id": id_, "question": question, "options": options, "explanation": "", "img_type": "['Photo']",
             "answer": answer, "topic_difficulty": "Easy", "question_type": qtype, "subfield": "x"}
        for k in range(1, 8):
            r[f"image_{k}"] = images[k - 1] if k <= len(images) else none
        return r

    _parquet(root / "mmmu" / "Art" / "validation-00000-of-00001.parquet", [
        row("validation_Art_1", "<image 1> Which style?", "['Baroque', 'Cubism']", "B", "multiple-choice", [img]),
        row("validation_Art_2", "<image 1> <image 2> Which is older?", "['left', 'right']", "B",
            "multiple-choice", [img, img]),
    ])
    _parquet(root / "mmmu" / "Math" / "validation-00000-of-00001.parquet", [
        row("validation_Math_1", "<image 1> Compute the slope.", "[]", "3.5", "open", [img]),
    ])
    # B right ; A wrong ; "The answer is 3.5" right -> 2/3
    return Sample(by_marker({"style": "B", "older": "A", "slope": "The answer is 3.5"}), 200 / 3, 3, None)


def mathvista(root: Path) -> Sample:
    img = {"bytes": png_bytes(), "path": "images/1.jpg"}
    base = {"image": "images/1.jpg", "decoded_image": img, "unit": None, "metadata": {"source": "x"}}
    _parquet(root / "mathvista" / "data" / "testmini-00000-of-00001.parquet", [
        {**base, "pid": "1", "question": "q", "query": "Hint: pick. Question: how many sides? Choices: (A) 3 (B) 4",
         "choices": ["3", "4"], "precision": None, "answer": "4", "question_type": "multi_choice",
         "answer_type": "text"},
        {**base, "pid": "2", "question": "q", "query": "Question: how many apples?", "choices": None,
         "precision": None, "answer": "12", "question_type": "free_form", "answer_type": "integer"},
        {**base, "pid": "3", "question": "q", "query": "Question: what is the ratio?", "choices": None,
         "precision": 1.0, "answer": "1.5", "question_type": "free_form", "answer_type": "float"},
    ])
    # "(B) 4" -> 4 right ; "There are 12 apples" -> 12 right ; "1.7" -> 1.7 != 1.5 wrong -> 2/3
    return Sample(by_marker({"sides": "(B) 4", "apples": "There are 12 apples", "ratio": "1.7"}), 200 / 3, 3)


def mme(root: Path) -> Sample:
    d = root / "mme" / "MME_Benchmark_release_version"
    for stem, qs in {"e1": [("Is there a dog? Please answer yes or no.", "Yes"),
                            ("Is there a cow? Please answer yes or no.", "No")],
                     "e2": [("Is there a cat? Please answer yes or no.", "Yes"),
                            ("Is there a pig? Please answer yes or no.", "No")]}.items():
        write_png(d / "existence" / f"{stem}.jpg")
        (d / "existence" / f"{stem}.txt").write_text("".join(f"{q}\t{a}\n" for q, a in qs))
    write_png(d / "artwork" / "images" / "a1.jpg")
    (d / "artwork" / "questions_answers_YN").mkdir(parents=True)
    (d / "artwork" / "questions_answers_YN" / "a1.txt").write_text(
        "Is this by Monet? Please answer yes or no.\tYes\nIs this by Dali? Please answer yes or no.\tNo\n")
    write_png(d / "code_reasoning" / "c1.png")
    (d / "code_reasoning" / "c1.txt").write_text(
        "Does the code print 3? Please answer yes or no.\tYes\nDoes the code print 4? Please answer yes or no.\tNo")
    answers = {"dog": "Yes", "cow": "No, there is not.", "cat": "Yes", "pig": "Yes",
               "Monet": "是", "Dali": "不是", "print 3": "There is a 3", "print 4": "Yes"}
    # existence: 3/4 right, 1 of 2 images fully right -> 75 + 50 = 125 ; artwork: 200 ; perception 325
    # code_reasoning: "There is a 3" -> other (wrong), "Yes" vs No wrong -> 0 ; total 325
    return Sample(by_marker(answers), 325.0, 8)


def pope(root: Path) -> Sample:
    d = root / "pope"
    write_png(d / "val2014" / "COCO_val2014_000000000001.jpg")
    img = "COCO_val2014_000000000001.jpg"
    write_jsonl(d / "llava_pope_test.jsonl", [
        {"question_id": 1, "image": img, "text": "Is there a dog in the image?", "category": "adversarial"},
        {"question_id": 2, "image": img, "text": "Is there a car in the image?", "category": "random"},
        {"question_id": 3, "image": img, "text": "Is there a kite in the image?", "category": "adversarial"},
        {"question_id": 4, "image": img, "text": "Is there a bus in the image?", "category": "random"},
    ])
    write_jsonl(d / "coco" / "coco_pope_adversarial.json", [{"label": "yes"}, {"label": "no"}])
    write_jsonl(d / "coco" / "coco_pope_random.json", [{"label": "yes"}, {"label": "yes"}])
    # adversarial: dog yes/yes TP, kite "Yes, there is" vs no FP -> P .5 R 1 F1 2/3
    # random: car "No" vs yes FN, bus "Yes" TP -> P 1 R .5 F1 2/3 ; mean 66.67
    return Sample(by_marker({"dog": "Yes", "kite": "Yes, there is", "car": "No", "bus": "Yes"}), 200 / 3, 4)


def hallusionbench(root: Path) -> Sample:
    header = ["index", "category", "l2-category", "question", "answer", "image"]
    write_tsv(root / "hallusionbench" / "HallusionBench.tsv", header, [
        ["VD_chart_1_0_0_0", "VD", "chart", "Is q0 true on f0?", "Yes", b64_png()],
        ["VD_chart_1_0_1_0", "VD", "chart", "Is q0 true on f1?", "No", b64_png()],
        ["VD_chart_1_0_0_1", "VD", "chart", "Is q1 true on f0?", "Yes", b64_png()],
        ["VD_chart_1_0_1_1", "VD", "chart", "Is q1 true on f1?", "No", None],
    ])
    # (q0,f0)=1 (q0,f1)=1 (q1,f0)=1 (q1,f1)=0 -> aAcc 75, fAcc 50, qAcc 50 -> 58.33
    return Sample(by_marker({"q0 true on f0": "Yes, it is.", "q0 true on f1": "The answer is no!",
                             "q1 true on f0": "yes", "q1 true on f1": "Yes and no"}), 175 / 3, 4, None)


def synth(root: Path) -> Sample:
    d = root / "synth"
    write_png(d / "images" / "test" / "test_0000000.png")
    write_png(d / "images" / "test" / "test_0000001.png")
    lines = [
        {"id": 0, "image": "images/test/test_0000000.png", "task": "count",
         "conversations": [{"from": "human", "value": "<image>\nHow many shapes?"}, {"from": "gpt", "value": "3"}]},
        {"id": 1, "image": "images/test/test_0000001.png", "task": "count",
         "conversations": [{"from": "human", "value": "<image>\nHow many circles?"}, {"from": "gpt", "value": "2"}]},
        {"id": 2, "image": "images/test/test_0000001.png", "task": "color",
         "conversations": [{"from": "human", "value": "<image>\nWhat colour is it?"},
                           {"from": "gpt", "value": "red"}]},
    ]
    write_jsonl(d / "test.jsonl", lines)
    (d / "meta_test.json").write_text(json.dumps({"synth_test": {
        "root": "/nonexistent/moved", "annotation": "/nonexistent/moved/test.jsonl", "data_augment": False,
        "repeat_time": 1, "length": 3}}))
    (d / "meta_train.json").write_text(json.dumps({"synth_train": {"root": ".", "annotation": "train.jsonl"}}))
    # 3 right, 2 wrong (answer 4), " Red " right -> 2/3 ; count 50, color 100
    return Sample(by_marker({"shapes": "3", "circles": "4", "colour": " Red "}), 200 / 3, 3)


SAMPLES = {f.__name__: f for f in (textvqa, docvqa, infovqa, chartqa, ai2d, ocrbench, mmbench_en, mmbench_cn, ccbench,
                                   realworldqa, seed, scienceqa, mmmu, mathvista, mme, pope, hallusionbench,
                                   synth)}

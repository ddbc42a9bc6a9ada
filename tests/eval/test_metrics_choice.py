"""Worked examples of eval-metrics.md §6-9 (choice extraction, MME, POPE, HallusionBench, MMMU, MathVista)."""

import pytest

from tessera.eval.metrics import (
    can_infer,
    circular_eval,
    eval_open,
    hallusion_label,
    hallusion_scores,
    ivl_letter,
    mathvista_correct,
    mme_label,
    mme_subtask_score,
    parse_open_response,
    pope_label,
    pope_metrics,
    seed_letter,
)
from tessera.eval.metrics.mathvista import extract_answer, normalize_extraction

OPTIONS = {"A": "dog", "B": "cat", "C": "bird", "D": "fish"}


# --- §6a/6b letter extraction --------------------------------------------------------------------------------
@pytest.mark.parametrize("pred,ivl,vlmevalkit", [
    ("B", "B", "B"),
    ("B. cat", "B", "B"),
    ("The answer is cat", "B", "B"),
    ("Both are pets", "B", None),
    ("(C)", "(C)", "C"),
    ("A cat is on the mat", "A", "A"),
    ("B or C", "B", None),
    ("I think it is a bird", "C", "C"),
    ("c", "c", None),
])
def test_letter_extraction_worked_examples(pred, ivl, vlmevalkit):
    assert ivl_letter(pred, OPTIONS) == ivl
    assert can_infer(pred, OPTIONS) == vlmevalkit


def test_letter_extraction_edge_cases():
    assert ivl_letter("", OPTIONS) == ""
    assert ivl_letter("  D  ", OPTIONS) == "D"
    assert can_infer("", OPTIONS) is None
    assert can_infer("Cannot determine the answer", OPTIONS) == "Z"
    assert can_infer("Failed to obtain answer via API", OPTIONS) is None
    assert can_infer("答案是 B", {"A": "猫", "B": "狗"}) == "B"
    assert can_infer("这是狗", {"A": "猫", "B": "狗"}) == "B"  # unicode option text


def test_seed_first_character_rule():
    assert seed_letter("B. cat") == "B"
    assert seed_letter("B") == "B"
    assert seed_letter(" B") == " "  # no strip: scores wrong, as in the reference
    assert seed_letter("") == ""


def test_circular_eval_worked_example():
    # one 4-option question, copies 7, 1000007, 2000007, 3000007 with golds A, D, C, B
    golds = ["A", "D", "C", "B"]
    idx = [7 + k * 1_000_000 for k in range(4)]

    def run(preds):
        rows = [(i, None if can_infer(p, OPTIONS) is None else can_infer(p, OPTIONS) == g)
                for i, p, g in zip(idx, preds, golds)]
        return circular_eval(rows)

    assert run(["A", "D", "C", "B"]) == {7: 1}
    assert run(["A", "D", "C", "A"]) == {7: 0}
    assert run(["A", "D", "C", "unsure"]) == {7: 0}


# --- §7 MME --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pred,label", [
    ("Yes", "yes"), ("No, there is not.", "no"), ("There is a dog", "other"), ("not sure", "no"),
    ("Nope", "no"), ("True", "yes"), ("是", "yes"), ("The answer is no", "other"),
    ("", "other"), ("Yes\n", "yes"), ("不是", "no"), ("否", "no"), ("false", "no"),
])
def test_mme_parsing(pred, label):
    assert mme_label(pred) == label


def test_mme_scoring_worked_example():
    res = mme_subtask_score([(True, True), (True, False), (False, False)])
    assert res["acc"] == pytest.approx(50.0)
    assert res["acc_plus"] == pytest.approx(100 / 3)
    assert res["score"] == pytest.approx(83.3333, abs=1e-3)


# --- §8a POPE ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pred,label", [
    ("Yes", "yes"), ("No", "no"), ("no, there is none", "no"), ("Nope", "yes"), ("NO", "yes"),
    ("There is not a dog.", "no"), ("Yes. But no.", "yes"), ("", "yes"),
])
def test_pope_mapping(pred, label):
    assert pope_label(pred) == label


def test_pope_worked_examples():
    m = pope_metrics(["yes", "no", "yes", "no"], ["yes", "yes", "no", "no"])
    assert m["precision"] == m["recall"] == m["f1"] == m["accuracy"] == pytest.approx(0.5)
    m = pope_metrics(["yes", "yes", "no", "no"], ["yes", "yes", "yes", "no"])
    assert m["precision"] == pytest.approx(1.0)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(0.8)
    assert m["accuracy"] == pytest.approx(0.75)
    assert pope_metrics(["no", "no"], ["yes", "no"])["f1"] == 0.0  # no positives predicted
    with pytest.raises(ValueError, match="by order"):
        pope_metrics(["yes"], ["yes", "no"])


# --- §8b HallusionBench --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pred,label", [
    ("Yes, it is.", "Yes"), ("The answer is no!", "No"), ("Yes and no", "Unknown"), ("Nope", "Unknown"),
    ("", "Unknown"), ("YES", "Yes"),
])
def test_hallusion_extraction(pred, label):
    assert hallusion_label(pred) == label


def test_hallusion_worked_example():
    rows = [("VD_chart_1_0_0_0", "chart", True), ("VD_chart_1_0_1_0", "chart", True),
            ("VD_chart_1_0_0_1", "chart", True), ("VD_chart_1_0_1_1", "chart", False)]
    # index fields 3,4,5 = set 0, figure f, question q: (q0,f0)=1, (q0,f1)=1, (q1,f0)=1, (q1,f1)=0
    res = hallusion_scores(rows)
    assert res["aAcc"] == pytest.approx(75.0)
    assert res["fAcc"] == pytest.approx(50.0)
    assert res["qAcc"] == pytest.approx(50.0)
    assert res["overall"] == pytest.approx(58.333, abs=1e-3)
    with pytest.raises(ValueError, match="6"):
        hallusion_scores([("bad_index", "x", True)])


# --- §9a MMMU open -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pred,gold,ok", [
    ("The answer is 3.5", "3.5", True),
    ("3,000", "3000", True),
    ("12 meters", "12", True),
    ("x = 4", "4", True),
    ("The answer is 3.6", "3.5", False),
    ("Paris", "paris", True),
    ("", "4", False),
    ("a", "b", False),
    ("The cell is B", ["b", "c"], True),
])
def test_mmmu_open(pred, gold, ok):
    assert eval_open(gold, parse_open_response(pred)) is ok


def test_mmmu_single_char_candidates_are_padded():
    assert set(parse_open_response("b")) == {" b", "b "}


# --- §9b MathVista (rule-approximated) -----------------------------------------------------------------------
MC = {"question_type": "multi_choice", "answer_type": "text", "choices": ["3", "4", "5"], "answer": "4"}
INT = {"question_type": "free_form", "answer_type": "integer", "choices": None, "answer": "12"}
FLT = {"question_type": "free_form", "answer_type": "float", "choices": None, "answer": "1.5", "precision": 1}


@pytest.mark.parametrize("resp,problem,ok", [
    ("4", MC, True), ("B", MC, True), ("(B) 4", MC, True), ("The answer is (C).", MC, False),
    ("12", INT, True), ("12.0", INT, True), ("There are 12 apples.", INT, True), ("13", INT, False),
    ("1.5", FLT, True), ("1.54", FLT, True), ("Answer: 1.46", FLT, True), ("", INT, False),
])
def test_mathvista_rules(resp, problem, ok):
    assert mathvista_correct(resp, problem) is ok


def test_mathvista_normalization():
    assert extract_answer("", INT) == ""
    assert normalize_extraction("", INT) is None
    fruit = {"question_type": "multi_choice", "choices": ["apple", "banana"], "answer": "banana"}
    assert normalize_extraction("banan", fruit) == "banana"  # nearest choice text by edit distance
    assert normalize_extraction("five", MC) == "3"  # ties go to the first choice

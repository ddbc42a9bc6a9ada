"""Worked examples of eval-metrics.md §1-5 (VQA accuracy, ANLS, ChartQA, exact match, OCRBench) + edge cases."""

import pytest

from tessera.eval.metrics import (
    anls,
    exact_match,
    normalize_internvl,
    normalize_official,
    ocrbench_hit,
    relaxed_correct,
    vqa_accuracy,
)

# --- §1 VQA accuracy -----------------------------------------------------------------------------------------
VQA_EXAMPLES = [  # (prediction, answers, normalised prediction (InternVL), score (InternVL))
    ("yes", ["yes"] * 10, "yes", 1.0),
    ("two", ["2"] * 2 + ["3"] * 8, "2", 0.6),
    ("The Dog.", ["dog"] + ["cat"] * 9, "dog", 0.3),
    ("1,000", ["1000"] * 3 + ["100"] * 7, "1000", 0.9),
    ("coca-cola", ["coca cola"] * 4 + ["coke"] * 6, "coca cola", 1.0),
    ("It's red", ["its red"] * 10, "it 's red", 0.0),
    ("Yes", ["yes"] * 10, "yes", 1.0),
    ("Yes", ["yes"] * 9 + ["no"], "yes", 1.0),
]


@pytest.mark.parametrize("pred,answers,norm,score", VQA_EXAMPLES)
def test_vqa_internvl_worked_examples(pred, answers, norm, score):
    assert normalize_internvl(pred) == norm
    assert vqa_accuracy(pred, answers, "internvl") == pytest.approx(score)


def test_vqa_official_variant_differs_on_identical_answers():
    assert vqa_accuracy("Yes", ["yes"] * 10, "official") == 0.0  # raw, case-sensitive comparison
    assert vqa_accuracy("Yes", ["yes"] * 9 + ["no"], "official") == pytest.approx(1.0)


@pytest.mark.parametrize("k,expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_closed_form(k, expected):
    assert vqa_accuracy("cat", ["cat"] * k + ["dog"] * (10 - k)) == pytest.approx(expected)


@pytest.mark.parametrize("text,internvl,official", [
    ("1,000-2,000", "1000 2000", "10002000"),
    ("a/b", "b", "b"),
    ("(a)", "", ""),
    ("U.S.A.", "usa", "usa"),
    ("$3.50", "$3.50", "$3.50"),
    ("red / blue", "red blue", "red blue"),
])
def test_vqa_normalizers(text, internvl, official):
    assert normalize_internvl(text) == internvl
    assert normalize_official(text) == official


def test_vqa_period_quirks():
    assert normalize_internvl("5.") == "5"  # mistyped look-behind: only "followed by digit" is spared
    assert normalize_internvl("3.5") == "3.5"
    # at most 32 periods are removed (regex flag passed as count)
    assert normalize_internvl("." * 40 + "x") == "." * 8 + "x"


def test_vqa_edge_cases():
    assert vqa_accuracy("", ["yes"] * 10) == 0.0
    assert vqa_accuracy("", [""] * 10) == 1.0
    assert vqa_accuracy("Café", ["café"] * 10) == 1.0  # unicode lowercases fine
    assert vqa_accuracy("10 kg", ["10 kg"] * 4 + ["10"] * 6) == 1.0
    assert vqa_accuracy("50%", ["50%"] * 10) == 1.0  # % is not punctuation here
    assert vqa_accuracy("50%", ["50"] * 10) == 0.0
    assert normalize_internvl("dont") == "don't"
    assert normalize_internvl("Im") == "im"  # capitalised table keys can never match after lowercasing
    with pytest.raises(ValueError, match="exactly 10"):
        vqa_accuracy("yes", ["yes"] * 3)
    with pytest.raises(ValueError, match="normaliser"):
        vqa_accuracy("yes", ["yes"] * 10, "bogus")


# --- §2 ANLS -------------------------------------------------------------------------------------------------
ANLS_EXAMPLES = [
    ("hello wrld", ["hello world"], 1 - 1 / 11),
    ("Hello World", ["hello world"], 1.0),
    ("  hello   world ", ["hello world"], 1.0),
    ("hello    wrld", ["hello world"], 1 - 1 / 13),
    ("ab", ["ac"], 0.5),
    ("abcde", ["abxyz"], 0.0),
    ("Jan 2020", ["January 2020", "Jan. 2020"], max(1 - 4 / 12, 1 - 1 / 9)),
    ("1.5", ["1.50"], 0.75),
    ("", ["abc"], 0.0),
    ("", [""], 1.0),
]


@pytest.mark.parametrize("pred,answers,score", ANLS_EXAMPLES)
def test_anls_worked_examples(pred, answers, score):
    assert anls(pred, answers) == pytest.approx(score, abs=1e-6)


def test_anls_edge_cases():
    assert anls("straße", ["STRASSE"]) == pytest.approx(1 - 2 / 7)  # upper("straße") has 7 chars
    assert anls("50 %", ["50%"]) == pytest.approx(0.75)
    with pytest.raises(TypeError, match="list"):
        anls("x", "x")
    with pytest.raises(ValueError, match="at least one"):
        anls("x", [])


# --- §3 ChartQA relaxed accuracy -----------------------------------------------------------------------------
CHART_EXAMPLES = [  # (pred, gold, internvl order, gold-denominator order)
    ("10.4", "10", True, True),
    ("10", "10.52", False, True),
    ("10.52", "10", True, False),
    ("45%", "45", False, False),
    ("0.45", "45%", True, True),
    ("Yes", "yes", True, True),
    ("0", "0", True, True),
    ("0.0", "0", False, False),
    ("1,000", "1000", False, False),
    ("-5", "5", False, False),
]


@pytest.mark.parametrize("pred,gold,internvl,gold_order", CHART_EXAMPLES)
def test_chartqa_worked_examples(pred, gold, internvl, gold_order):
    assert relaxed_correct(pred, gold, "internvl") is internvl
    assert relaxed_correct(pred, gold, "gold") is gold_order


def test_chartqa_edge_cases():
    assert relaxed_correct("  10.4 \n", "10") is True  # prediction stripped
    assert relaxed_correct("10", [" 99", "10"]) is True  # any annotation
    assert relaxed_correct("", "") is True and relaxed_correct("", "5") is False
    assert relaxed_correct("12 kg", "12") is False  # units do not parse
    assert relaxed_correct("1e1", "10") is True  # Python float accepts exponents
    with pytest.raises(ValueError, match="order"):
        relaxed_correct("1", "1", "paper")


# --- §4 exact match ------------------------------------------------------------------------------------------
def test_exact_match_ai2d_rules():
    assert exact_match("A", "A") and exact_match(" a \n", "A")
    assert not exact_match("A.", "A") and not exact_match("(A)", "A")
    assert not exact_match("", "A")


# --- §5 OCRBench ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pred,answers,hme,hit", [
    ('The text is "HELLO".', ["hello"], False, 1),
    ("hell", ["hello"], False, 0),
    ("2013", ["1"], False, 1),
    ("foo\nbar", ["foo bar"], False, 1),
    ("foo  bar", ["foo bar"], False, 0),
    (r"\frac { 1 } { 2 }", [r"\frac{1}{2}"], True, 1),
    ("X^2", ["x^2"], True, 0),
])
def test_ocrbench_worked_examples(pred, answers, hme, hit):
    assert ocrbench_hit(pred, answers, hme=hme) == hit


def test_ocrbench_edge_cases():
    assert ocrbench_hit("", ["a"]) == 0
    assert ocrbench_hit("ÉCOLE", ["école"]) == 1
    assert ocrbench_hit("anything", "thing") == 1  # a bare string answer is one answer

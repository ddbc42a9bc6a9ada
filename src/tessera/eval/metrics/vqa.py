"""VQA accuracy (TextVQA, VQAv2, OKVQA, VizWiz) with the two answer normalisers that matter for InternVL 1.5.

* ``internvl``: the EvalAI/MMF answer processor that InternVL's TextVQA scorer applies to the prediction and to
  every human answer, always (eval-metrics.md §1, steps 1-7).
* ``official``: the GT-Vision-Lab ``vqaEval.py`` behaviour: newline/tab clean-up always, steps 3-7 only when the
  ten human answers are not all identical (so an all-identical answer set is compared raw and case-sensitively).

Quirks kept on purpose because matching the reference numbers is the goal: the period regex only spares periods
that are *followed* by a digit (the look-behind is mistyped in the reference), at most 32 periods are removed (the
regex flag sits in the ``count`` slot), and the contraction table keeps its unreachable capitalised keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# The official VQA scorer's contraction table (120 pairs, identical in InternVL's copy), reproduced as data.
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
# Order matters only for readability: every character is tested against the pass's *input* text.
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
               ",", "?", "!")
# InternVL/MMF spell the digit-comma-digit test as a look-around run of commas; vqaEval.py (and VLMEvalKit)
# as a single "digit , digit". They differ only on runs like "1,,2", but both are kept.
_DIGIT_COMMA_DIGIT = re.compile(r"(?<=\d)(,)+(?=\d)")
_DIGIT_COMMA_DIGIT_OFFICIAL = re.compile(r"(\d)(,)(\d)")
# Reference regex verbatim in behaviour: "(?!<=\d)" is a look-ahead for the text "<=digit", always true here.
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_PERIOD_MAX_REMOVALS = 32  # re.UNICODE (== 32) was passed where ``count`` goes.

VARIANTS = ("internvl", "official")


def process_punctuation(text: str, *, official: bool = False) -> str:
    """Punctuation pass + period pass (steps 3-4): delete or space out the 21 characters, drop sentence periods.

    ``official=True`` uses vqaEval.py's digit-comma-digit pattern (also VLMEvalKit's 2024 ``process_punctuation``).
    """
    out = text
    pattern = _DIGIT_COMMA_DIGIT_OFFICIAL if official else _DIGIT_COMMA_DIGIT
    has_digit_comma = pattern.search(text) is not None
    for char in PUNCTUATION:
        if (char + " " in text or " " + char in text) or has_digit_comma:
            out = out.replace(char, "")
        else:
            out = out.replace(char, " ")
    return _PERIOD.sub("", out, count=_PERIOD_MAX_REMOVALS)


def process_digit_article(text: str) -> str:
    """Steps 5-7: lowercase, number words to digits, drop articles, restore contractions, single-space join."""
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize_internvl(text: str) -> str:
    """InternVL/MMF EvalAI answer processor (steps 1-7), applied unconditionally.

    >>> normalize_internvl("The Dog.")
    'dog'
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def normalize_official(text: str) -> str:
    """Official VQA scorer processing of one answer (steps 3-7; no lowercasing before the punctuation pass)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text, official=True))


def _leave_one_out(prediction: str, answers: Sequence[str]) -> float:
    """Mean over i of min(1, matches among the other answers / 3)."""
    total = 0.0
    for i in range(len(answers)):
        matches = sum(1 for j, answer in enumerate(answers) if j != i and answer == prediction)
        total += min(1.0, matches / 3.0)
    return total / len(answers)


def vqa_accuracy(prediction: str, answers: Sequence[str], variant: str = "internvl") -> float:
    """Soft VQA accuracy of one prediction against the human answers (0, 0.3, 0.6, 0.9 or 1.0 for 10 answers).

    ``variant="internvl"`` requires exactly 10 answers, as InternVL's TextVQA scorer does.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown VQA normaliser {variant!r}; use one of {VARIANTS}")
    if not answers:
        raise ValueError("VQA accuracy needs at least one human answer; got none")
    if variant == "internvl":
        if len(answers) != 10:
            raise ValueError(f"InternVL's VQA scorer expects exactly 10 human answers, got {len(answers)}")
        return _leave_one_out(normalize_internvl(prediction), [normalize_internvl(a) for a in answers])
    cleaned = [a.replace("\n", " ").replace("\t", " ").strip() for a in answers]
    pred = prediction.replace("\n", " ").replace("\t", " ").strip()
    if len(set(cleaned)) > 1:
        cleaned = [process_digit_article(process_punctuation(a, official=True)) for a in cleaned]
        pred = process_digit_article(process_punctuation(pred, official=True))
    return _leave_one_out(pred, cleaned)

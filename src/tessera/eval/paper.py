"""Published reference numbers per checkpoint, to print beside measured scores.

Sources: the InternVL 1.5 evaluation guide figures quoted in the project's fact sheet (§8) and eval-metrics.md
(§0). Values use each benchmark's headline scale (%, OCRBench /1000, MME sum); ``tiles`` is the max_tiles the
number was obtained with. The Mini 2B/4B entries are empty: the fact sheets carry no numbers for them.
"""

from __future__ import annotations

from pathlib import PurePath

# benchmark -> (value, max_tiles, what the number is)
PAPER: dict[str, dict[str, tuple[float, int, str]]] = {
    "internvl-chat-v1-5": {
        "textvqa": (80.61, 24, "val, InternVL VQA accuracy"),
        "docvqa": (90.49, 18, "val ANLS"),
        "infovqa": (72.35, 24, "val ANLS"),
        "chartqa": (83.8, 12, "test, mean of human 73.6 / augmented 94.08"),
        "ocrbench": (724.0, 6, "VLMEvalKit"),
        "mme": (2191.94, 12, "perception 1658.37 + cognition 533.57"),
        "ai2d": (80.73, 6, "test, exact match (2493/3088)"),
        "mmmu": (45.2, 6, "val, rule-based"),
        "mmbench_en": (82.17, 6, "test split, official server"),
        "mmbench_cn": (81.95, 6, "test split, official server"),
        "ccbench": (70.0, 6, "dev"),
        "seed": (75.99, 6, "image accuracy"),
        "hallusionbench": (49.3, 6, "mean(aAcc 66.77, fAcc 40.17, qAcc 40.88), VLMEvalKit"),
        "mathvista": (53.5, 6, "testmini, GPT-4 answer extraction"),
        "realworldqa": (66.0, 6, "VLMEvalKit"),
    },
    "mini-internvl-chat-2b-v1-5": {},
    "mini-internvl-chat-4b-v1-5": {},
}


def checkpoint_key(model: str) -> str:
    """``OpenGVLab/InternVL-Chat-V1-5`` or ``/ckpt/InternVL-Chat-V1-5/`` -> ``internvl-chat-v1-5``."""
    return PurePath(str(model).rstrip("/\\")).name.lower()


def paper_number(model: str, benchmark: str) -> tuple[float, int, str] | None:
    """(value, max_tiles, description) for this checkpoint and benchmark, or None when unknown."""
    return PAPER.get(checkpoint_key(model), {}).get(benchmark)

"""Every text the synthetic tasks can produce, for training a small tokenizer that covers them."""

from __future__ import annotations

import itertools

from . import vocab as V


def _fill(templates: tuple[str, ...], **choices: list[str]) -> list[str]:
    """All instantiations of the templates with every combination of the given placeholder values."""
    keys = list(choices)
    out = []
    for template in templates:
        for values in itertools.product(*(choices[k] for k in keys)):
            out.append(template.format(**dict(zip(keys, values))))
    return out


def text_corpus(chinese: bool = True, describe: bool = False, locate: bool = False,
                tally: bool = False, paint: bool = False, tally_kind: bool = False) -> list[str]:
    """Lines of text: system messages, role names, every question and answer, page words, numbers and labels.

    Deterministic (same list every call). ``chinese`` adds the Chinese phrasings and colour names; the tokenizer
    of the bundled model is trained with them whether or not the data uses them, so it is independent of fonts.
    ``describe`` adds the questions and answer lines of the training-only ``describe`` task; ``locate``,
    ``tally``, ``paint`` and ``tally_kind`` those of their tasks (off: the bundled tokenizer was trained before they existed and
    encodes them from its pieces).
    Chat special tokens (``<|im_start|>`` ...) are not included: the tokenizer adds them as whole pieces; role
    names and newlines are, in the shape the internlm2-chat template gives them.
    """
    colors, kinds = list(V.COLORS), list(V.SHAPES)
    lines = [V.SYSTEM_MESSAGE, V.SYSTEM_MESSAGE_LATER, "system", "user", "assistant"]
    lines += list(V.Q_COUNT_ALL)
    lines += _fill(V.Q_COUNT_COLOR, color=colors)
    lines += _fill(V.Q_COUNT_KIND, kinds=[V.SHAPES_PLURAL[k] for k in kinds])
    lines += _fill(V.Q_COLOR_KIND, kind=kinds)
    lines += _fill(V.Q_COLOR_POS + V.Q_SHAPE_POS, pos=list(V.POSITIONS))
    lines += _fill(V.Q_SHAPE_COLOR, color=colors)
    lines += _fill(V.Q_POSITION, color=colors, kind=kinds)
    if describe:  # off by default: the shipped model's tokenizer was trained without them, and stays reproducible
        lines += list(V.Q_DESCRIBE)
        lines += [f"{pos}: {c} {k}" for pos in V.POSITIONS for c in colors for k in kinds]
    if locate:
        lines += list(V.Q_LOCATE)
        lines += [f"{c} {k}: {pos}" for pos in V.POSITIONS for c in colors for k in kinds]
    if tally:
        lines += list(V.Q_TALLY)
        lines += [f"{c}: {n}" for c in colors for n in range(7)]
    if paint:
        lines += list(V.Q_PAINT)
        lines += [f"{k}: {c}" for k in kinds for c in colors]
    if tally_kind:
        lines += list(V.Q_TALLY_KIND)
        lines += [f"{V.SHAPES_PLURAL[k]}: {n}" for k in kinds for n in range(7)]
    lines += _fill(V.Q_READ, box=list(V.BOX_COLORS))
    lines += _fill(V.Q_CHART_VALUE, label=list(V.CHART_LABELS))
    lines += list(V.Q_CHART_MAX + V.Q_CHART_MIN + V.Q_BAR_MAX + V.Q_BAR_MIN)
    # Answers and page/chart texts.
    lines += [str(i) for i in range(10)] + colors + kinds + list(V.POSITIONS)
    lines += list(V.WORDS) + list(V.CHART_LABELS)
    lines += [str(n) for n in range(V.NUMBER_RANGE[0], V.NUMBER_RANGE[1] + 1)]
    lines += [" ".join(V.WORDS[i : i + 8]) for i in range(0, len(V.WORDS), 8)]  # words as they sit on a page
    if chinese:
        zh_colors, zh_kinds = [V.COLORS_ZH[c] for c in colors], [V.SHAPES_ZH[k] for k in kinds]
        lines += list(V.Q_COUNT_ALL_ZH)
        lines += _fill(V.Q_COUNT_COLOR_ZH, color=zh_colors)
        lines += _fill(V.Q_COUNT_KIND_ZH + V.Q_COLOR_KIND_ZH, kind=zh_kinds)
        lines += zh_colors
    # The same texts as they appear in a chat prompt: after a role header, after "</img>\n" or "\n".
    questions = [line for line in lines[5:] if line.endswith(("?", ".", "？"))]  # [5:]: not the system lines
    lines += ["system\n" + m for m in (V.SYSTEM_MESSAGE, V.SYSTEM_MESSAGE_LATER)]
    lines += ["user\n" + q for q in questions] + ["\n" + q for q in questions] + ["assistant\n"]
    return lines

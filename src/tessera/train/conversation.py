"""Turn one training conversation into ``input_ids`` and ``labels`` the way the official preprocessors do.

The prompt is the template's MPT rendering with the template's default system message (or the recipe's),
the whole multi-turn conversation, and each ``<image>`` replaced by its image block (fact sheet 7.4).
Labels (IGNORE_INDEX = -100 elsewhere) cover exactly the assistant answers and the separator that closes
each answer (``<|im_end|>`` / ``<|end|>``): not BOS, the system prompt, user turns, role headers or image
tokens.

The official code tokenizes the full text once and finds the answer spans by re-tokenizing substrings;
when its span arithmetic disagrees with the full tokenization it masks the whole sample ("tokenization
mismatch"). Here the span boundaries come from tokenizing the prefix of the rendered text that ends at
each boundary and checking that those ids are a prefix of the full ids; a boundary that the tokenizer
merges across is the same mismatch, and such a sample is skipped (and counted) instead of being trained
with no labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..templates import IMAGE_PLACEHOLDER, IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN, Template
from ..tokenizer import Tokenizer

IGNORE_INDEX = -100
SUPPORTED_TEMPLATES = ("internlm2-chat", "phi3-chat", "Hermes-2")


class SkipSample(Exception):
    """A sample that cannot be trained on; ``reason`` is a key of :data:`tessera.train.data.REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Encoded:
    """One tokenized sample: ``input_ids`` and ``labels`` (same length, -100 = no loss)."""

    input_ids: list[int]
    labels: list[int]
    text: str  # the rendered prompt, image blocks expanded


def normalize_turns(conversations: object) -> list[tuple[int, str]]:
    """The official turn rules: a first turn not from ``human`` is dropped, then roles must alternate
    human/gpt. Returns [(0 = user | 1 = assistant, text)]."""
    if not isinstance(conversations, list) or not conversations:
        raise SkipSample("malformed_sample", "'conversations' must be a non-empty list of {from, value}")
    roles = {"human": 0, "user": 0, "gpt": 1, "assistant": 1}
    turns: list[tuple[int, str]] = []
    for turn in conversations:
        if not isinstance(turn, dict) or turn.get("from") not in roles or not isinstance(turn.get("value"), str):
            raise SkipSample("malformed_sample", f"bad turn {str(turn)[:80]!r}: need from human|gpt and a string value")
        turns.append((roles[turn["from"]], turn["value"]))
    if turns[0][0] != 0:
        turns = turns[1:]
    for i, (role, _) in enumerate(turns):
        if role != i % 2:
            raise SkipSample("malformed_sample", "turns must alternate human/gpt after the first human turn")
    if not any(role == 1 for role, _ in turns):
        raise SkipSample("no_labels", "the conversation has no gpt answer")
    return turns


def segments(
    template: Template, turns: Sequence[tuple[int, str]], system_message: str | None
) -> list[tuple[str, bool]]:
    """The rendered prompt as consecutive (text, is_label) pieces whose concatenation is the MPT rendering:
    system + sep; user role + text + sep; assistant role; answer + sep (the labelled piece)."""
    strip = template.name in ("internlm2-chat", "Hermes-2")  # preprocess_internlm/mpt strip each value
    sys_msg = template.system_message if system_message is None else system_message
    out = [(template.system_template.format(system_message=sys_msg) + template.sep, False)]
    for role, text in turns:
        text = text.strip() if strip else text
        prefix = template.roles[role]
        if not text:  # MPT renders an empty message as the role alone
            out.append((prefix, False))
        elif role == 0:
            out.append((prefix + text + template.sep, False))
        else:
            out.append((prefix, False))
            out.append((text + template.sep, True))
    return out


def expand_images(pieces: list[tuple[str, bool]], image_blocks: Sequence[str]) -> list[tuple[str, bool]]:
    """Replace the first remaining ``<image>`` of the prompt by each image block in turn."""
    blocks = list(image_blocks)
    out = []
    for text, is_label in pieces:
        while blocks and IMAGE_PLACEHOLDER in text:
            if is_label:
                raise SkipSample("malformed_sample", "an <image> placeholder sits in a gpt answer")
            text = text.replace(IMAGE_PLACEHOLDER, blocks.pop(0), 1)
        out.append((text, is_label))
    if blocks:
        raise SkipSample("malformed_sample", f"{len(image_blocks)} images but fewer <image> placeholders")
    return out


def encode_conversation(
    tokenizer: Tokenizer,
    template: Template,
    turns: Sequence[tuple[int, str]],
    image_blocks: Sequence[str] = (),
    *,
    system_message: str | None = None,
    max_length: int | None = None,
) -> Encoded:
    """Render, tokenize and label one conversation; truncate to ``max_length`` unless that would cut an
    image block (then :class:`SkipSample` ``image_truncated``)."""
    if template.name not in SUPPORTED_TEMPLATES:
        raise ValueError(f"training supports the templates {SUPPORTED_TEMPLATES}, not {template.name!r}")
    pieces = expand_images(segments(template, turns, system_message), image_blocks)
    text = "".join(t for t, _ in pieces)
    ids = tokenizer.encode(text)
    labels = [IGNORE_INDEX] * len(ids)
    offset = 0
    for piece, is_label in pieces:
        start_char, offset = offset, offset + len(piece)
        if not is_label:
            continue
        start, end = _boundary(tokenizer, text, start_char, ids), _boundary(tokenizer, text, offset, ids)
        labels[start:end] = ids[start:end]
    if max_length is not None and len(ids) > max_length:
        image_ids = {tokenizer.convert_tokens_to_ids(t) for t in (IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN)}
        if any(i in image_ids for i in ids[max_length:]):
            raise SkipSample("image_truncated", f"{len(ids)} tokens > max_seq_length {max_length} inside an image")
        ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        raise SkipSample("no_labels", "no answer token within max_seq_length")
    return Encoded(ids, labels, text)


def _boundary(tokenizer: Tokenizer, text: str, char: int, full: list[int]) -> int:
    """Token index where ``text[:char]`` ends inside ``full`` (the ids of the whole text)."""
    if char >= len(text):
        return len(full)
    prefix = tokenizer.encode(text[:char])
    if full[: len(prefix)] != prefix:
        raise SkipSample(
            "tokenization_mismatch", f"the tokenizer merges across an answer boundary near {text[max(0, char - 20):char + 20]!r}"
        )
    return len(prefix)

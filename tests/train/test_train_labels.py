"""Label masking, token by token: only assistant answers and their closing separator carry labels.

The oracle is independent of tessera.train.conversation: the prompt is rendered with tessera.templates
(conformance-tested against the official templates), tokenized once, the text is rebuilt from the token
pieces with their character spans, and a token must be labelled exactly when it lies inside
"answer + separator" right after an assistant role header.
"""

from __future__ import annotations

import pytest

from tessera.templates import get_template, image_tokens, render
from tessera.tokenizer import Tokenizer
from tessera.train.conversation import IGNORE_INDEX, SkipSample, encode_conversation, normalize_turns

from conftest import conformance_path

CASES = {
    "single image": ([("<image>\nWhat colour is the square?", "The square is red.")], 1),
    "multi-turn": ([("<image>\nWhat is it?", "A chart."), ("And the title?", "Sales 2024"), ("Thanks!", "You're welcome.")], 1),
    "text only": ([("Say hello.", "Hello!"), ("Again, in Chinese.", "你好")], 0),
}
TOKENIZERS = {"internlm2-chat": "internlm2", "phi3-chat": "phi3"}


def pieces_with_spans(tok: Tokenizer, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """The text the tokens spell (sentencepiece pieces, byte pieces decoded, added tokens verbatim) and
    each token's character span in it."""
    text, spans, pending = "", [], b""
    for piece in tok.convert_ids_to_tokens(ids):
        start = len(text)
        if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
            pending += bytes([int(piece[3:5], 16)])
            try:
                text += pending.decode("utf-8")
                pending = b""
            except UnicodeDecodeError:
                pass
        else:
            text += piece.replace("\u2581", " ")
        spans.append((start, len(text)))
    return text, spans


@pytest.mark.parametrize("template_name", list(TOKENIZERS))
@pytest.mark.parametrize("case", list(CASES))
def test_labels_cover_exactly_answers_and_separator(template_name, case):
    tok = Tokenizer.from_dir(conformance_path("tokenizers", TOKENIZERS[template_name]))
    template = get_template(template_name)
    qa, n_images = CASES[case]
    convs = []
    for q, a in qa:
        convs += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    blocks = [image_tokens(2, 4)] * n_images
    enc = encode_conversation(tok, template, normalize_turns(convs), blocks, system_message="Be brief.")

    # the prompt is the official rendering with the image block in place of <image>
    messages = [m for q, a in qa for m in ((0, q), (1, a))]
    expected_text = render(template, messages, system_message="Be brief.").replace("<image>", blocks[0] if blocks else "<image>", 1)
    assert enc.text == expected_text
    assert enc.input_ids == tok.encode(expected_text)

    text, spans = pieces_with_spans(tok, enc.input_ids)
    role = template.roles[1].rstrip("\n") if template_name == "phi3-chat" else template.roles[1]
    answer_spans, cursor = [], 0
    for _, a in qa:  # each answer + sep follows its assistant header in the token text
        target = role + a.strip() + template.sep
        at = text.index(target, cursor)
        answer_spans.append((at + len(role), at + len(target)))
        cursor = at + len(target)
    for i, (tid, label, (s, e)) in enumerate(zip(enc.input_ids, enc.labels, spans)):
        inside = any(a <= s and e <= b for a, b in answer_spans)
        if inside:
            assert label == tid, f"token {i} {tok.convert_ids_to_tokens(tid)!r} should be labelled"
        else:
            assert label == IGNORE_INDEX, f"token {i} {tok.convert_ids_to_tokens(tid)!r} should be masked"
    sep_id = tok.convert_tokens_to_ids(template.sep)
    labelled = [x for x in enc.labels if x != IGNORE_INDEX]
    assert labelled.count(sep_id) == len(qa)  # every answer's closing separator, no other separator
    assert enc.labels[0] == IGNORE_INDEX  # BOS
    img = {tok.convert_tokens_to_ids(t) for t in ("<img>", "</img>", "<IMG_CONTEXT>")}
    assert not img & set(labelled)


def test_first_gpt_turn_dropped_and_roles_checked():
    turns = normalize_turns([{"from": "gpt", "value": "hi"}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}])
    assert turns == [(0, "q"), (1, "a")]
    with pytest.raises(SkipSample) as info:
        normalize_turns([{"from": "human", "value": "q"}, {"from": "human", "value": "q2"}])
    assert info.value.reason == "malformed_sample"
    with pytest.raises(SkipSample) as info:
        normalize_turns([{"from": "human", "value": "only a question"}])
    assert info.value.reason == "no_labels"


def test_truncation_never_cuts_an_image():
    tok = Tokenizer.from_dir(conformance_path("tokenizers", "internlm2"))
    template = get_template("internlm2-chat")
    turns = normalize_turns([{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A long answer here."}])
    block = image_tokens(3, 4)
    full = encode_conversation(tok, template, turns, [block], system_message="S.")
    end_img = full.input_ids.index(tok.convert_tokens_to_ids("</img>"))
    with pytest.raises(SkipSample) as info:
        encode_conversation(tok, template, turns, [block], system_message="S.", max_length=end_img)
    assert info.value.reason == "image_truncated"
    cut = len(full.input_ids) - 3
    short = encode_conversation(tok, template, turns, [block], system_message="S.", max_length=cut)
    assert short.input_ids == full.input_ids[:cut] and short.labels == full.labels[:cut]
    with pytest.raises(SkipSample) as info:  # fits the image, but no answer token is left
        encode_conversation(tok, template, turns, [block], system_message="S.", max_length=end_img + 3)
    assert info.value.reason == "no_labels"

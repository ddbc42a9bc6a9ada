"""Conversation templates and prompt building against the queries the official chat()/batch_chat()
built for the three tiny checkpoints."""

from __future__ import annotations

import json

import pytest

from tessera import templates as T
from tessera.tokenizer import Tokenizer

from conftest import MODEL_NAMES, conformance_path


def _reference(model: str) -> dict:
    return json.loads(conformance_path("models", model, "reference.json").read_text(encoding="utf-8"))


def _queries(ref: dict, case: dict) -> list[str]:
    """Rebuild a case's query strings from its question(s), history and num_patches_list."""
    template = T.get_template(ref["template"])
    common = dict(num_image_token=ref["num_image_token"], system_message=ref["system_message"])
    if case.get("api", "chat") == "batch_chat":
        return [
            T.build_query(template, q, num_patches_list=[n], image_prefix="batch", **common)
            for q, n in zip(case["questions"], case["num_patches_list"])
        ]
    patches = case.get("num_patches_list") or ()
    return [T.build_query(template, case["question"], num_patches_list=patches,
                          history=[tuple(h) for h in case.get("history") or ()], **common)]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_reference_queries_and_ids(model):
    ref = _reference(model)
    tok = Tokenizer.from_dir(conformance_path("models", model))
    names = [c["name"] for c in ref["prompts"]]
    assert names == ["text_only", "image_1tile_autoprefix", "image_7tiles", "multi_image_3_2",
                     "multi_turn_2_history", "text_multi_turn", "video_4frames", "batch_3"]
    for case in [*ref["prompts"], *ref["generation"]]:
        queries = _queries(ref, case)
        assert queries == case["queries"], case["name"]
        assert tok.batch_encode(queries, padding_side="left") == (case["input_ids"], case["attention_mask"])
    e2e = ref["e2e"]
    e2e_query = _queries(ref, {"question": e2e["question"], "num_patches_list": [e2e["num_tiles"]]})
    assert e2e_query == e2e["queries"]
    assert [tok.encode(e2e_query[0])] == e2e["input_ids"]
    fwd = ref["forward"]
    fwd_query = _queries(ref, {"question": fwd["question"], "num_patches_list": fwd["num_patches_list"]})
    assert fwd_query == [fwd["query"]]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_stop_token_and_sep_match_reference(model):
    ref = _reference(model)
    template = T.get_template(ref["template"])
    tok = Tokenizer.from_dir(conformance_path("models", model))
    assert template.sep == ref["sep"]
    assert tok.convert_tokens_to_ids(T.stop_token(template)) == ref["chat_eos_token_id"]


def test_system_message_constants():
    head = {_reference(m)["system_message"] for m in MODEL_NAMES}
    assert head == {T.OFFICIAL_HEAD_SYSTEM_MESSAGE}
    assert T.get_template("internlm2-chat").system_message == "You are an AI assistant whose name is InternLM (书生·浦语)."
    assert T.get_template("phi3-chat").system_message == "You are an AI assistant whose name is Phi-3."
    for name, msgs in T.SYSTEM_MESSAGES.items():
        assert T.get_template(name).system_message == msgs["training"]
        assert msgs["head"] == T.OFFICIAL_HEAD_SYSTEM_MESSAGE


def test_system_message_precedence():
    t = T.get_template("phi3-chat")
    assert T.resolve_system_message(t) == t.system_message
    assert T.resolve_system_message(t, config_system_message="cfg") == "cfg"
    assert T.resolve_system_message(t, config_system_message="cfg", system_message="arg") == "arg"
    assert T.get_template("phi3-chat", system_message="cfg").system_message == "cfg"
    assert T.render(T.get_template("phi3-chat", system_message="cfg"), [(0, "Q"), (1, None)]).startswith(
        "<|system|>\ncfg<|end|>")
    q = T.build_query(T.get_template("phi3-chat", system_message="cfg"), "Q", num_image_token=4, system_message="arg")
    assert q.startswith("<|system|>\narg<|end|>")


def test_rendered_formats_from_fact_sheet():
    """Literal renderings quoted in the fact sheet (§5): MPT style, no newline after sep."""
    msgs = [("user", "Q"), ("assistant", None)]
    assert T.render(T.get_template("internlm2-chat"), msgs, system_message="SYS") == (
        "<|im_start|>system\nSYS<|im_end|><|im_start|>user\nQ<|im_end|><|im_start|>assistant\n")
    assert T.render(T.get_template("phi3-chat"), msgs, system_message="SYS") == (
        "<|system|>\nSYS<|end|><|user|>\nQ<|end|><|assistant|>\n")
    hermes = T.get_template("Hermes-2")
    assert T.render(hermes, msgs, system_message="SYS") == T.render(T.get_template("internlm2-chat"), msgs,
                                                                     system_message="SYS")
    assert hermes.stop_str == "<|endoftext|>"


def test_image_tokens_and_prefix_rules():
    t = T.get_template("internlm2-chat")
    assert T.image_tokens(2, 3) == "<img>" + "<IMG_CONTEXT>" * 6 + "</img>"
    with pytest.raises(ValueError):
        T.image_tokens(1, 0)
    block = T.image_tokens(1, 4)
    # chat(): auto prefix on the first turn only
    assert f"user\n{block}\nQ<|im_end|>" in T.build_query(t, "Q", num_patches_list=[1], num_image_token=4)
    with_history = T.build_query(t, "Q", num_patches_list=[1], num_image_token=4, history=[("<image>\nA", "B")])
    assert f"user\n{block}\nA<|im_end|>" in with_history and "user\nQ<|im_end|>" in with_history
    # no image -> no prefix, a literal <image> stays
    assert "<image>" not in T.build_query(t, "Q", num_image_token=4)
    assert "user\nsee <image><|im_end|>" in T.build_query(t, "see <image>", num_image_token=4)
    # placeholders are replaced in order, first one first
    q = T.build_query(t, "a <image> b <image>", num_patches_list=[1, 2], num_image_token=1)
    assert "a <img><IMG_CONTEXT></img> b <img><IMG_CONTEXT><IMG_CONTEXT></img>" in q
    assert T.video_prefix(2) == "Frame1: <image>\nFrame2: <image>\n"


def test_build_query_errors():
    t = T.get_template("internlm2-chat")
    with pytest.raises(ValueError, match="2 images but the prompt has only 1"):
        T.build_query(t, "<image> Q", num_patches_list=[1, 1], num_image_token=4)
    with pytest.raises(ValueError, match="no history support"):
        T.build_query(t, "Q", num_image_token=4, history=[("a", "b")], image_prefix="batch")
    with pytest.raises(ValueError, match="image_prefix"):
        T.build_query(t, "Q", num_image_token=4, image_prefix="other")
    with pytest.raises(ValueError, match="unknown conversation template 'vicuna'"):
        T.get_template("vicuna")
    with pytest.raises(ValueError, match="unknown role"):
        T.render(t, [("system", "x")])


def test_cut_response():
    t = T.get_template("phi3-chat")
    assert T.stop_token(t) == "<|end|>"
    assert T.cut_response("  Hello there <|end|> <|user|> more", t) == "Hello there"
    assert T.cut_response(" no stop ", t) == "no stop"

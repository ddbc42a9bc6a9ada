"""Tokenizer conformance: every case of the official tokenizers' fixtures, prompt ids of the three
tiny checkpoints, decoded generations, and the incremental (streaming) decoder."""

from __future__ import annotations

import json
import shutil
import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tessera.templates import cut_response, get_template
from tessera.tokenizer import TOKENIZER_FILES, IncrementalDecoder, Tokenizer, check_vocab

from conftest import MODEL_NAMES, conformance_path

KINDS = ("internlm2", "phi3")


def _cases(kind: str) -> dict:
    return json.loads(conformance_path("tokenizers", f"cases_{kind}.json").read_text(encoding="utf-8"))


def _reference(model: str) -> dict:
    return json.loads(conformance_path("models", model, "reference.json").read_text(encoding="utf-8"))


_TOKENIZERS: dict[str, Tokenizer] = {}


def _tok(*parts: str) -> Tokenizer:
    key = "/".join(parts)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = Tokenizer.from_dir(conformance_path(*parts))
    return _TOKENIZERS[key]


def _kind_tok(kind: str) -> Tokenizer:
    return _tok("tokenizers", kind)


def _encode_cases():
    return [(k, i) for k in KINDS for i in range(len(_cases(k)["encode"]))]


def _decode_cases():
    return [(k, i) for k in KINDS for i in range(len(_cases(k)["decode"]))]


@pytest.mark.parametrize("kind", KINDS)
def test_meta(kind):
    meta, tok = _cases(kind)["meta"], _kind_tok(kind)
    assert len(tok) == meta["len"]
    assert tok.vocab_size == meta["vocab_size"]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (
        meta["bos_token_id"], meta["eos_token_id"], meta["pad_token_id"], meta["unk_token_id"])
    assert (tok.add_bos_token, tok.add_eos_token) == (meta["add_bos_token"], meta["add_eos_token"])
    assert tok.all_special_tokens == meta["all_special_tokens"]
    assert tok.all_special_ids == meta["all_special_ids"]
    for token, idx in meta["convert_tokens_to_ids"].items():
        assert tok.convert_tokens_to_ids(token) == idx, token
    decoder = tok.added_tokens_decoder
    assert sorted(decoder) == sorted(int(i) for i in meta["added_tokens_decoder"])
    for sid, d in meta["added_tokens_decoder"].items():
        t = decoder[int(sid)]
        assert (t.content, t.special, t.lstrip, t.rstrip, t.single_word) == (
            d["content"], d["special"], d["lstrip"], d["rstrip"], d["single_word"])
    assert tok.added_tokens == {d["content"]: int(i) for i, d in meta["added_tokens_decoder"].items()}


@pytest.mark.parametrize(("kind", "i"), _encode_cases())
def test_encode_case(kind, i):
    case, tok = _cases(kind)["encode"][i], _kind_tok(kind)
    assert tok.encode(case["text"]) == case["input_ids"]
    assert tok.encode(case["text"], add_special_tokens=False) == case["input_ids_no_special"]
    assert tok.convert_ids_to_tokens(case["input_ids"]) == case["tokens"]
    assert tok.tokenize(case["text"]) == tok.convert_ids_to_tokens(case["input_ids_no_special"])
    assert tok.convert_tokens_to_ids(case["tokens"]) == case["input_ids"]
    assert tok.decode(case["input_ids"]) == case["decode"]
    assert tok.decode(case["input_ids"], skip_special_tokens=True) == case["decode_skip_special_tokens"]


@pytest.mark.parametrize(("kind", "i"), _decode_cases())
def test_decode_case(kind, i):
    case, tok = _cases(kind)["decode"][i], _kind_tok(kind)
    assert tok.decode(case["ids"]) == case["decode"]
    assert tok.decode(case["ids"], skip_special_tokens=True) == case["decode_skip_special_tokens"]
    assert tok.batch_decode([case["ids"]], skip_special_tokens=True) == [case["batch_decode_skip_special_tokens"]]


@pytest.mark.parametrize("kind", KINDS)
def test_batch_left_padding(kind):
    case, tok = _cases(kind)["batch_left_padding"], _kind_tok(kind)
    assert case["padding_side"] == "left"
    ids, mask = tok.batch_encode(case["texts"], padding_side="left")
    assert ids == case["input_ids"]
    assert mask == case["attention_mask"]
    right_ids, right_mask = tok.batch_encode(case["texts"], padding_side="right")
    for row, rmask, text in zip(right_ids, right_mask, case["texts"]):
        n = sum(rmask)
        assert row[:n] == tok.encode(text) and set(row[n:]) <= {tok.pad_token_id}


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_prompt_ids_of_checkpoints(model):
    """Recorded queries -> input_ids / attention_mask (batch_3 is left padded), and facts of reference.json."""
    ref, tok = _reference(model), _tok("models", model)
    assert len(tok) == ref["tokenizer_len"] == ref["llm_vocab_size"]
    assert (tok.pad_token_id, tok.bos_token_id) == (ref["pad_token_id"], ref["bos_token_id"])
    assert tok.convert_tokens_to_ids("<IMG_CONTEXT>") == ref["img_context_token_id"]
    assert tok.convert_tokens_to_ids(["<img>", "</img>"]) == [ref["img_start_token_id"], ref["img_end_token_id"]]
    assert len(ref["prompts"]) == 8
    for case in ref["prompts"]:
        ids, mask = tok.batch_encode(case["queries"], padding_side="left")
        assert ids == case["input_ids"], case["name"]
        assert mask == case["attention_mask"], case["name"]
    assert [tok.encode(ref["forward"]["query"])] == ref["forward"]["input_ids"]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_generation_responses(model):
    """generated_ids (BOS placeholder column included) -> decode(skip) -> cut at sep -> responses."""
    ref, tok = _reference(model), _tok("models", model)
    template = get_template(ref["template"])
    cases = [*ref["generation"], ref["e2e"]]
    for case in cases:
        decoded = tok.batch_decode(case["generated_ids"], skip_special_tokens=True)
        if "decoded_skip_special_tokens" in case:
            assert decoded == case["decoded_skip_special_tokens"], case.get("name")
        assert [cut_response(d, template) for d in decoded] == case["responses"], case.get("name", "e2e")
        for row, text in zip(case["generated_ids"], decoded):  # streaming gives the same text
            stream = IncrementalDecoder(tok)
            out = "".join(stream.push(i) for i in row)
            assert out + stream.flush() == text
            assert stream.text == text


def test_unsupported_class_and_missing_files(tmp_path):
    src = conformance_path("tokenizers", "phi3")
    shutil.copytree(src, tmp_path / "t")
    cfg = json.loads((tmp_path / "t" / "tokenizer_config.json").read_text())
    cfg["tokenizer_class"] = "GPT2Tokenizer"
    (tmp_path / "t" / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unsupported tokenizer_class 'GPT2Tokenizer'"):
        Tokenizer.from_dir(tmp_path / "t")
    (tmp_path / "t" / "tokenizer.model").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        Tokenizer.from_dir(tmp_path / "t")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Tokenizer.from_dir(tmp_path / "nope")


def test_add_bos_token_flag(tmp_path):
    shutil.copytree(conformance_path("tokenizers", "internlm2"), tmp_path / "t")
    cfg_path = tmp_path / "t" / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"], cfg["add_eos_token"] = False, True
    cfg_path.write_text(json.dumps(cfg))
    tok, ref = Tokenizer.from_dir(tmp_path / "t"), _kind_tok("internlm2")
    body = ref.encode("Hello, who are you?", add_special_tokens=False)
    assert tok.encode("Hello, who are you?") == body + [ref.eos_token_id]


@pytest.mark.parametrize("kind", KINDS)
def test_save_round_trip(kind, tmp_path):
    tok = _kind_tok(kind)
    tok.save(tmp_path / "out")
    for name in TOKENIZER_FILES:
        assert (tmp_path / "out" / name).read_bytes() == conformance_path("tokenizers", kind, name).read_bytes()
    again = Tokenizer.from_dir(tmp_path / "out")
    for case in _cases(kind)["encode"]:
        assert again.encode(case["text"]) == case["input_ids"]


def test_legacy_llama_sanity(tmp_path):
    """legacy unset -> transformers 4.37.2 treats it as True (no fixture exists: round trip only)."""
    shutil.copytree(conformance_path("tokenizers", "phi3"), tmp_path / "t")
    cfg_path = tmp_path / "t" / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["legacy"]
    cfg_path.write_text(json.dumps(cfg))
    tok = Tokenizer.from_dir(tmp_path / "t")
    assert tok.legacy
    text = "Hello, who are you? 你好"
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text


def test_check_vocab():
    tok = _kind_tok("phi3")
    with pytest.raises(ValueError, match="1020 tokens but the language model's vocab_size is 1019"):
        check_vocab(tok, 1019)
    with pytest.warns(UserWarning, match="fewer than"):
        check_vocab(tok, 1024)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_vocab(tok, 1020)


def test_bad_inputs():
    tok = _kind_tok("internlm2")
    with pytest.raises(TypeError):
        tok.encode(["not", "a", "string"])
    with pytest.raises(TypeError):
        tok.batch_encode("one string")
    with pytest.raises(ValueError, match="padding_side"):
        tok.batch_encode(["a"], padding_side="middle")
    with pytest.raises(IndexError, match="out of range"):
        tok.decode([len(tok) + 5])


@pytest.mark.parametrize("kind", KINDS)
def test_encode_long_image_prompt_is_fast(kind):
    """~10k tokens with 3000 <IMG_CONTEXT>: one regex split, not a per-character scan."""
    tok = _kind_tok(kind)
    text = "<img>" + "<IMG_CONTEXT>" * 3000 + "</img>\n" + "Describe the image in detail, please. 请描述。" * 600
    tok.encode(text[:2000])  # warm up
    start = time.perf_counter()
    ids = tok.encode(text)
    elapsed = time.perf_counter() - start
    assert ids.count(tok.convert_tokens_to_ids("<IMG_CONTEXT>")) == 3000
    assert len(ids) > 10_000
    assert elapsed < 0.5, f"encode took {elapsed:.3f} s"


# ---------------------------------------------------------------- incremental decoding
@pytest.mark.parametrize("kind", KINDS)
def test_incremental_chinese_comes_out_whole(kind):
    """Byte-fallback characters are held back until complete; no U+FFFD is ever emitted."""
    tok = _kind_tok(kind)
    text = "emoji 😀🐼 and rare 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 chars ÄÖÜß ñ 你好，你是谁？"
    ids = tok.encode(text)
    stream = IncrementalDecoder(tok)
    pieces = [stream.push(i) for i in ids]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) + stream.flush() == tok.decode(ids, skip_special_tokens=True)
    emoji = next(i for i, p in enumerate(pieces) if "😀" in p)
    assert pieces[emoji - 3: emoji] == ["", "", ""]  # four byte pieces, text only on the last


def _id_pools(tok: Tokenizer) -> list[int]:
    pieces = [tok.convert_ids_to_tokens(i) for i in range(tok.vocab_size)]
    tricky = [i for i, p in enumerate(pieces) if p.startswith("<0x") or any(c in p for c in " \u2581.,?!'nstmvre")]
    return sorted(set(tricky) | set(tok.added_tokens.values()))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("skip", [True, False])
def test_incremental_matches_full_decode(kind, skip):
    tok = _kind_tok(kind)
    pool = _id_pools(tok)

    @settings(max_examples=250, deadline=None, derandomize=True)
    @given(st.lists(st.one_of(st.sampled_from(pool), st.integers(0, len(tok) - 1)), min_size=1, max_size=16))
    def check(ids):
        stream = IncrementalDecoder(tok, skip_special_tokens=skip)
        out = "".join(stream.push(i) for i in ids)
        full = tok.decode(ids, skip_special_tokens=skip)
        assert full.startswith(out)
        assert out + stream.flush() == full
        assert stream.text == full

    check()


def test_incremental_holds_back_clean_up_tail():
    """InternLM2 cleans " ." -> "." over the whole text, so a trailing space waits for the next piece."""
    tok = _kind_tok("internlm2")
    ids = tok.encode("yes . no", add_special_tokens=False)
    stream = IncrementalDecoder(tok)
    out = [stream.push(i) for i in ids]
    assert "".join(out) + stream.flush() == tok.decode(ids) == "yes. no"


def test_config_without_added_tokens_decoder(tmp_path):
    """Older tokenizer_config.json files lack added_tokens_decoder: added_tokens.json + special maps suffice."""
    shutil.copytree(conformance_path("tokenizers", "internlm2"), tmp_path / "t")
    cfg_path = tmp_path / "t" / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["added_tokens_decoder"]
    cfg_path.write_text(json.dumps(cfg))
    tok, cases = Tokenizer.from_dir(tmp_path / "t"), _cases("internlm2")
    assert len(tok) == cases["meta"]["len"] and tok.all_special_ids == cases["meta"]["all_special_ids"]
    for case in cases["encode"]:
        assert tok.encode(case["text"]) == case["input_ids"]
        assert tok.decode(case["input_ids"]) == case["decode"]

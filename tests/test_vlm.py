"""The Python API reproduces the official chat() / batch_chat() and adds streaming, sampling and stops."""

from __future__ import annotations

import pytest
import torch

import tessera
from tessera.generation import SamplingParams

from conftest import CONFORMANCE, load_fixture_model


@pytest.fixture(scope="module")
def tiny():
    return load_fixture_model("mini-internvl-chat-2b-v1-5-tiny")


def test_chat_and_batch_chat_reproduce_official_responses(fixture):
    vlm, ref, T = fixture
    sm = ref["system_message"]
    for case in ref["generation"]:
        pv = T[case["pixel_values"]].float()
        kw = dict(pixel_values=pv, num_patches_list=case["num_patches_list"], system_message=sm,
                  max_new_tokens=case["max_new_tokens"])
        if case["api"] == "chat":
            assert [vlm.chat(case["question"], **kw)] == case["responses"], case["name"]
        else:
            assert vlm.batch_chat(case["questions"], **kw) == case["responses"], case["name"]


def test_end_to_end_from_an_image_file(fixture):
    vlm, ref, _ = fixture
    e2e = ref["e2e"]
    image = CONFORMANCE / e2e["image"]
    request = vlm.prepare(e2e["question"], [image], max_tiles=e2e["load_image"]["max_num"],
                          system_message=ref["system_message"])
    assert request.input_ids == e2e["input_ids"][0]
    answer = vlm.chat(e2e["question"], [image], max_tiles=e2e["load_image"]["max_num"],
                      system_message=ref["system_message"], max_new_tokens=e2e["max_new_tokens"])
    assert answer == e2e["responses"][0]


def test_prompts_of_every_case(fixture):
    """Prompt strings and ids for text-only, multi-image, multi-turn history and video cases."""
    vlm, ref, _ = fixture
    for case in ref["prompts"]:
        if case["api"] != "chat":
            continue
        history = [tuple(h) for h in case.get("history") or []]
        prompt = vlm.build_prompt(case["question"], num_patches_list=case["num_patches_list"] or [],
                                  history=history, system_message=ref["system_message"])
        assert prompt == case["queries"][0], case["name"]
        assert vlm.tokenizer.encode(prompt) == case["input_ids"][0]


def test_default_system_message_is_the_training_era_one(tiny):
    vlm, _, _ = tiny
    assert vlm.system_message == "You are an AI assistant whose name is InternLM (书生·浦语)."
    assert vlm.build_prompt("hi").startswith("<|im_start|>system\nYou are an AI assistant")


def test_stream_equals_chat(fixture):
    vlm, ref, T = fixture
    case = ref["generation"][0]
    kw = dict(pixel_values=T[case["pixel_values"]].float(), max_new_tokens=24, system_message=ref["system_message"])
    pieces = list(vlm.stream(case["question"], **kw))
    assert len(pieces) > 1
    assert "".join(pieces) == vlm.chat(case["question"], **kw)


def test_batch_equals_one_by_one(tiny):
    vlm, ref, T = tiny
    images = [CONFORMANCE / "preprocess/images" / n for n in ("doc_1000x700.png", "small_320x240.png")]
    questions = ["<image>\nDescribe the image.", "What is in this picture?", "Hello, who are you?"]
    per_q = [[images[0]], [images[1]], None]
    batch = vlm.batch_chat(questions, per_q, max_new_tokens=12, max_tiles=4)
    singles = []
    for q, imgs in zip(questions, per_q):
        q = q if imgs is None or "<image>" in q else "<image>\n" + q
        singles.append(vlm.chat(q, imgs, max_new_tokens=12, max_tiles=4))
    assert batch == singles


def test_multi_turn_history(tiny):
    vlm, ref, T = tiny
    case = next(c for c in ref["prompts"] if c["name"] == "multi_turn_2_history")
    history = [tuple(h) for h in case["history"]]
    pv = T[case["pixel_values"]].float()
    request = vlm.prepare(case["question"], pixel_values=pv, history=history, system_message=ref["system_message"])
    assert request.prompt == case["queries"][0]
    answer, new_history = vlm.chat("Describe it.", pixel_values=pv[:1], max_new_tokens=5, return_history=True)
    assert new_history == [("<image>\nDescribe it.", answer)]
    answer2, history2 = vlm.chat("And again?", pixel_values=pv[:1], history=new_history, max_new_tokens=5,
                                 return_history=True)
    assert history2[:1] == new_history and history2[1] == ("And again?", answer2)


def test_seeded_sampling_is_reproducible(tiny):
    vlm, _, _ = tiny
    kw = dict(max_new_tokens=16, temperature=1.0, top_p=0.9, top_k=50)
    a = vlm.chat("Tell me a story.", seed=7, **kw)
    b = vlm.chat("Tell me a story.", seed=7, **kw)
    c = vlm.chat("Tell me a story.", seed=8, **kw)
    assert a == b
    assert a != c
    # the same seed gives the same text inside a batch of other requests
    batch = vlm.batch_chat(["Tell me a story.", "Hello"], seed=7, **kw)
    assert batch[0] == a


def test_stop_strings_cut_the_answer(tiny):
    vlm, _, _ = tiny
    full = vlm.chat("Hello, who are you?", max_new_tokens=24)
    assert len(full) > 6
    stop = full[4:6]
    cut = vlm.chat("Hello, who are you?", max_new_tokens=24, stop=[stop])
    assert cut == full[: full.index(stop)].strip()
    assert "".join(vlm.stream("Hello, who are you?", max_new_tokens=24, stop=stop)) == cut


def test_max_new_tokens_and_finish_reasons(tiny):
    vlm, _, _ = tiny
    req = vlm.prepare("Hello", params=SamplingParams(max_new_tokens=3))
    outs = [o for step in vlm.run([req]) for o in step]
    assert outs[-1].finished and outs[-1].finish_reason == "length" and outs[-1].num_tokens == 3
    req = vlm.prepare("Hello", params=SamplingParams(max_new_tokens=30))
    outs = [o for step in vlm.run([req], cancelled=lambda i: True) for o in step]
    assert len(outs) == 1 and outs[0].finish_reason == "cancelled"


def test_bad_arguments_are_clear(tiny):
    vlm, _, T = tiny
    pv = T["pixels.image_7tiles"].float()
    with pytest.raises(ValueError, match="num_patches_list sums to 3"):
        vlm.chat("<image>\nhi", pixel_values=pv, num_patches_list=[3])
    with pytest.raises(ValueError, match="placeholder"):
        vlm.chat("<image> and <image>", pixel_values=pv)
    with pytest.raises(ValueError, match="temperature"):
        vlm.chat("hi", temperature=-1)
    with pytest.raises(ValueError, match="max_new_tokens"):
        vlm.chat("hi", max_new_tokens=0)


def test_save_round_trip_keeps_answers(tiny, tmp_path):
    vlm, _, _ = tiny
    out = vlm.save(tmp_path / "copy", dtype=torch.float32)
    again = tessera.load(out, dtype="float32")
    assert again.chat("Hello, who are you?", max_new_tokens=8) == vlm.chat("Hello, who are you?", max_new_tokens=8)


def test_one_vlm_shared_by_threads(tiny):
    """The KV caches live in the model: concurrent calls take turns and all get the right answer."""
    import threading

    vlm, _, _ = tiny
    expected = vlm.chat("Describe a cat.", max_new_tokens=12)
    answers: dict[int, str] = {}

    def work(i: int) -> None:
        answers[i] = vlm.chat("Describe a cat.", max_new_tokens=12)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: expected for i in range(4)}

"""The official meta/JSONL data format, tiling, augmentation, skipping, batching and the step plan."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from synthetic import square_image, write_dataset

from tessera.preprocess import dynamic_tiles
from tessera.templates import get_template
from tessera.tokenizer import Tokenizer
from tessera.train.batching import StepPlan, collate
from tessera.train.data import (
    DataError,
    ImageSettings,
    Sample,
    Skipped,
    TrainDataset,
    read_meta,
    repeat_lines,
)

from conftest import conformance_path

IMAGES = ImageSettings(image_size=56, num_image_token=4, max_tiles=12)


def make_dataset(meta, **kw):
    tok = Tokenizer.from_dir(conformance_path("tokenizers", "internlm2"))
    return TrainDataset(read_meta(meta), tok, get_template("internlm2-chat"), IMAGES, system_message="S.", **kw), tok


def test_repeat_time_fractions():
    assert repeat_lines(10, 0.35) == [0, 1, 2]
    assert repeat_lines(4, 2) == [0, 1, 2, 3] * 2
    assert repeat_lines(4, 1.5) == [0, 1, 2, 3, 0, 1]


def test_meta_errors(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"d": {"root": ".", "annotation": "x.json"}}))
    with pytest.raises(DataError, match="must be a .jsonl"):
        read_meta(tmp_path / "m.json")
    (tmp_path / "m.json").write_text(json.dumps({"d": {"root": ".", "annotation": "missing.jsonl"}}))
    with pytest.raises(DataError, match="not found"):
        read_meta(tmp_path / "m.json")
    with pytest.raises(DataError, match="not found"):
        read_meta(tmp_path / "nope.json")


def test_image_sample_tiles_and_prompt(tmp_path):
    meta = write_dataset(tmp_path, 2, size=(112, 56))  # 2:1 -> a 2x1 grid + thumbnail = 3 tiles
    ds, tok = make_dataset(meta)
    s = ds[(0, 0)]
    assert isinstance(s, Sample)
    img = square_image("red", (112, 56), seed=0)
    np.testing.assert_array_equal(s.tiles, dynamic_tiles(img, max_tiles=12, image_size=56))
    assert s.image_flags == [1, 1, 1]
    ctx = tok.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert s.input_ids.count(ctx) == 3 * 4
    text = tok.decode(s.input_ids)
    assert "What colour is the square?" in text and text.index("</img>") < text.index("What colour")


def test_per_dataset_max_dynamic_patch_and_multi_image(tmp_path):
    (tmp_path / "images").mkdir()
    for i in range(3):
        square_image("blue", (224, 112), seed=i).save(tmp_path / "images" / f"{i}.png")
    lines = [
        {"image": ["images/0.png", "images/1.png"], "conversations": [
            {"from": "human", "value": "<image>\n<image>\nSame?"}, {"from": "gpt", "value": "yes"}]},
        {"image": "images/2.png", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
        {"image": ["images/0.png", "images/1.png"], "conversations": [
            {"from": "human", "value": "<image>\nonly one placeholder"}, {"from": "gpt", "value": "no"}]},
    ]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    (tmp_path / "meta.json").write_text(json.dumps({"a": {"root": str(tmp_path), "annotation": "a.jsonl",
                                                          "max_dynamic_patch": 4}}))
    ds, tok = make_dataset(tmp_path / "meta.json")
    two = ds[(0, 0)]  # each image gets max(1, 4 // 2) = 2 tiles: a 2x1 grid + thumbnail = 3 tiles each
    assert two.tiles.shape[0] == 6 and two.input_ids.count(tok.convert_tokens_to_ids("</img>")) == 2
    one = ds[(0, 1)]  # 2:1 with max 4 tiles: a 2x1 grid + thumbnail (max 12 would give 4x2); "<image>\n" prepended
    assert one.tiles.shape[0] == 3
    assert tok.decode(one.input_ids).index("</img>") < tok.decode(one.input_ids).index("Q")
    bad = ds[(0, 2)]
    assert isinstance(bad, Skipped) and bad.reason == "malformed_sample"


def test_text_only_gets_dummy_tile_and_broken_samples_are_skipped(tmp_path):
    meta = write_dataset(tmp_path, 1, text_only=1, broken=True, extra_lines=[json.dumps({"conversations": "nope"})])
    ds, _ = make_dataset(meta)
    text = ds[(0, 1)]
    assert text.image_flags == [0] and text.tiles.shape == (1, 56, 56, 3) and (text.tiles == 255).all()
    reasons = [ds[(0, i)].reason for i in range(2, len(ds))]
    assert reasons == ["image_missing", "image_unreadable", "malformed_line", "malformed_sample"]


def test_jpeg_augmentation_is_per_key_and_deterministic(tmp_path):
    meta = write_dataset(tmp_path, 1, size=(112, 56), data_augment=True)
    ds, _ = make_dataset(meta)
    a, b, c = ds[(0, 0)].tiles, ds[(0, 0)].tiles, ds[(1, 0)].tiles
    clean = dynamic_tiles(square_image("red", (112, 56), seed=0), max_tiles=12, image_size=56)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, clean)  # re-encoded
    assert np.abs(a.astype(int) - clean).mean() < 8  # quality >= 75 stays close
    assert not np.array_equal(a, c)  # another epoch draws other qualities


def test_collate_flattens_tiles_and_pads():
    s1 = Sample([1, 5, 6, 7], [-100, -100, 6, 7], np.zeros((3, 4, 4, 3), np.uint8), [1, 1, 1])
    s2 = Sample([1, 8], [-100, 8], np.ones((1, 4, 4, 3), np.uint8), [0])
    b = collate([s1, Skipped("image_missing", "x:1"), s2], dummy=s2)
    assert b.input_ids.tolist() == [[1, 5, 6, 7], [1, 8, 0, 0]]
    assert b.labels.tolist() == [[-100, -100, 6, 7], [-100, 8, -100, -100]]
    assert b.tiles.shape == (4, 4, 4, 3) and b.image_flags.tolist() == [1, 1, 1, 0]
    assert b.mask is None and b.num_samples == 2 and b.num_labels == 3 and len(b.skipped) == 1
    packed = collate([s1, s2], dummy=s2, packing=True, max_seq_length=8)
    assert packed.input_ids.tolist() == [[1, 5, 6, 7, 1, 8]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 0, 1]]
    assert packed.mask[0, 0, 5].tolist() == [False, False, False, False, True, True]
    assert packed.mask[0, 0, 3].tolist() == [True, True, True, True, False, False]
    empty = collate([Skipped("malformed_line", "x:2")], dummy=s2)
    assert empty.num_samples == 0 and empty.input_ids.tolist() == [[1, 8]]


def test_step_plan_same_global_batches_for_any_split():
    one = StepPlan(10, per_device=2, world=1, accum=2, seed=3)
    two = StepPlan(10, per_device=2, world=2, accum=1, seed=3)
    for step in range(6):  # 3 steps per epoch, the last one partial
        a = sorted(i for mb in one.micro_batches(step) for i in mb)
        b = sorted(i for mb in two.micro_batches(step) for i in mb)
        assert a == b
    epoch0 = sorted(i for s in range(3) for mb in one.micro_batches(s) for i in mb)
    assert epoch0 == list(range(10))
    r0 = list(two.iter_rank(0, 1, 3))
    r1 = list(two.iter_rank(1, 1, 3))
    assert [k for mb in r0 + r1 for k in mb] and all(e == 0 for mb in r0 + r1 for e, _ in mb)
    lengths = [5, 100, 7, 90, 1, 1, 60, 3]
    grouped = StepPlan(8, per_device=2, world=2, accum=1, seed=0, lengths=lengths)
    mbs = grouped.micro_batches(0)
    assert sorted(i for mb in mbs for i in mb) == sorted(int(i) for i in grouped.order(0)[:4])
    assert all(len(mb) == 2 for mb in mbs)


def test_collate_tensors_feed_the_model():
    from tessera.config import ChatConfig
    from tessera.models.internvl import InternVLChatModel
    from tessera.preprocess import to_pixel_values
    from tessera.train.forward import TrainModule

    torch.manual_seed(0)
    model = InternVLChatModel(ChatConfig.from_name("tiny-internlm2")).eval()
    model.img_context_token_id = 1002
    ids = [1, 1000] + [1002] * 4 + [1001, 20, 30, 40, 998]
    s1 = Sample(ids, [-100] * 8 + [30, 40, 998], np.random.default_rng(0).integers(0, 255, (1, 56, 56, 3), np.uint8), [1])
    s2 = Sample([1, 50, 60, 70], [-100, -100, 60, 70], np.full((1, 56, 56, 3), 255, np.uint8), [0])
    tm = TrainModule(model)
    losses = []
    for packing in (False, True):
        b = collate([s1, s2], dummy=s2, packing=packing, max_seq_length=64)
        losses.append(tm(b.input_ids, b.labels, b.position_ids, to_pixel_values(b.tiles), b.image_flags, b.mask))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-5)  # packing changes nothing
    # the same loss as the chat model's own forward, one sample at a time
    ref = 0.0
    for s in (s1, s2):
        logits = model(torch.tensor([s.input_ids]), to_pixel_values(s.tiles), image_flags=torch.tensor(s.image_flags))
        ref += torch.nn.functional.cross_entropy(logits[0, :-1], torch.tensor(s.labels[1:]), ignore_index=-100, reduction="sum")
    torch.testing.assert_close(losses[0], ref, rtol=1e-5, atol=1e-5)


def test_text_with_literal_image_tokens_is_skipped(tmp_path):
    lines = [json.dumps({"conversations": [{"from": "human", "value": "what is <IMG_CONTEXT>?"},
                                           {"from": "gpt", "value": "a token"}]})]
    meta = write_dataset(tmp_path, 1, extra_lines=lines)
    ds, _ = make_dataset(meta)
    assert isinstance(ds[(0, 0)], Sample)
    skipped = ds[(0, 1)]
    assert isinstance(skipped, Skipped) and skipped.reason == "image_tokens_in_text"

"""A tiny model trained from scratch on coloured squares learns them; its checkpoint loads with
tessera.load, reproduces the trained model's logits and answers the question."""

from __future__ import annotations

import json

import torch
from synthetic import COLOURS, QUESTION, square_image, tiny_recipe, write_dataset

import tessera
from tessera.train import TrainConfig, train

from conftest import conformance_path


def test_tiny_model_learns_colours_and_checkpoint_roundtrips(tmp_path):
    meta = write_dataset(tmp_path / "data", 8, text_only=2, broken=True)
    cfg = TrainConfig.from_dict(tiny_recipe(
        meta, tmp_path / "run", tokenizer_dir=conformance_path("tokenizers", "internlm2"),
        optim={"max_steps": 250, "per_device_batch_size": 8, "warmup_steps": 5, "lr_scheduler": "cosine"},
        run={"save_steps": 100, "plot": True},
    ))
    result = train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 251))
    assert rows[0]["loss"] > 3.0
    assert sum(r["loss"] for r in rows[-10:]) / 10 < 0.05
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert set(report["by_reason"]) == {"image_missing", "image_unreadable", "malformed_line"}
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-200", "checkpoint-250"]

    vlm = tessera.load(result.final_dir)
    assert vlm.config.system_message == "Answer."
    model = result.model.eval()
    pixels, counts = vlm.prepare_images([square_image("green", (56, 56), seed=3)])
    ids = torch.tensor([vlm.tokenizer.encode(vlm.build_prompt(QUESTION, num_patches_list=counts))])
    with torch.no_grad():
        torch.testing.assert_close(vlm.model(ids, pixels), model(ids, pixels), rtol=0, atol=1e-5)
    for i, colour in enumerate(COLOURS):
        answer = vlm.chat(QUESTION, [square_image(colour, (56, 56), seed=i)], max_new_tokens=4)  # a training image
        assert answer == colour

"""Checkpoint I/O: round trip, sharding, clear errors, presets and parameter counts."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tessera.checkpoint import CheckpointError, load_model, resolve, save_model, shard_files
from tessera.config import PRESETS, PUBLISHED_PARAMS, ChatConfig, ConfigError
from tessera.models.internvl import InternVLChatModel

from conftest import MODEL_NAMES, conformance_path


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_identical_tensors_and_config(name, tmp_path):
    src = conformance_path("models", name)
    model, _ = load_model(src)  # bf16, the checkpoint's own dtype
    out = save_model(model, tmp_path / "copy", source_dir=src)
    assert json.loads((out / "config.json").read_text()) == json.loads((src / "config.json").read_text())
    for aux in ("tokenizer.model", "tokenizer_config.json", "added_tokens.json", "generation_config.json"):
        assert (out / aux).read_bytes() == (src / aux).read_bytes()
    original = load_file(str(src / "model.safetensors"))
    saved = load_file(str(out / "model.safetensors"))
    assert original.keys() == saved.keys()
    for key in original:
        assert torch.equal(original[key], saved[key]), key
    reloaded, _ = load_model(out)
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


def test_sharded_save_and_load(tmp_path):
    src = conformance_path("models", MODEL_NAMES[1])
    model, _ = load_model(src, dtype=torch.float32)
    out = save_model(model, tmp_path / "sharded", source_dir=src, max_shard_size=300_000)
    files = shard_files(out)
    assert len(files) > 1
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(model.state_dict())
    reloaded, _ = load_model(out, dtype=torch.float32)
    ids = torch.tensor([[1, 5, 9, 33]])
    with torch.no_grad():
        # bf16 storage: the reload equals the bf16-rounded original
        expected = load_model(src, dtype=torch.float32)[0](ids)
        assert torch.equal(reloaded(ids), expected)


def _copy(tmp_path, name=MODEL_NAMES[0]):
    dst = tmp_path / "ckpt"
    shutil.copytree(conformance_path("models", name), dst)
    return dst


def test_missing_key_is_named(tmp_path):
    ckpt = _copy(tmp_path)
    tensors = load_file(str(ckpt / "model.safetensors"))
    del tensors["mlp1.1.weight"]
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"missing tensors mlp1\.1\.weight"):
        load_model(ckpt)


def test_unexpected_and_misshaped_keys(tmp_path):
    ckpt = _copy(tmp_path)
    tensors = load_file(str(ckpt / "model.safetensors"))
    tensors["language_model.extra.weight"] = torch.zeros(2)
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'language_model\.extra\.weight'"):
        load_model(ckpt)
    del tensors["language_model.extra.weight"]
    tensors["mlp1.3.weight"] = torch.zeros(3, 3, dtype=torch.bfloat16)
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"'mlp1\.3\.weight' has shape \(3, 3\)"):
        load_model(ckpt)


def test_truncated_shard(tmp_path):
    ckpt = _copy(tmp_path)
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*(truncated|corrupt)"):
        load_model(ckpt)


def test_unknown_architecture_and_missing_files(tmp_path):
    ckpt = _copy(tmp_path)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["llm_config"]["architectures"] = ["LlamaForCausalLM"]
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="LlamaForCausalLM"):
        load_model(ckpt)
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(ckpt)
    with pytest.raises(CheckpointError, match="no such directory"):
        resolve(tmp_path / "nope")


def test_hub_id_goes_through_snapshot_download(monkeypatch, tmp_path):
    ckpt = _copy(tmp_path)
    calls = []

    def fake_download(repo_id, **kwargs):
        calls.append(repo_id)
        return str(ckpt)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_download)
    assert resolve("OpenGVLab/Mini-InternVL-Chat-2B-V1-5") == ckpt
    assert calls == ["OpenGVLab/Mini-InternVL-Chat-2B-V1-5"]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_preset_parameter_counts(name):
    with torch.device("meta"):
        model = InternVLChatModel(ChatConfig.from_name(name))
    total = sum(p.numel() for p in model.parameters())
    published = PUBLISHED_PARAMS[name]
    assert abs(total - published) / published < 0.02, total
    if name == "internvl-chat-v1-5":  # the fact sheet's exact derivations (section 1)
        assert sum(p.numel() for p in model.mlp1.parameters()) == 116_429_824
        assert round(sum(p.numel() for p in model.language_model.parameters()) / 1e9, 3) == 19.861
        assert round(sum(p.numel() for p in model.vision_model.parameters()) / 1e9, 2) == 5.54


def test_presets_round_trip_and_unknown_name():
    for name in PRESETS:
        cfg = ChatConfig.from_name(name)
        assert ChatConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match="unknown preset"):
        ChatConfig.from_name("internvl-9000")


def test_loading_skips_and_restores_the_random_init():
    """The model is built on meta without running nn.init (the checkpoint overwrites every tensor), and the init
    functions are torch's own again afterwards, also when building fails."""
    import torch

    from tessera import checkpoint

    originals = {name: getattr(torch.nn.init, name) for name in checkpoint._INIT_FUNCTIONS}
    with checkpoint._no_init():
        t = torch.zeros(3)
        assert torch.nn.init.normal_(t) is t and torch.equal(t, torch.zeros(3))
    assert {name: getattr(torch.nn.init, name) for name in originals} == originals
    try:
        with checkpoint._no_init():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert {name: getattr(torch.nn.init, name) for name in originals} == originals


def test_concurrent_loads_leave_torchs_init_in_place():
    """Loads from several threads at once: each patches nn.init in turn, and torch's own functions are back
    when they are done (interleaved, one could save another's no-ops as the originals)."""
    import threading

    import torch

    from tessera import checkpoint

    originals = {name: getattr(torch.nn.init, name) for name in checkpoint._INIT_FUNCTIONS}
    inside, overlap = [0], []
    guard = threading.Lock()

    def load():
        with checkpoint._no_init():
            with guard:
                inside[0] += 1
                overlap.append(inside[0])
            threading.Event().wait(0.01)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(overlap) == 1
    assert {name: getattr(torch.nn.init, name) for name in originals} == originals

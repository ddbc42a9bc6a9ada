"""Video frame sampling, the prompt prefix, and decoding a tiny video written with PyAV."""

from __future__ import annotations

import sys

import av  # the "video" extra, part of the dev install
import numpy as np
import pytest
import torch

from tessera.images import ImageNotFound, InvalidImage
from tessera.preprocess import dynamic_tiles, to_pixel_values
from tessera.video import frame_indices, load_video, prepare_video, video_prompt_prefix

COLOURS = [(i * 16, 255 - i * 16, (i * 40) % 256) for i in range(16)]


def official_get_index(bound, fps, max_frame, first_idx=0, num_segments=32):
    """The official helper's arithmetic, written out independently (numpy rounding)."""
    if bound:
        start, end = bound[0], bound[1]
    else:
        start, end = -100000, 100000
    start_idx = max(first_idx, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    return [int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)]


def test_frame_indices_match_official_rule():
    for num_frames in list(range(1, 70)) + [100, 299, 300, 1001, 7200]:
        for segments in (1, 2, 3, 4, 7, 8, 16, 32):
            expected = official_get_index(None, 30.0, num_frames - 1, num_segments=segments)
            assert frame_indices(num_frames, segments) == expected, (num_frames, segments)
            assert frame_indices(num_frames, segments, fps=30.0) == expected
            assert all(0 <= i < num_frames for i in expected)
    for bound in ((1.0, 3.5), (0.0, 100.0), (2.2, 2.9)):
        exp = official_get_index(bound, 24.0, 199, num_segments=8)
        assert frame_indices(200, 8, bound=bound, fps=24.0) == exp


def test_frame_indices_examples_and_errors():
    assert frame_indices(16, 4) == [1, 5, 9, 12]  # max_frame 15, segments of 3.75: midpoints
    assert frame_indices(1, 3) == [0, 0, 0]
    with pytest.raises(ValueError, match="no frames"):
        frame_indices(0, 8)
    with pytest.raises(ValueError, match="num_segments"):
        frame_indices(10, 0)
    with pytest.raises(ValueError, match="fps"):
        frame_indices(10, 2, bound=(0, 1))


def test_video_prompt_prefix_is_the_official_inference_format():
    assert video_prompt_prefix(1) == "Frame1: <image>\n"
    assert video_prompt_prefix(3) == "Frame1: <image>\nFrame2: <image>\nFrame3: <image>\n"
    assert video_prompt_prefix(0) == ""


def _write_video(path, codec="mpeg4", frames=16, size=(64, 48)):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            arr = np.empty((size[1], size[0], 3), np.uint8)
            arr[...] = COLOURS[i % len(COLOURS)]
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv"])  # mkv reports no frame count: frames get counted
def test_load_video_samples_the_right_frames(tmp_path, name):
    path = _write_video(tmp_path / name)
    frames = load_video(path, num_segments=4)
    assert len(frames) == 4
    for frame, idx in zip(frames, frame_indices(16, 4)):
        assert frame.mode == "RGB" and frame.size == (64, 48)
        centre = np.asarray(frame)[24, 32].astype(int)
        assert np.abs(centre - np.array(COLOURS[idx])).max() <= 8, (idx, centre)


def test_prepare_video_one_tile_per_frame(tmp_path):
    path = _write_video(tmp_path / "clip.mp4")
    pixel_values, counts = prepare_video(path, num_segments=8, image_size=56)
    assert counts == [1] * 8
    assert pixel_values.shape == (8, 3, 56, 56) and pixel_values.dtype == torch.float32
    frames = load_video(path, num_segments=8)
    expected = to_pixel_values(np.concatenate([dynamic_tiles(f, max_tiles=1, image_size=56) for f in frames]))
    assert torch.equal(pixel_values, expected)
    bf, _ = prepare_video(str(path), num_segments=2, image_size=56, dtype=torch.bfloat16)
    assert bf.dtype == torch.bfloat16 and bf.shape == (2, 3, 56, 56)


def test_video_errors(tmp_path, monkeypatch):
    with pytest.raises(ImageNotFound, match="video file not found"):
        load_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(InvalidImage, match="cannot decode video"):
        load_video(junk)
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImportError, match=r"pip install 'tessera\[video\]'"):
        load_video(junk)

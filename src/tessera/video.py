"""Video input the way the official InternVL inference examples handle it.

Frames are sampled uniformly (:func:`frame_indices`, the official ``get_index``), each frame becomes one tile
(``dynamic_preprocess(max_num=1)``: the whole frame squashed to ``S x S``, no thumbnail), and the question is
prefixed with one ``FrameN: <image>`` line per frame (:func:`video_prompt_prefix`), with
``num_patches_list = [1] * num_frames``.

Decoding uses PyAV (``pip install 'tessera[video]'``) where the official code uses decord; both decode with
FFmpeg, but the YUV -> RGB conversion settings may differ, so frame pixels can differ by a few levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tessera.images import ImageNotFound, InvalidImage
from tessera.preprocess import dynamic_tiles, to_pixel_values

__all__ = ["frame_indices", "load_video", "video_prompt_prefix", "prepare_video"]


def frame_indices(
    num_frames: int,
    num_segments: int,
    *,
    bound: tuple[float, float] | None = None,
    fps: float | None = None,
) -> list[int]:
    """Indices of the frames to sample, as the official ``get_index``: the span is cut into
    ``num_segments`` equal segments and the middle frame of each is taken.

    With ``max_frame = num_frames - 1`` and ``seg = (end - start) / num_segments``, index ``k`` is
    ``int(start + seg / 2 + round(seg * k))`` (``round`` = round-half-to-even, like ``np.round``).
    ``bound=(start_s, end_s)`` in seconds (needs ``fps``) restricts the span. Indices repeat when there are
    fewer frames than segments.
    """
    if num_frames < 1:
        raise ValueError(f"the video has no frames (num_frames={num_frames})")
    if num_segments < 1:
        raise ValueError(f"num_segments must be at least 1, got {num_segments}")
    max_frame = num_frames - 1
    if bound is not None:
        if fps is None or fps <= 0:
            raise ValueError("frame_indices with bound=(start, end) seconds needs the video's fps")
        start_idx = max(0, round(bound[0] * fps))
        end_idx = min(round(bound[1] * fps), max_frame)
    else:  # the official default bound (-100000 s, 100000 s)
        start_idx = 0
        end_idx = max_frame if fps is None else min(round(100000 * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    return [int(start_idx + seg_size / 2 + round(seg_size * k)) for k in range(num_segments)]


def video_prompt_prefix(num_frames: int) -> str:
    """``"Frame1: <image>\\nFrame2: <image>\\n..."``: the official inference prefix, one line per frame,
    each ending in a newline; the question follows directly."""
    return "".join(f"Frame{i + 1}: <image>\n" for i in range(num_frames))


def _import_av() -> Any:
    try:
        import av
    except ImportError as e:
        raise ImportError(
            "video input needs PyAV; install it with: pip install 'tessera[video]' (or pip install av)"
        ) from e
    return av


def load_video(
    path: str | Path, *, num_segments: int = 8, bound: tuple[float, float] | None = None
) -> list[Image.Image]:
    """Decode ``num_segments`` uniformly sampled frames (see :func:`frame_indices`) as RGB images."""
    av = _import_av()
    path = Path(path)
    if not path.is_file():
        raise ImageNotFound(f"video file not found: {str(path)!r}; check the path")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidImage(f"{str(path)!r} has no video stream; pass a video file")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else None
            total = stream.frames
        if total <= 0:  # the container does not say how many frames it has: count them
            total = _count_frames(av, path)
        wanted = frame_indices(total, num_segments, bound=bound, fps=fps)
        frames = _decode_frames(av, path, wanted)
        if len(frames) < len(set(wanted)):  # the header over-counted: sample from the real count
            total = _count_frames(av, path)
            wanted = frame_indices(total, num_segments, bound=bound, fps=fps)
            frames = _decode_frames(av, path, wanted)
    except av.FFmpegError as e:
        raise InvalidImage(f"cannot decode video {str(path)!r}: {e}") from e
    return [frames[i] for i in wanted]


def _count_frames(av: Any, path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = sum(1 for _ in container.decode(stream))
    if total == 0:
        raise InvalidImage(f"{str(path)!r} contains no decodable video frames")
    return total


def _decode_frames(av: Any, path: Path, wanted: list[int]) -> dict[int, Image.Image]:
    """Decode from the start, keeping the wanted frame numbers (0-based, decode order = presentation
    order for the decoder's output); stops after the last one."""
    targets, last = set(wanted), max(wanted)
    frames: dict[int, Image.Image] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in targets:
                frames[i] = Image.fromarray(frame.to_ndarray(format="rgb24"))
            if i >= last:
                break
    return frames


def prepare_video(
    path: str | Path,
    *,
    num_segments: int = 8,
    image_size: int = 448,
    max_tiles: int = 1,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """Sampled frames -> ``pixel_values`` ``[sum(num_patches_list), 3, S, S]`` and ``num_patches_list``.

    With the default ``max_tiles=1`` each frame is one tile and ``num_patches_list == [1] * num_segments``;
    build the prompt with ``video_prompt_prefix(len(num_patches_list)) + question``.
    """
    frames = load_video(path, num_segments=num_segments)
    tiles = [dynamic_tiles(f, max_tiles=max_tiles, image_size=image_size) for f in frames]
    counts = [t.shape[0] for t in tiles]
    return to_pixel_values(np.concatenate(tiles), dtype=dtype, device=device), counts

"""Server settings: one dataclass filled by the CLI (``tessera serve``) or by tests."""

from __future__ import annotations

from dataclasses import dataclass

from tessera import images


@dataclass
class ServeSettings:
    """Everything the HTTP server needs besides the model.

    ``max_tiles=None`` uses the model's own ``max_dynamic_patch``; it is both the default and the upper
    bound of the per-request ``max_tiles`` extension field. ``model_name`` is the id clients send as
    ``model`` (``None``: the checkpoint directory's name).
    """

    model_name: str | None = None
    api_key: str | None = None
    max_batch: int = 8  # requests decoded together (rows of the batch)
    batching: str = "continuous"  # "continuous": requests join/leave between steps; "static": batch by batch
    max_model_len: int | None = None  # tokens per request (prompt + answer); None: model context, max 8192
    max_queue: int = 64  # requests waiting for a batch; more get 429
    request_timeout: float = 300.0  # seconds from arrival to the last token
    max_tiles: int | None = None
    allow_local_files: bool = False
    allow_private_urls: bool = False
    max_images: int = images.MAX_IMAGES  # images per request, all turns together
    max_image_pixels: int = images.DEFAULT_MAX_PIXELS
    max_image_bytes: int = images.DEFAULT_MAX_BYTES
    fetch_timeout: float = images.DEFAULT_TIMEOUT  # seconds per image URL download
    default_max_tokens: int = 1024  # when the request gives no max_tokens (bounded by the context)
    max_body_bytes: int = 64 * 1024 * 1024  # request body size cap (base64 images included)

    def __post_init__(self):
        for name in ("max_batch", "max_queue", "max_images", "default_max_tokens", "max_body_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.batching not in ("continuous", "static"):
            raise ValueError(f"batching must be 'continuous' or 'static', got {self.batching!r}")
        if self.max_model_len is not None and (not isinstance(self.max_model_len, int) or self.max_model_len < 2):
            raise ValueError(f"max_model_len must be an integer >= 2, got {self.max_model_len!r}")
        if self.max_tiles is not None and (not isinstance(self.max_tiles, int) or self.max_tiles < 1):
            raise ValueError(f"max_tiles must be a positive integer, got {self.max_tiles!r}")
        if not self.request_timeout > 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {self.request_timeout!r}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty; leave it out to disable authentication")

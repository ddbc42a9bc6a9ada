"""OpenAI response objects: ``chat.completion``, ``chat.completion.chunk`` and server-sent events."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(cid: str, model: str, text: str, finish_reason: str, prompt_tokens: int, tokens: int) -> dict:
    """A whole (non-streamed) ``chat.completion``."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(prompt_tokens, tokens),
    }


def chunk(cid: str, model: str, created: int, delta: dict[str, Any], finish_reason: str | None = None,
          usage_: dict | None = None, include_choice: bool = True) -> dict:
    """One ``chat.completion.chunk``; with ``include_choice=False`` the usage-only final chunk."""
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        if include_choice
        else [],
    }
    if usage_ is not None:
        out["usage"] = usage_
    return out


def sse(data: dict | str) -> bytes:
    """One server-sent event: ``data: <json>\\n\\n`` (``[DONE]`` passes as a string)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()

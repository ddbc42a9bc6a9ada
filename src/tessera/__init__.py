"""tessera: a fast, faithful and hackable PyTorch implementation of InternVL 1.5.

``tessera.load(path_or_repo_id)`` returns a :class:`tessera.vlm.VLM` ready to chat.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["VLM", "load", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import tessera.preprocess` (or the CLI's --help) should not pay for the whole model stack.
    if name in ("VLM", "load"):
        from . import vlm

        return getattr(vlm, name)
    raise AttributeError(f"module 'tessera' has no attribute {name!r}")

"""OpenAI-compatible HTTP server with dynamic batching and a web page (``tessera serve``).

``create_app(vlm, settings)`` builds the FastAPI app; ``ServeSettings`` holds the limits;
``ServerThread`` runs an app in a background thread. Imports are lazy so that ``tessera.serve.cli`` (and
the main CLI's ``--help``) do not pay for FastAPI and torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "ServeSettings", "ServerThread"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ServeSettings":
        from .settings import ServeSettings

        return ServeSettings
    if name == "ServerThread":
        from .server import ServerThread

        return ServerThread
    raise AttributeError(f"module 'tessera.serve' has no attribute {name!r}")

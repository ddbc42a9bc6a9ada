"""tessera: a fast, faithful and hackable PyTorch implementation of InternVL 1.5."""

__version__ = "0.1.0"

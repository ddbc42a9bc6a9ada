"""Assemble README.md from docs/sections/*.md (edit the sections, then run: python docs/build_readme.py)."""

from __future__ import annotations

import re
from pathlib import Path

ORDER = ["header", "core", "inference", "preprocess", "tokenizer-templates", "serve", "train", "eval",
         "bundled", "synth", "gpu", "dev"]


def anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title.strip().lower()))


def main() -> None:
    root = Path(__file__).resolve().parent
    parts = [(root / "sections" / f"{name}.md").read_text(encoding="utf-8").strip() + "\n"
             for name in ORDER if (root / "sections" / f"{name}.md").exists()]
    body = "\n".join(parts[1:])
    titles = [line[3:] for line in body.splitlines() if line.startswith("## ")]
    toc = "\n".join(f"{i}. [{t}](#{anchor(t)})" for i, t in enumerate(titles, 1))
    readme = parts[0].replace("TOC", toc) + "\n" + body
    (root.parent / "README.md").write_text(readme, encoding="utf-8")


if __name__ == "__main__":
    main()

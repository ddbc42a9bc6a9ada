"""Fonts for the synthetic images, and the setup step that installs them.

Text on pages and charts is drawn with DejaVu Sans Mono Bold: monospaced (every page word has the same width, so
length gives no hint), with 2-pixel strokes that stay legible at 12 px. It is looked up, in order, in Debian's
``fonts-dejavu-core`` and in matplotlib's bundled copy (PyPI); without either, Pillow's own bundled font is used
(thinner strokes, proportional) and a warning says how to install the preferred one. A CJK font (Debian
``fonts-wqy-microhei`` or ``fonts-noto-cjk``) is only looked for: its presence switches Chinese questions on by
default (see :class:`tessera.synth.SynthConfig`).

Setup step (Debian, root)::

    python -m tessera.synth.fonts --install   # apt-get install fonts-dejavu-core fonts-wqy-microhei
    python -m tessera.synth.fonts             # show what was found
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from PIL import ImageFont

DEBIAN_PACKAGES = ("fonts-dejavu-core", "fonts-wqy-microhei")
_DEJAVU = "DejaVuSansMono-Bold.ttf"
_CJK_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
)


def text_font_path() -> Path | None:
    """Path of DejaVu Sans Mono Bold (Debian first, then matplotlib's copy), or None if neither is installed."""
    candidates = [Path("/usr/share/fonts/truetype/dejavu") / _DEJAVU]
    try:
        import matplotlib

        candidates.append(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / _DEJAVU)
    except ImportError:
        pass
    return next((p for p in candidates if p.is_file()), None)


def cjk_font_path() -> Path | None:
    """Path of an installed font that covers Chinese, or None (known Debian paths, then ``fc-list :lang=zh``)."""
    for candidate in _CJK_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    if shutil.which("fc-list"):
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, check=False).stdout
        files = sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
        if files:
            return Path(files[0])
    return None


@functools.lru_cache(maxsize=32)
def text_font(size: int) -> ImageFont.FreeTypeFont:
    """The page/chart font at ``size`` pixels (cached per process)."""
    path = text_font_path()
    if path is None:
        warnings.warn(
            "DejaVu Sans Mono Bold not found; using Pillow's bundled font (less legible). "
            "Run `python -m tessera.synth.fonts --install` or `pip install matplotlib`.",
            stacklevel=2,
        )
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(path), size)


def font_info() -> dict:
    """Which fonts the generator uses here, with a content hash (recorded next to generated data)."""

    def describe(path: Path | None) -> dict | None:
        if path is None:
            return None
        return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}

    text = describe(text_font_path()) or {"path": "pillow-default", "sha256": None}
    return {"text": text, "cjk": describe(cjk_font_path())}


def install() -> None:
    """Install the fonts with apt-get (Debian/Ubuntu, as root). Raises with a clear message when impossible."""
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            "apt-get not found: install DejaVu Sans Mono (e.g. `pip install matplotlib`) and, for Chinese, "
            "a CJK font such as WenQuanYi Micro Hei with your system's package manager."
        )
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *DEBIAN_PACKAGES], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera.synth.fonts", description=__doc__.split("\n")[0])
    parser.add_argument("--install", action="store_true", help="apt-get install " + " ".join(DEBIAN_PACKAGES))
    args = parser.parse_args(argv)
    if args.install:
        install()
    info = font_info()
    print(f"text font: {info['text']['path']}")
    print(f"CJK font:  {info['cjk']['path'] if info['cjk'] else 'none (Chinese questions off by default)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

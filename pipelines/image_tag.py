"""The image tag: a hash of everything that goes into the training and inference images.

The same sources give the same tag, so CI builds and pushes an image only when its
content changed (tags are immutable in ECR), and the pipeline definition names the exact
image it runs, offline.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def image_sources(root: Path = ROOT) -> list[Path]:
    code = root / "ml_code"
    files = [p for p in code.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def image_tag(root: Path = ROOT) -> str:
    """``sha-`` and the first 16 hex digits of the SHA-256 over every source's path and bytes."""
    digest = hashlib.sha256()
    for path in image_sources(root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return f"sha-{digest.hexdigest()[:16]}"


if __name__ == "__main__":
    print(image_tag())
    sys.exit(0)

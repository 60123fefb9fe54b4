"""The image tag: a hash of everything that goes into the training and inference images.

The same sources give the same tag, so CI builds and pushes an image only when its
content changed (tags are immutable in ECR), and the pipeline definition names the exact
image it runs, offline. The hash itself is ``ml_code.lineage.source_digest`` (standard
library only), which a local run records too.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ml_code.lineage import source_digest

ROOT = Path(__file__).resolve().parents[1]


def image_tag(root: Path = ROOT) -> str:
    """``sha-`` and the first 16 hex digits of the SHA-256 over every source's path and bytes."""
    return f"sha-{source_digest(root)[:16]}"


if __name__ == "__main__":
    print(image_tag())
    sys.exit(0)

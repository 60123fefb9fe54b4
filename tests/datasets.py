"""Small synthetic datasets for the ML tests: numeric and categorical features, every problem type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def make_frame(problem: str, rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Features a, b (numeric), colour (categorical) and a learnable target."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=rows)
    b = rng.uniform(0, 10, size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    signal = 2 * a + 0.3 * b + (colour == "red") * 1.5 + rng.normal(scale=0.3, size=rows)
    frame = pd.DataFrame({"a": a.round(4), "b": b.round(3), "colour": colour})
    if problem == "regression":
        frame["y"] = signal.round(4)
    elif problem == "binary":
        frame["y"] = np.where(signal > np.median(signal), "yes", "no")
    else:
        frame["y"] = pd.cut(signal, 3, labels=["low", "mid", "high"]).astype(str)
    return frame


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path

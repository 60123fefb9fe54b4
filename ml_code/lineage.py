"""What a model was built from, and whether two builds made the same model.

Standard library only: ``pipelines.reproduce`` (CI's environment, without the ML libraries)
imports it too, so that the definition of "the same" has one home.

**The data's identity** is a content hash of what the preprocess step read: SHA-256 over the
sorted lines ``<file name>\\0<SHA-256 of the file's bytes>\\n``, one per input file. It does not
depend on where the data lives (a copy in another bucket or account has the same identity)
nor on bucket versioning, and it is computed by the job that read the bytes, so nothing can
change between "recorded" and "read". The preprocess step writes it, with each file's name,
size and hash, to ``lineage.json`` beside every split; training copies it into metadata.json.

**The same model** means, for two builds of the same data, code and config:

- the same winner (family and parameters);
- the same test predictions, row by row: identical labels, and numbers equal within
  ``TOLERANCE`` (relative, or absolute near zero);
- the same evaluation metrics (test-split metrics and cross-validated scores) within the same
  tolerance.

A model archive is not compared byte for byte: joblib's pickles and tar headers are not
byte-stable. The tolerance is not zero because a forest's prediction averages its trees on
several threads in whatever order they finish (differences of about 1e-15 on the same machine),
and another CPU may round a sum differently.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LINEAGE_FILE = "lineage.json"
PREDICTIONS_FILE = "predictions.csv"
EVALUATION_FILE = "evaluation.json"
TOLERANCE = 1e-9
# The model-quality sections evaluation.json may hold (SageMaker's names), and the cross-validated scores.
METRIC_SECTIONS = (
    "regression_metrics",
    "binary_classification_metrics",
    "multiclass_classification_metrics",
    "cross_validation_metrics",
)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_identity(files: Iterable[tuple[str, str]]) -> str:
    """The data's identity from (file name, SHA-256 of its bytes) pairs, in any order."""
    digest = hashlib.sha256()
    for name, sha256 in sorted(files):
        digest.update(f"{name}\0{sha256}\n".encode())
    return digest.hexdigest()


def describe_inputs(files: Iterable[Path]) -> dict[str, Any]:
    """``lineage.json``'s input part: the identity and, per file, its name, size and hash."""
    hashed = [(f.name, f.stat().st_size, file_sha256(f)) for f in sorted(files)]
    return {
        "input_sha256": input_identity((name, sha256) for name, _, sha256 in hashed),
        "input_files": [{"name": name, "bytes": size, "sha256": sha256} for name, size, sha256 in hashed],
    }


def source_digest(root: Path, folder: str = "ml_code") -> str:
    """SHA-256 over every file under ``root/folder``: each path (relative to ``root``) and its bytes.

    The images' tag is its first 16 hex digits (``pipelines.image_tag``); a local run records it
    so that a rerun can say whether the code changed.
    """
    code = root / folder
    files = sorted(
        (p for p in code.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def predictions_csv(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """The evaluate step's predictions.csv: floats written with ``repr`` (it round-trips exactly)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in row])
    return out.getvalue()


@dataclass(frozen=True)
class BuildRecord:
    """What the comparison reads of one build: its evaluation.json and predictions.csv."""

    evaluation: dict[str, Any]
    predictions: list[list[str]]  # the header first

    @classmethod
    def from_texts(cls, evaluation: str, predictions: str) -> BuildRecord:
        return cls(json.loads(evaluation), list(csv.reader(io.StringIO(predictions))))

    @classmethod
    def from_dir(cls, directory: Path) -> BuildRecord:
        """From a directory that holds evaluation.json and predictions.csv (a local run's output).

        Raises:
            FileNotFoundError: one of them is missing, named.
        """
        files = [directory / EVALUATION_FILE, directory / PREDICTIONS_FILE]
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: is {directory} the output of a run?")
        return cls.from_texts(*(path.read_text(encoding="utf-8") for path in files))

    @property
    def build(self) -> dict[str, Any]:
        build: dict[str, Any] = self.evaluation.get("model_build", {})
        return build


@dataclass
class Comparison:
    """The verdict: ``same`` when nothing in ``differences``; ``notes`` are facts that explain them."""

    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.differences

    def report(self) -> str:
        head = (
            "same model: the same winner, test predictions and metrics (within 1e-9)"
            if self.same
            else f"DIFFERENT model: {len(self.differences)} difference(s)"
        )
        return "\n".join([head, *(f"  - {d}" for d in self.differences), *(f"  note: {n}" for n in self.notes)])


def _close(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _compare_values(path: str, old: Any, new: Any, tolerance: float, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if key not in old or key not in new:
                out.append(f"{path}.{key}: only in the {'new' if key in new else 'original'} build")
            else:
                _compare_values(f"{path}.{key}", old[key], new[key], tolerance, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            out.append(f"{path}: {len(old)} items, now {len(new)}")
            return
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _compare_values(f"{path}[{i}]", a, b, tolerance, out)
        return
    a, b = _number(old), _number(new)
    if a is not None and b is not None:
        if not _close(a, b, tolerance):
            out.append(f"{path}: {old!r}, now {new!r}")
    elif old != new:
        out.append(f"{path}: {old!r}, now {new!r}")


def _compare_predictions(old: list[list[str]], new: list[list[str]], tolerance: float, out: list[str]) -> None:
    if not old or not new or old[0] != new[0]:
        out.append(f"predictions: columns {old[:1]} now {new[:1]}")
        return
    if len(old) != len(new):
        out.append(f"predictions: {len(old) - 1} test rows, now {len(new) - 1}")
        return
    differing, largest = 0, 0.0
    for row_old, row_new in zip(old[1:], new[1:], strict=True):
        row_differs = False
        for a, b in zip(row_old, row_new, strict=True):
            try:
                x, y = float(a), float(b)
            except ValueError:
                row_differs |= a != b
                continue
            if not _close(x, y, tolerance):
                row_differs = True
                largest = max(largest, abs(x - y))
        differing += row_differs
    if differing:
        gap = f" (largest numeric difference {largest:.3g})" if largest else ""
        out.append(f"predictions: {differing} of {len(old) - 1} test rows differ{gap}")


def compare_builds(old: BuildRecord, new: BuildRecord, tolerance: float = TOLERANCE) -> Comparison:
    """Whether ``new`` is the same model as ``old`` (see the module's docstring for what "same" means)."""
    result = Comparison()
    old_build, new_build = old.build, new.build
    old_data, new_data = old_build.get("data", {}), new_build.get("data", {})
    if old_data.get("input_sha256") != new_data.get("input_sha256"):
        result.notes.append(
            f"the input data differs: {old_data.get('input_sha256', 'not recorded')} "
            f"then, {new_data.get('input_sha256', 'not recorded')} now"
        )
    for label, build in (("original", old_build), ("new", new_build)):
        if build.get("budget_exhausted"):
            cut = "; ".join(build.get("budget_cut", [])) or "the search was cut short"
            result.notes.append(f"the time budget cut the {label} build ({cut}): differences are expected")
    _compare_values("winner", old_build.get("winner"), new_build.get("winner"), tolerance, result.differences)
    for section in METRIC_SECTIONS:
        if section in old.evaluation or section in new.evaluation:
            _compare_values(
                section, old.evaluation.get(section), new.evaluation.get(section), tolerance, result.differences
            )
    _compare_predictions(old.predictions, new.predictions, tolerance, result.differences)
    return result

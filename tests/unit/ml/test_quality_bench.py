"""The quality benchmark reports on split seeds that the selection was not designed on."""

from __future__ import annotations

import pytest

from bench import model_quality
from ml_code.schema import ProblemType


def test_design_and_report_seeds_are_disjoint() -> None:
    assert model_quality.DESIGN_SEEDS and model_quality.REPORT_SEEDS
    assert not set(model_quality.DESIGN_SEEDS) & set(model_quality.REPORT_SEEDS)


@pytest.mark.parametrize("count", [1, 5, 10])
def test_reported_figures_use_report_seeds_only(count: int) -> None:
    seeds = model_quality.split_seeds(count)
    assert len(seeds) == count
    assert set(seeds) <= set(model_quality.REPORT_SEEDS)
    assert not set(seeds) & set(model_quality.DESIGN_SEEDS)


def test_design_seeds_only_on_request_and_too_many_splits_refused() -> None:
    assert model_quality.split_seeds(3, design=True) == model_quality.DESIGN_SEEDS[:3]
    with pytest.raises(ValueError, match="--splits must be between 1 and 10"):
        model_quality.split_seeds(11)


def test_every_bundled_dataset_loads_with_a_text_label_or_numeric_target() -> None:
    by_name = {d.name: d for d in model_quality.DATASETS}
    assert {"iris", "wine", "breast_cancer", "digits", "diabetes", "abalone"} <= set(by_name)
    for dataset in model_quality.DATASETS:
        frame = dataset.load()
        assert "y" in frame.columns and len(frame) >= 150
        if dataset.problem is ProblemType.REGRESSION:
            assert frame["y"].dtype.kind == "f" or frame["y"].dtype.kind == "i"
        else:
            assert all(isinstance(v, str) for v in frame["y"])

"""Model-quality benchmark: the whole selection against plain baselines, on data it was not designed on.

    .venv/bin/python bench/model_quality.py [--splits 3] [--datasets iris,wine,...] [--design]

Datasets: every scikit-learn bundled dataset that fits a problem type (iris, wine, digits:
multiclass; breast cancer: binary; diabetes: regression), plus Abalone (regression,
data/abalone.csv). Each is split by our preprocess step (70/15/15, stratified for classes) on
seeded splits. The split seeds are the REPORT_SEEDS, which are kept apart from the DESIGN_SEEDS
the selection was tuned on (`--design` runs those instead, for development; its numbers are
not the ones to quote). Our training step gets train + validation as `local_run` gives them
and runs its default search; the baselines are fitted on the same rows, and all are scored on
the same test split:

- linear: median impute + standard scale numerics, one-hot categoricals, then scikit-learn's
  LogisticRegression (C=1) or Ridge (alpha=1): what a practitioner tries first;
- hgb: the same preprocessing, then HistGradientBoosting with its defaults;
- template (Abalone): the SageMaker project template's XGBoost (its preprocessing and
  hyperparameters: reg:squarederror, 50 rounds, depth 5, eta 0.2, gamma 4, min_child_weight 6,
  subsample 0.7).

The metric is accuracy for classifiers (the selection's default user metric; binary models
predict at their tuned threshold) and RMSE for regression. Per dataset it prints the mean and
standard deviation over splits, ours minus the best baseline with the standard error of that
paired difference, and training time. Goals: ours is never worse than the best plain baseline by
more than one standard error of the difference; on Abalone, mean RMSE <= 0.95x the template's.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn import datasets as skdatasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml_code import preprocess, train  # noqa: E402
from ml_code.environment import SageMakerEnvironment  # noqa: E402
from ml_code.schema import ProblemType  # noqa: E402

ABALONE = ROOT / "data" / "abalone.csv"
NUMERIC = ["length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight"]
TEMPLATE_PARAMS = {
    "objective": "reg:squarederror",
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.7,
}
# The split seeds the selection (search spaces, folds, blend, threshold) was designed and tuned on,
# and the seeds whose results are reported. They never overlap: a figure measured on the splits
# a design was accepted on says how well it fits those splits, not how it does on new data.
DESIGN_SEEDS: tuple[int, ...] = tuple(range(10))
REPORT_SEEDS: tuple[int, ...] = (1009, 2003, 3001, 4001, 5003, 6007, 7001, 8009, 9001, 10007)
assert not set(DESIGN_SEEDS) & set(REPORT_SEEDS), "design and report seeds must be disjoint"


def split_seeds(count: int, design: bool = False) -> tuple[int, ...]:
    """The first ``count`` report seeds (or design seeds, for development).

    Raises:
        ValueError: more seeds asked for than there are.
    """
    pool = DESIGN_SEEDS if design else REPORT_SEEDS
    if not 1 <= count <= len(pool):
        raise ValueError(f"--splits must be between 1 and {len(pool)}")
    return pool[:count]


@dataclass(frozen=True)
class BenchDataset:
    name: str
    problem: ProblemType
    load: Callable[[], pd.DataFrame]  # features and the target column "y" (class labels as text)


def _bundled(loader: Callable[..., object], problem: ProblemType) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        bunch = loader(as_frame=True)
        frame = bunch.frame.rename(columns={bunch.target.name: "y"})  # type: ignore[attr-defined]
        if problem is not ProblemType.REGRESSION:
            names = list(getattr(bunch, "target_names", []))
            frame["y"] = [str(names[int(v)]) if names else f"class_{int(v)}" for v in frame["y"]]
        return frame

    return load


def _abalone() -> pd.DataFrame:
    return pd.read_csv(ABALONE).rename(columns={"rings": "y"})


DATASETS: tuple[BenchDataset, ...] = (
    BenchDataset("iris", ProblemType.MULTICLASS, _bundled(skdatasets.load_iris, ProblemType.MULTICLASS)),
    BenchDataset("wine", ProblemType.MULTICLASS, _bundled(skdatasets.load_wine, ProblemType.MULTICLASS)),
    BenchDataset("breast_cancer", ProblemType.BINARY, _bundled(skdatasets.load_breast_cancer, ProblemType.BINARY)),
    BenchDataset("digits", ProblemType.MULTICLASS, _bundled(skdatasets.load_digits, ProblemType.MULTICLASS)),
    BenchDataset("diabetes", ProblemType.REGRESSION, _bundled(skdatasets.load_diabetes, ProblemType.REGRESSION)),
    BenchDataset("abalone", ProblemType.REGRESSION, _abalone),
)


def _preprocessor(frame: pd.DataFrame) -> ColumnTransformer:
    categorical = [c for c in frame.columns if frame[c].dtype == object or str(frame[c].dtype) in ("str", "string")]
    numeric = [c for c in frame.columns if c not in categorical]
    return ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )


def _score(problem: ProblemType, truth: np.ndarray, predicted: np.ndarray) -> float:
    if problem is ProblemType.REGRESSION:
        return math.sqrt(float(np.mean((np.asarray(predicted, dtype=float) - truth.astype(float)) ** 2)))
    return float(np.mean(np.asarray(predicted).astype(str) == truth.astype(str)))


def baseline_scores(
    problem: ProblemType, fit: pd.DataFrame, test: pd.DataFrame, seed: int, abalone: bool
) -> dict[str, float]:
    """Test metric of each plain baseline fitted on ``fit``."""
    x_fit, y_fit = fit.drop(columns="y"), fit["y"].to_numpy()
    x_test, y_test = test.drop(columns="y"), test["y"].to_numpy()
    if problem is ProblemType.REGRESSION:
        models = {"linear": Ridge(alpha=1.0), "hgb": HistGradientBoostingRegressor(random_state=seed)}
    else:
        models = {
            "linear": LogisticRegression(max_iter=5000),
            "hgb": HistGradientBoostingClassifier(random_state=seed),
        }
    scores = {}
    for name, model in models.items():
        pipeline = Pipeline([("prep", _preprocessor(x_fit)), ("model", model)]).fit(x_fit, y_fit)
        scores[name] = _score(problem, y_test, pipeline.predict(x_test))
    if abalone:
        scores["template"] = template_rmse(
            fit.rename(columns={"y": "rings"}), test.rename(columns={"y": "rings"}), seed
        )
    return scores


def template_rmse(train_df: pd.DataFrame, test_df: pd.DataFrame, seed: int) -> float:
    """The SageMaker project template's Abalone model: its preprocessing, its XGBoost, 50 rounds."""
    features = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), NUMERIC),
            (
                "sex",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                ["sex"],
            ),
        ]
    )
    x_train = features.fit_transform(train_df)
    booster = xgb.train(
        {**TEMPLATE_PARAMS, "seed": seed}, xgb.DMatrix(x_train, label=train_df["rings"]), num_boost_round=50
    )
    predictions = booster.predict(xgb.DMatrix(features.transform(test_df)))
    return math.sqrt(float(np.mean((predictions - test_df["rings"].to_numpy()) ** 2)))


def our_score(
    problem: ProblemType, splits: Path, work: Path, test: pd.DataFrame, budget: float
) -> tuple[float, str, float, bool]:
    """Our training step on the split; returns the test metric, the winner, the seconds, and budget exhaustion."""
    env = SageMakerEnvironment(
        model_dir=work / "model",
        output_data_dir=work / "output",
        channels={"train": splits / "train", "validation": splits / "validation"},
        hyperparameters={"target": "y", "problem_type": problem.value, "time_budget_seconds": budget},
        num_cpus=os.cpu_count() or 1,
    )
    start = time.monotonic()
    result = train.train(env, log=lambda *_: None)
    seconds = time.monotonic() - start
    assert result.artifact is not None and result.winner is not None
    encoded = result.artifact.predict_encoded(test.drop(columns="y"))
    predicted = np.asarray(result.artifact.decode(encoded))
    return _score(problem, test["y"].to_numpy(), predicted), result.winner.family, seconds, result.skipped > 0


def _read_split(splits: Path, name: str, problem: ProblemType) -> pd.DataFrame:
    # Class labels stay text (as our training reads them), so predictions compare as labels.
    dtype = None if problem is ProblemType.REGRESSION else {"y": str}
    return pd.read_csv(splits / name / f"{name}.csv", dtype=dtype)


def run_dataset(dataset: BenchDataset, seeds: tuple[int, ...], budget: float, tmp: Path) -> dict[str, object]:
    frame = dataset.load()
    ours: list[float] = []
    seconds: list[float] = []
    winners: list[str] = []
    cut = 0
    base: dict[str, list[float]] = {}
    for seed in seeds:
        work = tmp / dataset.name / str(seed)
        write = work / "raw.csv"
        write.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(write, index=False)
        preprocess.split_dataset(write, work / "splits", target="y", problem_type=dataset.problem, seed=seed)
        splits = work / "splits"
        fit = pd.concat(
            [_read_split(splits, "train", dataset.problem), _read_split(splits, "validation", dataset.problem)]
        )
        test = _read_split(splits, "test", dataset.problem)
        score, winner, took, exhausted = our_score(dataset.problem, splits, work, test, budget)
        ours.append(score)
        seconds.append(took)
        winners.append(winner)
        cut += exhausted
        for name, value in baseline_scores(dataset.problem, fit, test, seed, dataset.name == "abalone").items():
            base.setdefault(name, []).append(value)
    return {"ours": ours, "seconds": seconds, "winners": winners, "cut": cut, "baselines": base, "rows": len(frame)}


def report(dataset: BenchDataset, result: dict[str, object]) -> tuple[str, bool]:
    """One table row, and whether the dataset meets its goals."""
    ours = np.asarray(result["ours"])
    baselines = {k: np.asarray(v) for k, v in result["baselines"].items()}  # type: ignore[attr-defined]
    regression = dataset.problem is ProblemType.REGRESSION
    plain = {k: v for k, v in baselines.items() if k != "template"}
    best_name = (min if regression else max)(plain, key=lambda k: plain[k].mean())
    diff = ours - plain[best_name]  # paired by split
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    worse = diff.mean() if regression else -diff.mean()
    meets = bool(worse <= (se if not math.isnan(se) else 0.0))
    cells = [f"{ours.mean():.4f} ± {ours.std(ddof=1) if len(ours) > 1 else 0:.4f}"]
    for name in ("linear", "hgb", "template"):
        if name in baselines:
            values = baselines[name]
            cells.append(f"{name} {values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0:.4f}")
    extra = ""
    if "template" in baselines:
        ratio = float(ours.mean() / baselines["template"].mean())
        meets = meets and ratio <= 0.95
        extra = f"; {ratio:.3f}x template (goal <= 0.95)"
    winners = pd.Series(result["winners"]).value_counts()  # type: ignore[arg-type]
    line = (
        f"{dataset.name:<14} {'rmse' if regression else 'accuracy':<8} ours {cells[0]} | {' | '.join(cells[1:])} | "
        f"ours - {best_name} {diff.mean():+.4f} (SE {se:.4f}){extra} | train {np.mean(result['seconds']):.1f} s"  # type: ignore[arg-type]
        f" | winners {', '.join(f'{k} {v}' for k, v in winners.items())}"
        + (f" | BUDGET CUT {result['cut']}" if result["cut"] else "")
        + ("" if meets else "  <-- GOAL MISSED")
    )
    return line, meets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(d.name for d in DATASETS))
    parser.add_argument("--design", action="store_true", help="run on the design seeds (development only)")
    parser.add_argument("--budget", type=float, default=3600.0, help="training time budget per run (seconds)")
    args = parser.parse_args()
    chosen = [d for d in DATASETS if d.name in args.datasets.split(",")]
    seeds = split_seeds(args.splits, design=args.design)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'DESIGN' if args.design else 'report'} split seeds: {list(seeds)}; mean ± standard deviation over splits")
    started = time.monotonic()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in chosen:
            line, meets = report(dataset, run_dataset(dataset, seeds, args.budget, Path(tmp)))
            ok = ok and meets
            print(line, flush=True)
    print(f"all goals met: {ok}; benchmark took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

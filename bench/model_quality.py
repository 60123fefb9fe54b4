"""Model-quality benchmark: our selected model vs the SageMaker project template's XGBoost, on Abalone.

    .venv/bin/python bench/model_quality.py [--splits 5]

For each seed, the data is split by our preprocess step (70/15/15). Ours: the training step
as `local_run` runs it (search, select on validation, refit on train+validation). The
template: its seed code's preprocessing (one-hot `sex`, median-impute and standard-scale
the numerics) and XGBoost with its hyperparameters (reg:squarederror, 50 rounds, depth 5,
eta 0.2, gamma 4, min_child_weight 6, subsample 0.7). The template fits on train only in
its pipeline; here it gets train+validation too, which can only help it. Both are scored on
the same test split. Goal: mean holdout RMSE <= 0.97x the template's.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml_code import preprocess, train  # noqa: E402
from ml_code.environment import SageMakerEnvironment  # noqa: E402
from ml_code.schema import ProblemType  # noqa: E402

DATA = ROOT / "data" / "abalone.csv"
NUMERIC = ["length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight"]
TEMPLATE_PARAMS = {
    "objective": "reg:squarederror",
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.7,
}


def template_rmse(train_df: pd.DataFrame, test_df: pd.DataFrame, seed: int) -> float:
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


def our_rmse(splits: Path, work: Path) -> tuple[float, str]:
    env = SageMakerEnvironment(
        model_dir=work / "model",
        output_data_dir=work / "output",
        channels={"train": splits / "train", "validation": splits / "validation"},
        hyperparameters={"target": "rings", "problem_type": "regression"},
        num_cpus=os.cpu_count() or 1,
    )
    result = train.train(env, log=lambda *_: None)
    test = pd.read_csv(splits / "test" / "test.csv")
    predictions = result.artifact.predict_encoded(test)
    rmse = math.sqrt(float(np.mean((predictions - test["rings"].to_numpy()) ** 2)))
    return rmse, result.winner.family


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args()
    ours, theirs = [], []
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'seed':>4}  {'ours':>7}  {'template':>8}  ratio  winner")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.splits):
            work = Path(tmp) / str(seed)
            preprocess.split_dataset(
                DATA, work / "splits", target="rings", problem_type=ProblemType.REGRESSION, seed=seed
            )
            splits = work / "splits"
            train_df = pd.concat([pd.read_csv(splits / s / f"{s}.csv") for s in ("train", "validation")])
            test_df = pd.read_csv(splits / "test" / "test.csv")
            mine, winner = our_rmse(splits, work)
            base = template_rmse(train_df, test_df, seed)
            ours.append(mine)
            theirs.append(base)
            print(f"{seed:>4}  {mine:7.4f}  {base:8.4f}  {mine / base:5.3f}  {winner}")
    ratio = float(np.mean(ours)) / float(np.mean(theirs))
    print(f"mean  {np.mean(ours):7.4f}  {np.mean(theirs):8.4f}  {ratio:5.3f}  (goal <= 0.970)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

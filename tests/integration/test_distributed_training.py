"""Multi-instance training: two `train` processes split the search and give the single-instance leaderboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ml_code import preprocess, train
from ml_code.schema import ProblemType
from ml_code.serving.readiness import free_port
from tests.datasets import make_frame, write_csv
from tests.integration.conftest import ROOT

HPS = {"target": "y", "problem_type": "regression", "max_trials": "3", "seed": "5", "time_budget_seconds": "120"}


def _env(tmp: Path, splits: Path, host: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SM_HOSTS": json.dumps(["algo-1", "algo-2"]),
        "SM_CURRENT_HOST": host,
        "MLOPS_HOST_ADDRESSES": json.dumps({"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}),
        "MLOPS_LEADER_PORT": str(port),
        "SM_HPS": json.dumps(HPS),
        "SM_ML_ROOT": str(tmp / host),
        "SM_CHANNEL_TRAIN": str(splits / "train"),
        "SM_CHANNEL_VALIDATION": str(splits / "validation"),
        "SM_MODEL_DIR": str(tmp / host / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp / host / "output"),
    }


def _comparable(board: dict) -> list[tuple]:
    return [
        (
            t["index"],
            t["family"],
            json.dumps(t["params"], sort_keys=True),
            json.dumps({k: round(v, 9) for k, v in t["scores"].items()}, sort_keys=True),
        )
        for t in board["trials"]
    ]


def test_two_instances_split_the_search_and_agree_with_one(tmp_path: Path) -> None:
    write_csv(tmp_path / "raw.csv", make_frame("regression", rows=300))
    splits = tmp_path / "splits"
    preprocess.split_dataset(tmp_path / "raw.csv", splits, target="y", problem_type=ProblemType.REGRESSION)

    single = tmp_path / "single"
    assert (
        train.main(
            {
                "SM_HPS": json.dumps(HPS),
                "SM_ML_ROOT": str(single),
                "SM_CHANNEL_TRAIN": str(splits / "train"),
                "SM_CHANNEL_VALIDATION": str(splits / "validation"),
                "SM_MODEL_DIR": str(single / "model"),
                "SM_OUTPUT_DATA_DIR": str(single / "output"),
            }
        )
        == 0
    )
    expected = json.loads((single / "output" / "leaderboard.json").read_text())

    port = free_port()
    procs = {
        host: subprocess.Popen(
            [sys.executable, "-m", "ml_code.train"],
            env=_env(tmp_path, splits, host, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host in ("algo-2", "algo-1")
    }  # the worker first: it retries until the leader listens
    outputs = {host: proc.communicate(timeout=300) for host, proc in procs.items()}
    for host, proc in procs.items():
        assert proc.returncode == 0, outputs[host][1]

    board = json.loads((tmp_path / "algo-1" / "output" / "leaderboard.json").read_text())
    assert _comparable(board) == _comparable(expected)
    assert board["winner"]["family"] == expected["winner"]["family"]
    assert {t["host"] for t in board["trials"] if t["family"] != "ensemble"} == {"algo-1", "algo-2"}
    assert (tmp_path / "algo-1" / "model" / "model.joblib").is_file()
    assert not (tmp_path / "algo-2" / "model").exists()  # only the leader writes the model
    assert "fitted" in outputs["algo-2"][0] and "the leader writes the model" in outputs["algo-2"][0]
    metadata = json.loads((tmp_path / "algo-1" / "model" / "metadata.json").read_text())
    assert metadata["instances"] == 2

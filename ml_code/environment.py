"""SageMaker's container contract: every environment variable and path the steps read, in one place.

Inside SageMaker the defaults are right. For a local run, each path can be overridden
by setting the same variable SageMaker would set (``SM_MODEL_DIR=...``), or by passing
an explicit mapping to :meth:`SageMakerEnvironment.from_env` in tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_code.distributed import Cluster

# Training jobs (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html)
SM_MODEL_DIR = "SM_MODEL_DIR"
SM_OUTPUT_DATA_DIR = "SM_OUTPUT_DATA_DIR"
SM_CHANNEL_PREFIX = "SM_CHANNEL_"
SM_HPS = "SM_HPS"
SM_INPUT_CONFIG_DIR = "SM_INPUT_CONFIG_DIR"
SM_NUM_CPUS = "SM_NUM_CPUS"

DEFAULT_ML_ROOT = Path("/opt/ml")

# Processing jobs: inputs and outputs are mounted under this root, at paths the job definition names.
PROCESSING_ROOT = "SM_PROCESSING_ROOT"  # ours: lets a local run relocate /opt/ml/processing
DEFAULT_PROCESSING_ROOT = DEFAULT_ML_ROOT / "processing"

# Serving (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html)
SAGEMAKER_MODEL_SERVER_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
SAGEMAKER_BIND_TO_PORT = "SAGEMAKER_BIND_TO_PORT"
DEFAULT_SERVING_PORT = 8080
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoints reject larger request bodies
# Ours: data capture by the server itself, off unless set (in AWS the endpoint captures; see ml_code.serving.capture).
MLOPS_CAPTURE_DIR = "MLOPS_CAPTURE_DIR"
MLOPS_CAPTURE_ENDPOINT = "MLOPS_CAPTURE_ENDPOINT"
MLOPS_CAPTURE_VARIANT = "MLOPS_CAPTURE_VARIANT"
MLOPS_CAPTURE_SAMPLING_PERCENTAGE = "MLOPS_CAPTURE_SAMPLING_PERCENTAGE"


@dataclass(frozen=True)
class SageMakerEnvironment:
    """Where a training job reads its channels and hyperparameters and writes its model.

    Attributes:
        model_dir: written as model.tar.gz when the job ends.
        output_data_dir: written as output.tar.gz (leaderboard, logs).
        channels: channel name -> local directory of its files.
        hyperparameters: decoded from hyperparameters.json (SageMaker passes every value as a string).
        num_cpus: CPUs available to the job.
        cluster: the job's instances (one, unless TrainingInstanceCount > 1).
        env: the variables it was read from (the leader's address, for local multi-instance runs).
    """

    model_dir: Path
    output_data_dir: Path
    channels: dict[str, Path]
    hyperparameters: dict[str, Any]
    num_cpus: int
    cluster: Cluster = field(default_factory=lambda: Cluster(hosts=("algo-1",), current="algo-1"))
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SageMakerEnvironment:
        """Read the contract from ``env`` (default: ``os.environ``), falling back to SageMaker's paths."""
        env = os.environ if env is None else env
        ml_root = Path(env.get("SM_ML_ROOT", str(DEFAULT_ML_ROOT)))
        channels = {
            key.removeprefix(SM_CHANNEL_PREFIX).lower(): Path(value)
            for key, value in env.items()
            if key.startswith(SM_CHANNEL_PREFIX)
        }
        if not channels:
            data_root = ml_root / "input" / "data"
            if data_root.is_dir():
                channels = {p.name: p for p in sorted(data_root.iterdir()) if p.is_dir()}
        config_dir = Path(env.get(SM_INPUT_CONFIG_DIR, str(ml_root / "input" / "config")))
        return cls(
            model_dir=Path(env.get(SM_MODEL_DIR, str(ml_root / "model"))),
            output_data_dir=Path(env.get(SM_OUTPUT_DATA_DIR, str(ml_root / "output" / "data"))),
            channels=channels,
            hyperparameters=_hyperparameters(env, config_dir),
            num_cpus=int(env.get(SM_NUM_CPUS, os.cpu_count() or 1)),
            cluster=Cluster.from_env(env, config_dir),
            env=dict(env),
        )

    def channel(self, name: str) -> Path:
        """The directory of one input channel.

        Raises:
            FileNotFoundError: the job was started without that channel.
        """
        if name not in self.channels:
            raise FileNotFoundError(
                f"input channel {name!r} is missing (have: {', '.join(sorted(self.channels)) or 'none'}); "
                f"set {SM_CHANNEL_PREFIX}{name.upper()} for a local run"
            )
        return self.channels[name]


def _hyperparameters(env: Mapping[str, str], config_dir: Path) -> dict[str, Any]:
    if SM_HPS in env:
        raw: dict[str, Any] = json.loads(env[SM_HPS])
    else:
        path = config_dir / "hyperparameters.json"
        raw = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    # SageMaker serializes every hyperparameter value as a JSON string; decode where it is JSON.
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            try:
                decoded[key] = json.loads(value)
            except json.JSONDecodeError:
                decoded[key] = value
        else:
            decoded[key] = value
    return decoded


def processing_root(env: Mapping[str, str] | None = None) -> Path:
    """Root under which a Processing job's inputs and outputs are mounted."""
    env = os.environ if env is None else env
    return Path(env.get(PROCESSING_ROOT, str(DEFAULT_PROCESSING_ROOT)))


def serving_workers(env: Mapping[str, str] | None = None) -> int:
    """Worker processes for the model server: SAGEMAKER_MODEL_SERVER_WORKERS, else the CPU count.

    Raises:
        ValueError: the variable is set but is not a positive integer.
    """
    env = os.environ if env is None else env
    raw = env.get(SAGEMAKER_MODEL_SERVER_WORKERS)
    if raw is None or raw == "":
        return os.cpu_count() or 1
    try:
        workers = int(raw)
    except ValueError:
        raise ValueError(f"{SAGEMAKER_MODEL_SERVER_WORKERS}={raw!r} is not an integer") from None
    if workers < 1:
        raise ValueError(f"{SAGEMAKER_MODEL_SERVER_WORKERS}={raw!r} must be at least 1")
    return workers

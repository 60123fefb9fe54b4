"""Training step: several candidate families, a seeded search within a time budget, the best one wins.

SageMaker runs it as a Training job (the training image's ``train`` command):
    channels  SM_CHANNEL_TRAIN, SM_CHANNEL_VALIDATION: a CSV with a header (and the preprocess step's schema.json)
    hyperparameters  target, problem_type, time_budget_seconds, max_trials, seed, families
    writes    SM_MODEL_DIR (the artifact), SM_OUTPUT_DATA_DIR/leaderboard.json

The winner is chosen on the validation split by the problem's metric, then refitted on
train + validation before it is saved.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import xgboost
from sklearn.model_selection import ParameterSampler

from ml_code import metrics
from ml_code.artifact import ModelArtifact, encode_target
from ml_code.candidates import ENSEMBLE, FAMILIES, FAMILY_NAMES, build_candidate
from ml_code.distributed import ResultsCollector, leader_address, send_results
from ml_code.environment import SageMakerEnvironment
from ml_code.preprocess import combine_inputs
from ml_code.schema import DataSchema, DataValidationError, ProblemType, load_dataset


class TrainingConfigError(ValueError):
    """A hyperparameter is missing or out of range; the message names it."""


@dataclass(frozen=True)
class TrainingSettings:
    """Hyperparameters of the training step, validated."""

    target: str
    problem_type: ProblemType
    time_budget_seconds: float = 120.0
    max_trials: int = 8  # per family, the defaults included
    seed: int = 42
    families: tuple[str, ...] = FAMILY_NAMES

    @classmethod
    def from_hyperparameters(cls, hps: dict[str, Any], schema: DataSchema | None) -> TrainingSettings:
        target = hps.get("target", schema.target if schema else None)
        problem = hps.get("problem_type", schema.problem_type.value if schema else None)
        if not target:
            raise TrainingConfigError("hyperparameter 'target' is required (or a schema.json in the train channel)")
        try:
            problem_type = ProblemType(str(problem))
        except ValueError:
            raise TrainingConfigError(
                f"hyperparameter 'problem_type' must be one of {[p.value for p in ProblemType]}, got {problem!r}"
            ) from None
        families = hps.get("families", ",".join(FAMILY_NAMES))
        names = tuple(f.strip() for f in str(families).split(",") if f.strip())
        unknown = [n for n in names if n not in FAMILY_NAMES]
        if unknown or not names:
            raise TrainingConfigError(f"hyperparameter 'families': unknown {unknown}; choose from {list(FAMILY_NAMES)}")
        settings = cls(
            target=str(target),
            problem_type=problem_type,
            time_budget_seconds=float(hps.get("time_budget_seconds", cls.time_budget_seconds)),
            max_trials=int(hps.get("max_trials", cls.max_trials)),
            seed=int(hps.get("seed", cls.seed)),
            families=names,
        )
        if settings.time_budget_seconds <= 0:
            raise TrainingConfigError("hyperparameter 'time_budget_seconds' must be positive")
        if settings.max_trials < 1:
            raise TrainingConfigError("hyperparameter 'max_trials' must be at least 1")
        return settings


@dataclass
class Trial:
    """One fitted candidate and its validation scores.

    ``index`` is its place in the plan (the order a single instance fits in), ``host`` the
    instance that fitted it.
    """

    family: str
    params: dict[str, Any]
    scores: dict[str, float]
    fit_seconds: float
    index: int = 0
    host: str = "algo-1"


@dataclass(frozen=True)
class PlannedTrial:
    index: int
    family: str
    params: dict[str, Any]
    is_default: bool


@dataclass
class TrainingResult:
    """What the step produced; a worker instance produces trials only (``artifact`` is None)."""

    artifact: ModelArtifact | None
    trials: list[Trial]
    winner: Trial | None
    seconds: float
    host: str = "algo-1"


def _find_csv(directory: Path) -> Path:
    # One CSV, or the parts a Spark preprocess step wrote (combined in a temp dir, not in the job's outputs).
    return combine_inputs(directory)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sorted(params.items())}


def plan_trials(settings: TrainingSettings) -> list[PlannedTrial]:
    """Every trial of the search, in order: per family, its defaults then seeded samples."""
    planned: list[PlannedTrial] = []
    for family in (f for f in FAMILIES if f.name in settings.families):
        sampled = ParameterSampler(family.space, n_iter=settings.max_trials - 1, random_state=settings.seed)
        for number, params in enumerate([dict(family.defaults), *(_plain(p) for p in sampled)]):
            planned.append(PlannedTrial(len(planned), family.name, params, is_default=number == 0))
    return planned


def fit_trials(
    schema: DataSchema,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    planned: list[PlannedTrial],
    settings: TrainingSettings,
    n_jobs: int,
    host: str = "algo-1",
    log: Any = print,
) -> list[Trial]:
    """Fit ``planned`` in order and score each on validation.

    Every family's default configuration is fitted even when the time budget is spent, so each
    family is always represented; sampled configurations are skipped after the deadline.
    """
    deadline = time.monotonic() + settings.time_budget_seconds
    trials: list[Trial] = []
    skipped = 0
    for plan in planned:
        if not plan.is_default and time.monotonic() > deadline:
            skipped += 1
            continue
        trial = _fit_one(schema, train_x, train_y, valid_x, valid_y, plan.family, plan.params, settings, n_jobs)
        trial.index, trial.host = plan.index, host
        trials.append(trial)
    if skipped:
        log(f"  {host}: time budget reached; {skipped} sampled trials skipped")
    return trials


def _fit_one(
    schema: DataSchema,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    family: str,
    params: dict[str, Any],
    settings: TrainingSettings,
    n_jobs: int,
) -> Trial:
    start = time.monotonic()
    pipeline = build_candidate(schema, family, params, settings.seed, n_jobs)
    pipeline.fit(train_x, train_y)
    proba = pipeline.predict_proba(valid_x) if schema.problem_type is not ProblemType.REGRESSION else None
    scores = metrics.compute(schema.problem_type, valid_y, pipeline.predict(valid_x), proba)
    return Trial(family, params, scores, round(time.monotonic() - start, 3))


def blend_and_select(
    schema: DataSchema,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    trials: list[Trial],
    settings: TrainingSettings,
    n_jobs: int,
) -> tuple[list[Trial], Trial]:
    """Add the blend of each family's best configuration, then pick the winner.

    With two or more families, the blend is scored on validation like any other candidate
    and wins only if it scores best. Ties go to the earlier trial, in plan order.
    """
    trials = sorted(trials, key=lambda t: t.index)
    rank = lambda t: metrics.selection_score(schema.problem_type, t.scores)  # noqa: E731
    best_per_family: dict[str, Trial] = {}
    for trial in trials:
        if trial.family not in best_per_family or rank(trial) > rank(best_per_family[trial.family]):
            best_per_family[trial.family] = trial
    if len(best_per_family) >= 2:
        members = {name: best_per_family[name].params for name in FAMILY_NAMES if name in best_per_family}
        blend = _fit_one(schema, train_x, train_y, valid_x, valid_y, ENSEMBLE, members, settings, n_jobs)
        blend.index = trials[-1].index + 1
        trials.append(blend)
    return trials, max(trials, key=rank)


def fit_and_select(
    schema: DataSchema,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    settings: TrainingSettings,
    n_jobs: int,
    log: Any = print,
) -> tuple[list[Trial], Trial]:
    """The whole search on one instance: every planned trial, then the blend and the winner."""
    trials = fit_trials(schema, train_x, train_y, valid_x, valid_y, plan_trials(settings), settings, n_jobs, log=log)
    return blend_and_select(schema, train_x, train_y, valid_x, valid_y, trials, settings, n_jobs)


def train(env: SageMakerEnvironment, log: Any = print) -> TrainingResult:
    """Run the training step against SageMaker's contract.

    Raises:
        DataValidationError, TrainingConfigError: bad data or hyperparameters, named.
    """
    start = time.monotonic()
    train_dir, valid_dir = env.channel("train"), env.channel("validation")
    declared = DataSchema.read(train_dir / "schema.json") if (train_dir / "schema.json").is_file() else None
    settings = TrainingSettings.from_hyperparameters(env.hyperparameters, declared)
    train_ds = load_dataset(
        _find_csv(train_dir), target=settings.target, problem_type=settings.problem_type, schema=declared
    )
    valid_ds = load_dataset(
        _find_csv(valid_dir), target=settings.target, problem_type=settings.problem_type, schema=train_ds.schema
    )
    schema = train_ds.schema
    train_y, valid_y = encode_target(schema, train_ds.target), encode_target(schema, valid_ds.target)

    metric, _ = metrics.SELECTION_METRIC[schema.problem_type]
    cluster = env.cluster
    log(
        f"training {len(train_y)} rows, validating on {len(valid_y)}; selecting by validation {metric}"
        + (f"; instance {cluster.current} of {cluster.size}" if cluster.size > 1 else "")
    )
    data = (schema, train_ds.features, train_y, valid_ds.features, valid_y)
    mine = [p for p in plan_trials(settings) if p.index % cluster.size == cluster.rank]
    address = leader_address(cluster, env.env)
    # Workers may finish early: the leader listens before it starts fitting.
    collector = ResultsCollector(address[1], set(cluster.hosts[1:])) if cluster.size > 1 and cluster.is_leader else None
    if cluster.size > 1 and not cluster.is_leader:
        try:
            own = fit_trials(*data, mine, settings, env.num_cpus, host=cluster.current, log=log)
        except Exception as exc:
            send_results(address, cluster.current, {"error": str(exc)}, timeout=settings.time_budget_seconds + 600)
            raise
        send_results(
            address, cluster.current, {"trials": [asdict(t) for t in own]}, timeout=settings.time_budget_seconds + 600
        )
        return TrainingResult(
            artifact=None, trials=own, winner=None, seconds=time.monotonic() - start, host=cluster.current
        )
    trials = fit_trials(*data, mine, settings, env.num_cpus, host=cluster.current, log=log)
    if collector is not None:
        received = collector.wait(timeout=settings.time_budget_seconds + 3600)
        trials += [Trial(**t) for host in sorted(received) for t in received[host]]
    trials, winner = blend_and_select(*data, trials, settings, env.num_cpus)
    # Refit the winner on train + validation: the selection is done, the extra rows help the final model.
    final = build_candidate(schema, winner.family, winner.params, settings.seed, env.num_cpus)
    final.fit(pd.concat([train_ds.features, valid_ds.features]), np.concatenate([train_y, valid_y]))

    artifact = ModelArtifact(
        pipeline=final,
        schema=schema,
        metadata={
            "winner": {"family": winner.family, "params": winner.params, "validation_scores": winner.scores},
            "selection_metric": metric,
            "refit_on": "train+validation",
            "trials": len(trials),
            "instances": cluster.size,
            "seed": settings.seed,
            "versions": {
                "python": platform.python_version(),
                "scikit-learn": sklearn.__version__,
                "xgboost": xgboost.__version__,
            },
        },
    )
    artifact.save(env.model_dir)
    env.output_data_dir.mkdir(parents=True, exist_ok=True)
    leaderboard = {"selection_metric": metric, "winner": asdict(winner), "trials": [asdict(t) for t in trials]}
    (env.output_data_dir / "leaderboard.json").write_text(json.dumps(leaderboard, indent=2) + "\n")
    return TrainingResult(
        artifact=artifact, trials=trials, winner=winner, seconds=time.monotonic() - start, host=cluster.current
    )


def summarize(result: TrainingResult) -> str:
    """Candidates, their best validation score, the winner, and the time taken."""
    artifact, winner = result.artifact, result.winner
    if artifact is None or winner is None:
        return (
            f"instance {result.host}: fitted {len(result.trials)} trials for the leader in "
            f"{result.seconds:.1f} s; the leader writes the model"
        )
    metric = artifact.metadata["selection_metric"]
    lines = [f"candidates (best validation {metric} per family, of {len(result.trials)} trials):"]
    for name in (*FAMILY_NAMES, ENSEMBLE):
        family_trials = [t for t in result.trials if t.family == name]
        if not family_trials:
            continue
        best = max(family_trials, key=lambda t: metrics.selection_score(artifact.schema.problem_type, t.scores))
        score = best.scores.get(metric, best.scores.get("accuracy"))
        lines.append(f"  {name:<12} {metric} {score:.4f}  ({len(family_trials)} trials)")
    lines.append(f"winner: {winner.family} {json.dumps(winner.params, sort_keys=True)}")
    lines.append(f"training took {result.seconds:.1f} s")
    return "\n".join(lines)


def main(env: Mapping[str, str] | None = None) -> int:
    """Entry point of the training image's ``train`` command."""
    env = os.environ if env is None else env
    try:
        result = train(SageMakerEnvironment.from_env(env))
    except (DataValidationError, TrainingConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        _write_failure(env, str(exc))
        return 1
    print(summarize(result))
    return 0


def _write_failure(env: Mapping[str, str], message: str) -> None:
    # SageMaker shows /opt/ml/output/failure as the job's FailureReason.
    failure = Path(env.get("SM_ML_ROOT", "/opt/ml")) / "output" / "failure"
    try:
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(message[:1024])
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())

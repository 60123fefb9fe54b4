"""Training step: several candidate families, a seeded search, the best one by a proper scoring rule wins.

SageMaker runs it as a Training job (the training image's ``train`` command):
    channels  SM_CHANNEL_TRAIN, SM_CHANNEL_VALIDATION: a CSV with a header (and the preprocess step's schema.json)
    hyperparameters  target, problem_type, metric, time_budget_seconds, max_trials, seed, families, cv_max_rows
    writes    SM_MODEL_DIR (the artifact), SM_OUTPUT_DATA_DIR/leaderboard.json

How a winner is chosen:
- Up to ``cv_max_rows`` rows (train + validation together), every candidate is scored by seeded
  k-fold cross-validation (stratified for classification): each row is predicted once by a model
  that did not see it. Above, the validation split is the holdout (the search then fits on a seeded
  sample of at most SEARCH_MAX_ROWS training rows, so one fit's cost is bounded).
- Candidates are ranked by a proper scoring rule on those out-of-fold predictions (log loss for
  classifiers, squared error for regression): it rewards calibrated probabilities, where AUC
  or accuracy on a few dozen rows tie. Ties go to the better user metric, then the steadier
  candidate across folds; the plan order decides only between identical predictions.
- The ensemble's weights are fitted on the members' out-of-fold predictions, and it is scored on
  predictions whose weights were fitted without those rows (cross-fitting), by the same rule.
- Binary: the decision threshold maximizes the user's metric on the winner's out-of-fold
  probabilities; it is stored in metadata.json as ``decision_threshold``.
- The winner is refitted on train + validation and saved.

The search is fixed by its plan and seed. ``time_budget_seconds`` bounds the whole step, from the
start of ``train()`` to the model on disk: loading, the search, the refit and saving. Time is
kept back from the search for the refit (estimated from the candidates' own fits); a search fit
that would pass the deadline is stopped and discarded, and a refit that would not fit in what is
left is made on a seeded sample of the rows. Whenever the budget changed the result, the run
says so (``TIME BUDGET REACHED``) and records ``budget_exhausted`` and what was cut in
metadata.json; otherwise the model is the one an unlimited run computes. Outside the budget:
starting Python and importing the libraries (about 2 s), and what SageMaker does before the
container starts and after it exits (downloading channels, uploading model.tar.gz).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import xgboost
from scipy.optimize import minimize
from sklearn.model_selection import KFold, ParameterSampler, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch
from sklearn.utils.parallel import Parallel, delayed

from ml_code import metrics
from ml_code.artifact import ArtifactError, ModelArtifact, encode_target
from ml_code.candidates import ENSEMBLE, FAMILIES, FAMILY_NAMES, StopCheck, build_candidate, fit_until
from ml_code.distributed import ResultsCollector, leader_address, send_results
from ml_code.environment import SageMakerEnvironment
from ml_code.lineage import LINEAGE_FILE
from ml_code.preprocess import combine_inputs
from ml_code.schema import DataSchema, DataValidationError, ProblemType, load_dataset

# Below this many rows (train + validation), select by cross-validation. A 15 % validation split
# of 20,000 rows holds 3,000 rows: an accuracy near 0.9 then has a standard error of about 0.005,
# finer than the gaps between candidate families, so one holdout decides well; below that the
# split gets noisy (68 rows in the example) while k fits of small data cost little.
CV_MAX_ROWS = 20_000
CV_FOLDS = 5
# Above CV_MAX_ROWS, search fits use a seeded sample of at most this many training rows, which
# bounds the cost of one fit; the winner is refitted on all rows (when the budget allows).
SEARCH_MAX_ROWS = 100_000
# How a family's fit time grows with its rows (time ~ rows ** exponent), to estimate the refit from
# the search's fits. Measured with bench/large_training.py: extra trees on 935,000 rows took 43x
# their time on 100,000 (deeper trees: exponent 1.6); linear models and XGBoost's histogram method
# grow about in proportion. REFIT_MARGIN covers the machine being busier during the refit.
REFIT_GROWTH = {"linear": 1.0, "extra_trees": 1.6, "xgboost": 1.1}
REFIT_MARGIN = 1.25
# Threshold-dependent metrics the decision threshold can be tuned for; for other metrics (AUC,
# log loss) the threshold is tuned for accuracy.
THRESHOLD_METRICS = ("accuracy", "f1", "balanced_accuracy")
DEFAULT_METRIC = {ProblemType.REGRESSION: "rmse", ProblemType.BINARY: "accuracy", ProblemType.MULTICLASS: "accuracy"}


class TrainingConfigError(ValueError):
    """A hyperparameter is missing or out of range; the message names it."""


@dataclass(frozen=True)
class TrainingSettings:
    """Hyperparameters of the training step, validated."""

    target: str
    problem_type: ProblemType
    metric: str = ""  # the user's metric, reported beside the proper score; the threshold is tuned for it
    time_budget_seconds: float = 600.0  # as the pipeline passes it
    max_trials: int = 8  # per family, the defaults included
    seed: int = 42
    families: tuple[str, ...] = FAMILY_NAMES
    cv_max_rows: int = CV_MAX_ROWS

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
        metric = str(hps.get("metric", DEFAULT_METRIC[problem_type]))
        if metric not in metrics.METRIC_NAMES[problem_type]:
            raise TrainingConfigError(
                f"hyperparameter 'metric' must be one of {sorted(metrics.METRIC_NAMES[problem_type])} "
                f"for {problem_type.value}, got {metric!r}"
            )
        try:
            settings = cls(
                target=str(target),
                problem_type=problem_type,
                metric=metric,
                time_budget_seconds=float(hps.get("time_budget_seconds", cls.time_budget_seconds)),
                max_trials=int(hps.get("max_trials", cls.max_trials)),
                seed=int(hps.get("seed", cls.seed)),
                families=names,
                cv_max_rows=int(hps.get("cv_max_rows", CV_MAX_ROWS)),
            )
        except (TypeError, ValueError) as exc:
            raise TrainingConfigError(f"a numeric hyperparameter is not a number: {exc}") from None
        if not settings.time_budget_seconds > 0 or not np.isfinite(settings.time_budget_seconds):
            raise TrainingConfigError("hyperparameter 'time_budget_seconds' must be positive")
        if settings.max_trials < 1:
            raise TrainingConfigError("hyperparameter 'max_trials' must be at least 1")
        if settings.cv_max_rows < 0:
            raise TrainingConfigError("hyperparameter 'cv_max_rows' must be 0 (always a holdout) or more")
        return settings


@dataclass
class Trial:
    """One candidate and its out-of-fold scores.

    ``scores`` holds the proper score (``log_loss`` or ``mse``) and the user's metrics, computed on
    the out-of-fold predictions; ``fold_losses`` the proper score per fold. ``index`` is its place
    in the plan, ``host`` the instance that fitted it. ``oof`` (the out-of-fold predictions) travels
    to the leader for the ensemble and the threshold, and is left out of the leaderboard.
    """

    family: str
    params: dict[str, Any]
    scores: dict[str, float]
    fit_seconds: float
    fold_losses: list[float] = field(default_factory=list)
    index: int = 0
    host: str = "algo-1"
    oof: list[Any] | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        """The leaderboard entry: everything but the predictions."""
        return {k: v for k, v in asdict(self).items() if k != "oof"}


@dataclass(frozen=True)
class PlannedTrial:
    index: int
    family: str
    params: dict[str, Any]
    is_default: bool


@dataclass(frozen=True)
class Selection:
    """How candidates are scored: the (fit rows, scored rows) pairs, indexes into train + validation."""

    method: str  # "cross-validation" or "holdout"
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]
    scored: np.ndarray  # the rows that get an out-of-fold prediction, ascending
    proper_score: str  # "log_loss" or "mse"

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "folds": len(self.folds),
            "scored_rows": len(self.scored),
            "fit_rows": [len(f) for f, _ in self.folds],
            "proper_score": self.proper_score,
        }


@dataclass
class Budget:
    """The step's time budget: one deadline for loading, the search, the refit and saving.

    ``reserve`` is kept back from the search for the refit; ``phases`` records where the time went.
    """

    seconds: float
    start: float = field(default_factory=time.monotonic)
    reserve: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    _mark: float = 0.0

    @property
    def deadline(self) -> float:
        return self.start + self.seconds

    @property
    def search_deadline(self) -> float:
        return self.deadline - self.reserve

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.deadline - time.monotonic()

    def used(self) -> float:
        return time.monotonic() - self.start

    def mark(self, phase: str) -> None:
        """Record the time since the previous mark (or the start) as ``phase``."""
        now = time.monotonic()
        self.phases[phase] = round(now - (self._mark or self.start), 3)
        self._mark = now


@dataclass
class TrainingResult:
    """What the step produced; a worker instance produces trials only (``artifact`` is None).

    ``cut`` says, in words, what the time budget took away (empty: nothing, the result is the
    unlimited run's); ``over_budget`` how many seconds the step ran past its budget anyway.
    """

    artifact: ModelArtifact | None
    trials: list[Trial]
    winner: Trial | None
    seconds: float
    host: str = "algo-1"
    planned: int = 0
    skipped: int = 0
    cut: list[str] = field(default_factory=list)
    over_budget: float = 0.0


def _find_csv(directory: Path) -> Path:
    # One CSV, or the parts a Spark preprocess step wrote (combined in a temp dir, not in the job's outputs).
    return combine_inputs(directory)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sorted(params.items())}


def plan_trials(settings: TrainingSettings) -> list[PlannedTrial]:
    """Every trial of the search, in order: each family's defaults, then round by round one seeded sample each.

    Interleaving the families means a search cut short by the time budget is cut evenly.
    """
    chosen = [f for f in FAMILIES if f.name in settings.families]
    per_family = {
        f.name: [
            dict(f.defaults),
            *(_plain(p) for p in ParameterSampler(f.space, n_iter=settings.max_trials - 1, random_state=settings.seed)),
        ]
        for f in chosen
    }
    planned: list[PlannedTrial] = []
    for number in range(settings.max_trials):
        for f in chosen:
            planned.append(PlannedTrial(len(planned), f.name, per_family[f.name][number], is_default=number == 0))
    return planned


def plan_selection(
    problem_type: ProblemType, y: np.ndarray, n_train: int, settings: TrainingSettings, classes: tuple[str, ...] = ()
) -> Selection:
    """Seeded folds over train + validation (``y``), or the validation split as a holdout above ``cv_max_rows``.

    Raises:
        DataValidationError: a class has fewer than two rows, so no fold split can hold it out.
    """
    n = len(y)
    classification = problem_type is not ProblemType.REGRESSION
    proper = "log_loss" if classification else "mse"
    if n <= settings.cv_max_rows:
        if classification:
            counts = np.bincount(y, minlength=len(classes))
            rarest = int(np.argmin(counts))
            if counts[rarest] < 2:
                label = classes[rarest] if classes else rarest
                raise DataValidationError(
                    f"class {label!r} has {counts[rarest]} row(s) in train + validation; "
                    "cross-validation needs at least 2 of each class"
                )
            k = min(CV_FOLDS, int(counts[rarest]))
            splitter: Any = StratifiedKFold(n_splits=k, shuffle=True, random_state=settings.seed)
        else:
            k = min(CV_FOLDS, n)
            splitter = KFold(n_splits=k, shuffle=True, random_state=settings.seed)
        folds = tuple((np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(n), y))
        return Selection("cross-validation", folds, np.arange(n), proper)
    fit_rows = np.arange(n_train)
    if n_train > SEARCH_MAX_ROWS:
        rng = np.random.default_rng(settings.seed)
        fit_rows = np.sort(rng.choice(fit_rows, SEARCH_MAX_ROWS, replace=False))
    scored = np.arange(n_train, n)
    return Selection("holdout", ((fit_rows, scored),), scored, proper)


def proper_loss(problem_type: ProblemType, y: np.ndarray, predictions: np.ndarray) -> float:
    """Log loss of class probabilities, or the mean squared error."""
    if problem_type is ProblemType.REGRESSION:
        return float(np.mean((np.asarray(predictions, dtype=float) - y) ** 2))
    # Probabilities in float32 (XGBoost) sum to 1 only within rounding: renormalize, and clip so a
    # confident miss costs a large finite loss rather than infinity.
    proba = np.clip(np.asarray(predictions, dtype=float), 1e-15, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(proba[np.arange(len(y)), y])))


def score_predictions(
    problem_type: ProblemType, y: np.ndarray, predictions: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """The proper score and the user-facing metrics of one set of out-of-fold predictions."""
    if problem_type is ProblemType.REGRESSION:
        return metrics.compute(problem_type, y, predictions, None)  # "mse" is the proper score
    labels = metrics.decide(predictions, threshold if problem_type is ProblemType.BINARY else None)
    user = metrics.compute(problem_type, y, labels, predictions)
    return {"log_loss": proper_loss(problem_type, y, predictions), **user}


def rank_key(trial: Trial, problem_type: ProblemType, metric: str) -> tuple[float, float, float, int]:
    """Smaller is better: the proper score, then the user's metric, then the spread over folds, then the plan.

    The proper score is rounded to 12 significant digits so that float noise between machines
    is a tie, settled by the user's metric and then by the steadier candidate (a smaller spread
    of the per-fold scores). Only identical-looking candidates fall through to the plan order.
    """
    name = "log_loss" if problem_type is not ProblemType.REGRESSION else "mse"
    loss = float(f"{trial.scores[name]:.12g}")
    user = trial.scores.get(metric, 0.0)
    user_key = -user if metrics.GREATER_IS_BETTER.get(metric, True) else user
    spread = float(np.std(trial.fold_losses)) if trial.fold_losses else 0.0
    return loss, float(f"{user_key:.12g}"), float(f"{spread:.12g}"), trial.index


def _predict(problem_type: ProblemType, pipeline: Any, x: pd.DataFrame) -> np.ndarray:
    if problem_type is ProblemType.REGRESSION:
        return np.asarray(pipeline.predict(x), dtype=float)
    return np.asarray(pipeline.predict_proba(x), dtype=float)


def fit_trial(
    schema: DataSchema,
    x: pd.DataFrame,
    y: np.ndarray,
    selection: Selection,
    plan: PlannedTrial,
    settings: TrainingSettings,
    n_jobs: int,
    deadline: float,
    fitted: list[Any] | None = None,
) -> Trial | None:
    """Fit one candidate on every fold and score its out-of-fold predictions.

    The plan's first trial always completes, so there is a model whatever the budget; any other
    returns None when the deadline passes before it finishes (its fits are stopped there). With
    ``fitted`` and a single holdout fold, the fitted pipeline is appended to it.
    """
    start = time.monotonic()
    problem = schema.problem_type
    width = len(schema.classes) if problem is not ProblemType.REGRESSION else 0
    oof = np.zeros((len(selection.scored), width) if width else len(selection.scored))
    # Folds of small data fit side by side, one core each: cheaper than each fit spreading a few
    # milliseconds of work over every core. A single holdout fit gets every core.
    parallel = min(n_jobs, len(selection.folds))
    fit_jobs = 1 if parallel > 1 else n_jobs

    def one_fold(fit_rows: np.ndarray, scored_rows: np.ndarray) -> np.ndarray | None:
        stop = None if plan.index == 0 else StopCheck(deadline)
        if stop is not None and time.monotonic() > deadline:
            return None
        pipeline = build_candidate(schema, plan.family, plan.params, settings.seed, fit_jobs, len(fit_rows), stop)
        fit_until(pipeline, x.iloc[fit_rows], y[fit_rows], stop)
        if stop is not None and stop.stopped:
            return None
        if fitted is not None and len(selection.folds) == 1:
            if "callbacks" in pipeline.named_steps["model"].get_params():
                pipeline.named_steps["model"].set_params(callbacks=None)  # the deadline does not travel with the model
            fitted.append(pipeline)
        return _predict(problem, pipeline, x.iloc[scored_rows])

    if parallel > 1:  # threads: the estimators release the GIL while they fit
        outputs = Parallel(n_jobs=parallel, backend="threading")(delayed(one_fold)(f, s) for f, s in selection.folds)
    else:
        outputs = [one_fold(f, s) for f, s in selection.folds]
    fold_losses: list[float] = []
    for (_, scored_rows), predictions in zip(selection.folds, outputs, strict=True):
        if predictions is None:
            return None
        oof[np.searchsorted(selection.scored, scored_rows)] = predictions
        fold_losses.append(proper_loss(problem, y[scored_rows], predictions))
    scores = score_predictions(problem, y[selection.scored], oof)
    return Trial(
        plan.family,
        plan.params,
        scores,
        round(time.monotonic() - start, 3),
        fold_losses=fold_losses,
        index=plan.index,
        oof=oof.tolist(),
    )


def fit_trials(
    schema: DataSchema,
    x: pd.DataFrame,
    y: np.ndarray,
    selection: Selection,
    planned: list[PlannedTrial],
    settings: TrainingSettings,
    n_jobs: int,
    host: str = "algo-1",
    log: Any = print,
    budget: Budget | None = None,
    refit_rows: int | None = None,
    kept: dict[int, Any] | None = None,
) -> tuple[list[Trial], int]:
    """Fit ``planned`` in order; return the trials and how many the time budget cut.

    After each trial the budget's reserve becomes the estimated refit (on ``refit_rows``, default
    every row) of the blend of each family's best so far, so the search leaves time for it. A
    trial that its family's earlier fits say cannot end before the search deadline is not started.
    With ``kept`` and a holdout selection, it holds the fitted pipeline of each family's best
    trial by plan index: when the budget leaves no time for a larger refit, the winner is those
    very models (the ones that were scored), at no cost.
    """
    refit_rows = len(y) if refit_rows is None else refit_rows
    budget = Budget(settings.time_budget_seconds) if budget is None else budget
    trials: list[Trial] = []
    skipped = 0
    for plan in planned:
        expected = expected_trial_seconds(plan, trials)
        if plan.index != 0 and expected is not None and time.monotonic() + expected > budget.search_deadline:
            skipped += 1
            continue
        fitted: list[Any] = []
        trial = fit_trial(schema, x, y, selection, plan, settings, n_jobs, budget.search_deadline, fitted)
        if trial is None:
            skipped += 1
            continue
        trial.host = host
        trials.append(trial)
        best: dict[str, Trial] = {}
        for t in trials:
            if t.family not in best or rank_key(t, schema.problem_type, settings.metric) < rank_key(
                best[t.family], schema.problem_type, settings.metric
            ):
                best[t.family] = t
        budget.reserve = estimate_refit_seconds(list(best.values()), selection, refit_rows, n_jobs)
        if kept is not None and fitted:
            kept[trial.index] = fitted[0]
            for index in [i for i in kept if i not in {t.index for t in best.values()}]:
                del kept[index]  # superseded within its family: free the memory
    if skipped:
        log(
            f"  {host}: TIME BUDGET of {settings.time_budget_seconds:g} s REACHED: {skipped} of {len(planned)} "
            "planned trials were not completed; the search was cut short"
        )
    return trials, skipped


def expected_trial_seconds(plan: PlannedTrial, done: list[Trial]) -> float | None:
    """How long ``plan`` should take, from its family's completed trials (scaled by their tree counts)."""
    same = [t for t in done if t.family == plan.family]
    if not same:
        return None

    def size(params: dict[str, Any]) -> float:
        return float(params.get("n_estimators", 1))

    return max(t.fit_seconds / size(t.params) for t in same) * size(plan.params)


def _fit_cost(trial: Trial, selection: Selection, n_jobs: int) -> tuple[float, float]:
    """(seconds, rows) of one of the trial's fits: folds fitted side by side share its wall time."""
    folds = len(selection.folds)
    side_by_side = min(n_jobs, folds)
    rows = float(np.mean([len(fit) for fit, _ in selection.folds]))
    return trial.fit_seconds * side_by_side / folds, rows


def estimate_refit_seconds(members: list[Trial], selection: Selection, rows: int, n_jobs: int) -> float:
    """Estimated seconds to fit ``members`` (a candidate, or a blend's members) on ``rows`` rows."""
    total = 0.0
    for trial in members:
        seconds, fitted = _fit_cost(trial, selection, n_jobs)
        total += seconds * (rows / max(fitted, 1.0)) ** REFIT_GROWTH.get(trial.family, 1.0)
    return REFIT_MARGIN * total


def _members(winner: Trial, trials: list[Trial]) -> list[Trial]:
    """The trials a winner is made of: itself, or the blend's members (matched by family and parameters)."""
    if winner.family != ENSEMBLE:
        return [winner]
    weights = winner.params["weights"]
    return [
        next(t for t in trials if t.family == family and t.params == params)
        for family, params in winner.params["members"].items()
        if weights[family] > 0
    ]


def assemble(winner: Trial, trials: list[Trial], kept: dict[int, Any], schema: DataSchema, y: np.ndarray) -> Any:
    """The winner from the search's own fitted pipelines (holdout), or None when one is not at hand.

    A blend is its members' fitted estimators behind their shared preprocessing (each member's is
    fitted on the same rows, so they are equal), weighted as ``build_candidate`` weights them: the
    model a refit on the search's rows computes, without fitting it again.
    """
    members = _members(winner, trials)
    if any(m.index not in kept for m in members):
        return None
    if winner.family != ENSEMBLE:
        return kept[winner.index]
    pipelines = [kept[m.index] for m in members]
    blend = build_candidate(schema, ENSEMBLE, winner.params, 0, 1)
    voting = blend.named_steps["model"]
    voting.estimators_ = [p.named_steps["model"] for p in pipelines]
    voting.named_estimators_ = Bunch(**{m.family: e for m, e in zip(members, voting.estimators_, strict=True)})
    if schema.problem_type is not ProblemType.REGRESSION:
        voting.le_ = LabelEncoder().fit(y)
        voting.classes_ = voting.le_.classes_
    return Pipeline([("preprocess", pipelines[0].named_steps["preprocess"]), ("model", voting)])


def refit_rows(
    winner: Trial, trials: list[Trial], selection: Selection, n_rows: int, n_jobs: int, seconds_left: float, seed: int
) -> np.ndarray:
    """The rows the final model is fitted on: all of them, unless their estimated cost exceeds what is left.

    Then the largest seeded sample whose estimate fits (found by bisection), but never fewer
    rows than one search fit used; in the holdout case a sample no larger than the search's
    own rows is exactly those rows, so the model saved is the one that was scored.
    """
    everything = np.arange(n_rows)
    members = _members(winner, trials)
    if estimate_refit_seconds(members, selection, n_rows, n_jobs) <= seconds_left:
        return everything
    search_rows = selection.folds[0][0]
    low, high = len(search_rows), n_rows
    while low < high:  # the largest count in [low, high] whose estimate fits
        middle = (low + high + 1) // 2
        if estimate_refit_seconds(members, selection, middle, n_jobs) <= seconds_left:
            low = middle
        else:
            high = middle - 1
    if low >= n_rows:
        return everything
    if selection.method == "holdout" and low <= len(search_rows):
        return np.asarray(search_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, low, replace=False))


def fit_blend_weights(problem_type: ProblemType, y: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one that minimize the proper score of the weighted average.

    Args:
        members: the members' predictions, stacked on the first axis.
    """
    m = members.shape[0]

    def loss(w: np.ndarray) -> float:
        return proper_loss(problem_type, y, np.tensordot(w, members, axes=1))

    result = minimize(
        loss,
        np.full(m, 1.0 / m),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: float(np.sum(w) - 1.0)}],
    )
    weights = np.clip(result.x, 0.0, None)
    weights[weights < 1e-3] = 0.0  # a member worth under 0.1 % is dropped: it would cost serving time for nothing
    return weights / weights.sum()


def blend_trial(
    problem_type: ProblemType, y: np.ndarray, members: dict[str, Trial], seed: int, index: int
) -> tuple[Trial, np.ndarray]:
    """The weighted blend of ``members``, scored on cross-fitted predictions; returns the trial and them.

    Each of five seeded parts of the scored rows gets predictions from weights fitted on the other
    parts, so the blend's score does not see the rows its weights were fitted on (the members'
    predictions are out-of-fold already). The stored weights are fitted on all rows.
    """
    names = list(members)
    stacked = np.stack([np.asarray(members[n].oof, dtype=float) for n in names])
    crossfit = np.zeros_like(stacked[0])
    part_losses: list[float] = []
    parts = KFold(n_splits=min(CV_FOLDS, len(y)), shuffle=True, random_state=seed)
    for fit_rows, held in parts.split(np.zeros(len(y))):
        w = fit_blend_weights(problem_type, y[fit_rows], stacked[:, fit_rows])
        crossfit[held] = np.tensordot(w, stacked[:, held], axes=1)
        part_losses.append(proper_loss(problem_type, y[held], crossfit[held]))
    weights = fit_blend_weights(problem_type, y, stacked)
    params = {
        "members": {n: members[n].params for n in names},
        "weights": {n: round(float(w), 6) for n, w in zip(names, weights, strict=True)},
    }
    scores = score_predictions(problem_type, y, crossfit)
    trial = Trial(ENSEMBLE, params, scores, 0.0, fold_losses=part_losses, index=index)
    return trial, crossfit


def blend_and_select(
    schema: DataSchema, y: np.ndarray, selection: Selection, trials: list[Trial], settings: TrainingSettings
) -> tuple[list[Trial], Trial, np.ndarray]:
    """Add the blend of each family's best candidate, then pick the winner by ``rank_key``.

    Returns:
        every trial (the blend last), the winner, and the winner's out-of-fold predictions.
    """
    problem = schema.problem_type
    trials = sorted(trials, key=lambda t: t.index)
    key = lambda t: rank_key(t, problem, settings.metric)  # noqa: E731
    best: dict[str, Trial] = {}
    for trial in trials:
        if trial.family not in best or key(trial) < key(best[trial.family]):
            best[trial.family] = trial
    oof = {t.index: np.asarray(t.oof, dtype=float) for t in trials}
    scored_y = y[selection.scored]
    if len(best) >= 2:
        members = {name: best[name] for name in FAMILY_NAMES if name in best}
        blend, blend_oof = blend_trial(problem, scored_y, members, settings.seed, trials[-1].index + 1)
        # A blend that puts all its weight on one member is that member: it is not a candidate.
        if sum(w > 0 for w in blend.params["weights"].values()) >= 2:
            trials.append(blend)
            oof[blend.index] = blend_oof
    winner = min(trials, key=key)
    return trials, winner, oof[winner.index]


def choose_threshold(y: np.ndarray, positive: np.ndarray, metric: str) -> tuple[float, float]:
    """The decision threshold on P(positive) that maximizes ``metric`` on out-of-fold predictions.

    Every cut between two distinct predicted probabilities is tried (predict positive when the
    probability is >= the threshold, the midpoint of the cut). Among equally good cuts the one
    nearest 0.5 wins: it keeps the probabilities' own reading where the data cannot tell.

    Returns:
        the threshold and the metric's value there.
    """
    name = metric if metric in THRESHOLD_METRICS else "accuracy"
    order = np.argsort(-positive, kind="stable")
    p, labels = positive[order], y[order]
    distinct = np.flatnonzero(np.diff(p) != 0) + 1  # positions where the next probability is lower
    cuts = np.concatenate([[0], distinct, [len(p)]])  # predict the first `cut` rows positive
    true_pos = np.concatenate([[0], np.cumsum(labels)])[cuts]
    positives, n = int(labels.sum()), len(labels)
    false_pos = cuts - true_pos
    false_neg = positives - true_pos
    true_neg = (n - positives) - false_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "accuracy":
            value = (true_pos + true_neg) / n
        elif name == "f1":
            value = np.nan_to_num(2 * true_pos / (2 * true_pos + false_pos + false_neg))
        else:
            tpr = np.nan_to_num(true_pos / positives)
            tnr = np.nan_to_num(true_neg / (n - positives))
            value = (tpr + tnr) / 2
    upper = np.concatenate([[1.0], p])[cuts]  # the lowest probability predicted positive (1.0: none)
    lower = np.concatenate([p, [0.0]])[cuts]  # the highest probability predicted negative
    # No row positive: just above 1; every row positive: 0; otherwise the midpoint of the cut.
    thresholds = np.where(cuts == 0, np.nextafter(1.0, 2.0), np.where(cuts == n, 0.0, (upper + lower) / 2))
    best = np.flatnonzero(np.isclose(value, value.max(), rtol=0, atol=1e-12))
    pick = best[np.argmin(np.abs(thresholds[best] - 0.5))]
    return float(thresholds[pick]), float(value[pick])


def _content_hash(directory: Path) -> str:
    """SHA-256 over the CSV files of a channel (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.csv")):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


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
    try:
        y = np.concatenate([encode_target(schema, train_ds.target), encode_target(schema, valid_ds.target)])
    except ArtifactError as exc:
        raise DataValidationError(f"{valid_dir}: {exc}") from None
    x = pd.concat([train_ds.features, valid_ds.features], ignore_index=True)
    selection = plan_selection(schema.problem_type, y, len(train_ds.target), settings, schema.classes)

    cluster = env.cluster
    budget = Budget(settings.time_budget_seconds, start=start)
    budget.mark("load")
    log(
        f"training on {len(train_ds.target)} + {len(valid_ds.target)} rows (loaded in {budget.phases['load']:.1f} s "
        f"of a {settings.time_budget_seconds:g} s budget); selecting by "
        f"{selection.method} ({len(selection.folds)} fold(s), {len(selection.scored)} scored rows) on "
        f"{selection.proper_score}, reporting {settings.metric}"
        + (f"; instance {cluster.current} of {cluster.size}" if cluster.size > 1 else "")
    )
    planned = plan_trials(settings)
    mine = [p for p in planned if p.index % cluster.size == cluster.rank]
    address = leader_address(cluster, env.env)
    wait_limit = settings.time_budget_seconds + 3600
    # Workers may finish early: the leader listens before it starts fitting.
    collector = ResultsCollector(address[1], set(cluster.hosts[1:])) if cluster.size > 1 and cluster.is_leader else None
    if cluster.size > 1 and not cluster.is_leader:
        try:
            own, skipped = fit_trials(
                schema, x, y, selection, mine, settings, env.num_cpus, host=cluster.current, log=log, budget=budget
            )
        except Exception as exc:
            send_results(address, cluster.current, {"error": str(exc)}, timeout=wait_limit)
            raise
        payload = {"trials": [asdict(t) for t in own], "skipped": skipped}
        send_results(address, cluster.current, payload, timeout=wait_limit)
        return TrainingResult(
            artifact=None,
            trials=own,
            winner=None,
            seconds=time.monotonic() - start,
            host=cluster.current,
            planned=len(mine),
            skipped=skipped,
            cut=[f"{skipped} of {len(mine)} planned trials were not completed"] if skipped else [],
        )
    kept: dict[int, Any] = {}
    trials, skipped = fit_trials(
        schema, x, y, selection, mine, settings, env.num_cpus, host=cluster.current, log=log, budget=budget, kept=kept
    )
    if collector is not None:
        received = collector.wait(timeout=wait_limit)
        trials += [Trial(**t) for host in sorted(received) for t in received[host]]
        skipped += sum(collector.skipped.values())
    budget.mark("search")
    trials, winner, winner_oof = blend_and_select(schema, y, selection, trials, settings)
    metadata_extra: dict[str, Any] = {}
    if schema.problem_type is ProblemType.BINARY:
        threshold, value = choose_threshold(y[selection.scored], winner_oof[:, 1], settings.metric)
        tuned_for = settings.metric if settings.metric in THRESHOLD_METRICS else "accuracy"
        metadata_extra = {
            "decision_threshold": threshold,
            "threshold_metric": tuned_for,
            "threshold_cv_score": value,
        }
        # The winner's reported metrics are those of the threshold it will serve with.
        winner.scores = score_predictions(schema.problem_type, y[selection.scored], winner_oof, threshold)
        log(f"decision threshold {threshold:.4f} (out-of-fold {tuned_for} {value:.4f})")
    budget.mark("select")

    # Refit the winner on train + validation: the selection is done, every row helps the final model,
    # unless the refit of every row would not end within the budget (then a seeded sample, said below).
    rows = refit_rows(winner, trials, selection, len(y), env.num_cpus, budget.left(), settings.seed)
    search_rows = selection.folds[0][0]
    reused = None
    if selection.method == "holdout" and len(rows) == len(search_rows) and np.array_equal(rows, search_rows):
        reused = assemble(winner, trials, kept, schema, y[search_rows])
    kept.clear()
    if reused is not None:
        final = reused
        log("the budget leaves no time for a larger refit: the final model is the one fitted and scored in the search")
    else:
        final = build_candidate(schema, winner.family, winner.params, settings.seed, env.num_cpus, len(rows))
        if len(rows) == len(y):
            final.fit(x, y)
        else:
            final.fit(x.iloc[rows], y[rows])
    budget.mark("refit")
    cut = []
    if skipped:
        cut.append(f"{skipped} of {len(planned)} planned trials were not completed")
    if reused is not None:
        cut.append(f"the final model is the search's, fitted on its sample of {len(rows):,} of the {len(y):,} rows")
        refit_on = "the search's sample of the training rows (the model as it was scored)"
    elif len(rows) < len(y):
        cut.append(f"the final model was refitted on a seeded sample of {len(rows):,} of the {len(y):,} rows")
        refit_on = "a seeded sample of train+validation"
    else:
        refit_on = "train+validation"
    lineage = _read_lineage(train_dir)
    artifact = ModelArtifact(
        pipeline=final,
        schema=schema,
        metadata={
            "winner": {
                "family": winner.family,
                "params": winner.params,
                "cv_scores": winner.scores,
                "cv_fold_losses": winner.fold_losses,
            },
            **metadata_extra,
            "selection": {**selection.describe(), "metric": settings.metric, "cv_max_rows": settings.cv_max_rows},
            "selection_metric": selection.proper_score,
            "refit_on": refit_on,
            "refit_rows": len(rows),
            "trials": len(trials),
            "trials_planned": len(planned),
            "trials_completed": len(planned) - skipped,
            "budget_exhausted": bool(cut),
            "budget_cut": cut,
            "time_budget_seconds": settings.time_budget_seconds,
            "instances": cluster.size,
            "seed": settings.seed,
            "seeds": {"search": settings.seed, "folds": settings.seed, "models": settings.seed},
            "data": {
                "train_sha256": _content_hash(train_dir),
                "validation_sha256": _content_hash(valid_dir),
                "rows": len(y),
                **lineage,
            },
            "versions": {
                "python": platform.python_version(),
                "scikit-learn": sklearn.__version__,
                "xgboost": xgboost.__version__,
            },
        },
    )
    artifact.save(env.model_dir)
    budget.mark("save")
    # The accounting is written last, so that it includes saving the model.
    over = max(0.0, budget.used() - budget.seconds)
    artifact.metadata["budget"] = {
        "seconds": settings.time_budget_seconds,
        "used_seconds": round(budget.used(), 3),
        "over_budget_seconds": round(over, 3),
        "phases": budget.phases,
    }
    artifact.write_metadata(env.model_dir)
    env.output_data_dir.mkdir(parents=True, exist_ok=True)
    leaderboard = {
        "selection_metric": selection.proper_score,
        "metric": settings.metric,
        "selection": selection.describe(),
        "budget_exhausted": bool(cut),
        "budget_cut": cut,
        "budget": artifact.metadata["budget"],
        "winner": winner.public(),
        "trials": [t.public() for t in trials],
    }
    (env.output_data_dir / "leaderboard.json").write_text(json.dumps(leaderboard, indent=2) + "\n")
    return TrainingResult(
        artifact=artifact,
        trials=trials,
        winner=winner,
        seconds=time.monotonic() - start,
        host=cluster.current,
        planned=len(planned),
        skipped=skipped,
        cut=cut,
        over_budget=over,
    )


def _read_lineage(train_dir: Path) -> dict[str, Any]:
    """What the preprocess step read (its ``lineage.json`` beside the split), if it left one."""
    path = train_dir / LINEAGE_FILE
    if not path.is_file():
        return {}
    recorded = json.loads(path.read_text(encoding="utf-8"))
    return {key: recorded[key] for key in ("input_sha256", "input_files") if key in recorded}


def summarize(result: TrainingResult) -> str:
    """Candidates, their best out-of-fold scores, the winner, the time taken, and whether the budget cut the search."""
    artifact, winner = result.artifact, result.winner
    cut = (
        f"TIME BUDGET REACHED: {'; '.join(result.cut)}; "
        "the result may differ from an uncut run (same data, code and config)"
        if result.cut
        else ""
    )
    if artifact is None or winner is None:
        lines = [
            f"instance {result.host}: fitted {len(result.trials)} trials for the leader in "
            f"{result.seconds:.1f} s; the leader writes the model"
        ]
        return "\n".join([*lines, cut] if cut else lines)
    problem = artifact.schema.problem_type
    proper = artifact.metadata["selection_metric"]
    metric = artifact.metadata["selection"]["metric"]
    method = artifact.metadata["selection"]["method"]
    lines = [f"candidates (best out-of-fold {proper} per family by {method}, of {len(result.trials)} trials):"]
    for name in (*FAMILY_NAMES, ENSEMBLE):
        family_trials = [t for t in result.trials if t.family == name]
        if not family_trials:
            continue
        best = min(family_trials, key=lambda t: rank_key(t, problem, metric))
        lines.append(
            f"  {name:<12} {proper} {best.scores[proper]:.4f}  {metric} {best.scores[metric]:.4f}  "
            f"({len(family_trials)} trials)"
        )
    lines.append(f"winner: {winner.family} {json.dumps(winner.params, sort_keys=True)}")
    if "decision_threshold" in artifact.metadata:
        lines.append(
            f"decision threshold: {artifact.metadata['decision_threshold']:.4f} "
            f"(tuned for {artifact.metadata['threshold_metric']} on out-of-fold predictions)"
        )
    if cut:
        lines.append(cut)
    budget = artifact.metadata.get("budget", {})
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in budget.get("phases", {}).items())
    lines.append(f"training took {result.seconds:.1f} s of a {budget.get('seconds', 0):g} s budget ({phases})")
    if result.over_budget > 0:
        lines.append(
            f"OVER BUDGET by {result.over_budget:.1f} s: the plan's first trial and the smallest refit always run"
        )
    return "\n".join(lines)


def main(env: Mapping[str, str] | None = None) -> int:
    """Entry point of the training image's ``train`` command."""
    env = os.environ if env is None else env
    try:
        result = train(SageMakerEnvironment.from_env(env))
    except (DataValidationError, TrainingConfigError, FileNotFoundError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        _write_failure(env, str(exc))
        return 1
    except Exception as exc:  # a bug or a library failure: SageMaker must still show a reason
        message = f"training failed unexpectedly: {type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        _write_failure(env, message)
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

"""The two halves of the serving stack swapped, for bench/serving.py's ablation.

- ``create_sklearn_app``: our ASGI server (uvicorn, the same parsing and validation), predicting
  with scikit-learn's own ``predict``/``predict_proba`` on the fitted pipeline instead of the
  compiled model. Run: ``uvicorn --factory serving_ablation:create_sklearn_app``.
- ``compiled_flask_app``: the canonical Flask server (bench/byoc_baseline_server.py's shape)
  answering with our handlers and compiled model. Run: ``gunicorn serving_ablation:compiled_flask_app``.

So (Flask + scikit-learn) -> (Flask + compiled) is the predictor's gain, and
(Flask + compiled) -> (uvicorn + compiled) the server's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import flask
import numpy as np
import pandas as pd

from ml_code.serving.app import InferenceApp, create_app
from ml_code.serving.compiled import Table
from ml_code.serving.inference import (
    CUSTOM_ATTRIBUTES_HEADER,
    LoadedModel,
    RequestError,
    choose_accept,
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
)


class SklearnPredictor:
    """Stands where the compiled model stands, and calls the fitted pipeline (n_jobs=1, as the baseline)."""

    def __init__(self, model: LoadedModel) -> None:
        self.pipeline = model.artifact.pipeline
        self.names = model.schema.feature_names
        self.classifier = model.artifact.is_classifier
        for _, step in self.pipeline.steps:
            for estimator in [step, *getattr(step, "estimators_", [])]:
                if hasattr(estimator, "n_jobs"):
                    estimator.set_params(n_jobs=1)

    def predict_proba(self, table: Table, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        frame = pd.DataFrame({name: column for name, column in zip(self.names, table.columns, strict=True)})
        if self.classifier:
            return np.asarray(self.pipeline.predict_proba(frame))
        return np.asarray(self.pipeline.predict(frame), dtype=np.float64)


def _load_with_sklearn(model_dir: Path) -> LoadedModel:
    model = model_fn(model_dir)
    model.compiled = SklearnPredictor(model)  # type: ignore[assignment]
    return model


def create_sklearn_app() -> InferenceApp:
    """uvicorn's factory: our app, configured from the environment as ``create_app``, with scikit-learn."""
    app = create_app()
    return InferenceApp(app.model_dir, app.workers, app.max_pending, load=_load_with_sklearn)


def _flask_app() -> flask.Flask:
    model = model_fn(Path(os.environ["SM_MODEL_DIR"]))
    app = flask.Flask(__name__)

    @app.route("/ping", methods=["GET"])
    def ping() -> flask.Response:
        return flask.Response(response="\n", status=200, mimetype="application/json")

    @app.route("/invocations", methods=["POST"])
    def invocations() -> flask.Response:
        request = flask.request
        try:
            accept = choose_accept(request.headers.get("Accept"), request.content_type)
            parsed = input_fn(
                request.get_data(), request.content_type, model, request.headers.get(CUSTOM_ATTRIBUTES_HEADER)
            )
            return flask.Response(output_fn(predict_fn(parsed, model), accept), status=200, mimetype=accept)
        except RequestError as exc:
            return flask.Response(exc.message, status=exc.status, mimetype="text/plain")

    return app


compiled_flask_app = _flask_app() if os.environ.get("SERVING_ABLATION") == "flask-compiled" else None

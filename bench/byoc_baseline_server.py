"""The canonical bring-your-own-container server, as AWS's scikit_bring_your_own sample writes it.

Flask under gunicorn; each request is parsed with pandas and predicted by the pickled
model. Used only by bench/serving.py as the baseline. It serves our artifact (the same
fitted pipeline), with n_jobs=1 set at load so that it is not slowed by thread start-up:
a fair version of the canonical stack, not a strawman.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import flask
import pandas as pd

from ml_code.artifact import ModelArtifact

_artifact = ModelArtifact.load(Path(os.environ["SM_MODEL_DIR"]))
for _, _step in _artifact.pipeline.steps:
    for _est in [_step, *getattr(_step, "estimators_", [])]:
        if hasattr(_est, "n_jobs"):
            _est.set_params(n_jobs=1)

app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping() -> flask.Response:
    return flask.Response(response="\n", status=200, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def invocations() -> flask.Response:
    if flask.request.content_type != "text/csv":
        return flask.Response(response="This predictor only supports CSV data", status=415, mimetype="text/plain")
    data = pd.read_csv(
        io.StringIO(flask.request.data.decode("utf-8")), header=None, names=_artifact.schema.feature_names
    )
    predictions = _artifact.predict_encoded(data)
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    return flask.Response(response=out.getvalue(), status=200, mimetype="text/csv")

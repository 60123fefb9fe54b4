"""One deploy's monitoring baselines, made ready where the monitoring jobs read them. Pure of Lambda.

On every deploy (the endpoint stack's parameters change), CloudFormation calls this with the
served version's registered files, which live in the *source* environment's artifacts bucket
(another account, possibly). It:

1. checks that they are that version's: the model package's registered model metrics must name
   the same three files, so the stack cannot monitor one version against another's baseline;
2. reads the version's ``image_tag`` (the training image that holds ``ml_code``, which the
   platform engine runs);
3. copies ``statistics.json``, ``constraints.json`` and ``evaluation.json`` into this
   environment's monitoring bucket, under ``<prefix>/v<version>-<digest>/``, encrypted with its
   data key: the jobs run in the private subnets, whose S3 endpoint serves this environment's
   buckets only. With a drift threshold (``monitoring.drift_threshold``), the copy of
   ``constraints.json`` carries it as both comparison thresholds, where both engines read them;
4. writes ``model_quality_constraints.json`` there: Model Monitor's model-quality constraints,
   from the registered evaluation and the allowed degradation, with the thresholds
   ``ml_code.monitor`` applies (an error metric above ``registered * (1 + x)``, a score below
   ``registered * (1 - x)``);
5. makes that folder the current one: the same files under ``<prefix>/current/`` (which Model
   Monitor's job definitions name, so a deploy changes no job definition), then
   ``current/version.json`` last (the version, its image tag and its folder, which the platform
   engine's launcher reads at each run and passes on, so each run is pinned to one version).

Nothing is deleted on Delete: each versioned folder is the record of what a deployed version was
judged against; the bucket's lifecycle and retention apply.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from monitoring_baseline.events import BaselineProperties

# The metrics each problem type is judged on, and whether lower is better: ml_code.monitor's
# MONITORED and LOWER_IS_BETTER (a test keeps the two equal).
MONITORED: dict[str, tuple[str, ...]] = {
    "regression": ("rmse", "mae"),
    "binary": ("accuracy", "f1"),
    "multiclass": ("accuracy", "weighted_f1"),
}
LOWER_IS_BETTER = frozenset({"mse", "rmse", "mae"})
# evaluation.json's section (ml_code.metrics.REPORT_KEY) and Model Monitor's constraints section.
REPORT_KEY = {
    "regression": "regression_metrics",
    "binary": "binary_classification_metrics",
    "multiclass": "multiclass_classification_metrics",
}
CONSTRAINTS_KEY = {
    "regression": "regression_constraints",
    "binary": "binary_classification_constraints",
    "multiclass": "multiclass_classification_constraints",
}
FILES = {"statistics": "statistics.json", "constraints": "constraints.json", "evaluation": "evaluation.json"}
QUALITY_CONSTRAINTS = "model_quality_constraints.json"
CURRENT = "current"
VERSION_FILE = "version.json"


class BaselineError(ValueError):
    """The deploy's files cannot serve as this version's baseline; the message says which and why."""


@dataclass(frozen=True)
class Baseline:
    """Where the copied baseline is, as the custom resource's attributes."""

    uri: str
    image_tag: str
    suffix: str  # v<version>-<digest>: this deploy's folder
    current_uri: str  # the folder the monitors read: this deploy's files, and version.json

    def data(self) -> dict[str, str]:
        return {
            "BaselineUri": self.uri,
            "Suffix": self.suffix,
            "CurrentUri": self.current_uri,
            "StatisticsUri": f"{self.uri}{FILES['statistics']}",
            "ConstraintsUri": f"{self.uri}{FILES['constraints']}",
            "EvaluationUri": f"{self.uri}{FILES['evaluation']}",
            "ModelQualityConstraintsUri": f"{self.uri}{QUALITY_CONSTRAINTS}",
            "ImageTag": self.image_tag,
        }


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def suffix(props: BaselineProperties) -> str:
    """``v<version>-<digest>``: the version, and a digest of every property (a new deploy, a new digest)."""
    version = props.model_package_arn.rsplit("/", 1)[-1]
    digest = hashlib.sha256(json.dumps(props.model_dump(), sort_keys=True).encode()).hexdigest()[:12]
    return f"v{version}-{digest}"


def folder(props: BaselineProperties) -> str:
    """``<prefix>/v<version>-<digest>/``: one folder per version and set of inputs."""
    return f"{props.prefix.strip('/')}/{suffix(props)}/"


def quality_constraints(evaluation: dict[str, Any], problem_type: str, tolerance: float) -> dict[str, Any]:
    """Model Monitor's model-quality constraints from a registered evaluation.json.

    Raises:
        BaselineError: the evaluation is of another problem type, or holds none of the judged metrics.
    """
    sections = [key for key in REPORT_KEY.values() if key in evaluation]
    if sections != [REPORT_KEY[problem_type]]:
        raise BaselineError(
            f"evaluation.json has {sections or 'no'} report section(s), expected exactly "
            f"{REPORT_KEY[problem_type]!r} for a {problem_type} model"
        )
    section = evaluation[REPORT_KEY[problem_type]]
    constraints: dict[str, dict[str, Any]] = {}
    for name in MONITORED[problem_type]:
        entry = section.get(name) if isinstance(section, dict) else None
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if name in LOWER_IS_BETTER:
            constraints[name] = {"threshold": value * (1 + tolerance), "comparison_operator": "GreaterThanThreshold"}
        else:
            constraints[name] = {"threshold": value * (1 - tolerance), "comparison_operator": "LessThanThreshold"}
    if not constraints:
        raise BaselineError(f"evaluation.json holds none of {', '.join(MONITORED[problem_type])} with a value")
    return {"version": 0.0, CONSTRAINTS_KEY[problem_type]: constraints}


def json_object(body: bytes, where: str) -> dict[str, Any]:
    """``body`` parsed as a JSON object.

    Raises:
        BaselineError: not JSON (or not UTF-8), or not an object; ``where`` names the file.
    """
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BaselineError(f"{where}: expected a JSON object")
    return document


def with_drift_threshold(constraints: bytes, threshold: float, where: str) -> bytes:
    """``constraints.json`` with ``threshold`` as its numeric and categorical comparison thresholds.

    Raises:
        BaselineError: the document is not a JSON object, its ``monitoring_config`` (or
            ``distribution_constraints``) is there but not an object, or the document would not
            judge drift by these thresholds: comparison disabled, a categorical drift method other
            than L-infinity, or a feature's own ``monitoringConfigOverrides`` threshold.
    """
    document = json_object(constraints, where)
    config = document.setdefault("monitoring_config", {})
    if not isinstance(config, dict):
        raise BaselineError(f"{where}: monitoring_config must be an object")
    distribution = config.setdefault("distribution_constraints", {})
    if not isinstance(distribution, dict):
        raise BaselineError(f"{where}: monitoring_config.distribution_constraints must be an object")
    if distribution.get("perform_comparison", "Enabled") != "Enabled":
        raise BaselineError(
            f"{where}: drift comparison is disabled (perform_comparison), so drift_threshold would do nothing"
        )
    if distribution.get("categorical_drift_method", "LInfinity") != "LInfinity":
        raise BaselineError(
            f"{where}: categorical_drift_method is {distribution['categorical_drift_method']!r}, not LInfinity: "
            "drift_threshold is an L-infinity distance"
        )
    features = document.get("features") or []
    overridden = sorted(
        str(f.get("name"))
        for f in (features if isinstance(features, list) else [])
        if isinstance(f, dict) and f.get("monitoringConfigOverrides")
    )
    if overridden:
        raise BaselineError(
            f"{where}: features {', '.join(overridden)} set their own thresholds (monitoringConfigOverrides), "
            "which drift_threshold would not replace"
        )
    distribution["comparison_threshold"] = threshold
    distribution["categorical_comparison_threshold"] = threshold
    return json.dumps(document, indent=2).encode()


class Materializer:
    """Checks, copies and derives one version's baseline; the clients are passed in."""

    def __init__(self, *, s3: Any, sagemaker: Any) -> None:
        self.s3, self.sagemaker = s3, sagemaker

    def materialize(self, props: BaselineProperties) -> Baseline:
        """Do steps 1-4 of the module docstring.

        Raises:
            BaselineError: the package does not register these files, has no image tag, the
                evaluation cannot give model-quality constraints, or the constraints cannot take
                the drift threshold.
            botocore.exceptions.ClientError: S3 or SageMaker refused.
        """
        package = self.sagemaker.describe_model_package(ModelPackageName=props.model_package_arn)
        metrics = package.get("ModelMetrics", {})
        registered = {
            "statistics": metrics.get("ModelDataQuality", {}).get("Statistics", {}).get("S3Uri"),
            "constraints": metrics.get("ModelDataQuality", {}).get("Constraints", {}).get("S3Uri"),
            "evaluation": metrics.get("ModelQuality", {}).get("Statistics", {}).get("S3Uri"),
        }
        given = {
            "statistics": props.statistics_uri,
            "constraints": props.constraints_uri,
            "evaluation": props.evaluation_uri,
        }
        wrong = [
            f"{kind}: given {given[kind]}, registered {registered[kind]}"
            for kind in given
            if given[kind] != registered[kind]
        ]
        if wrong:
            raise BaselineError(f"{props.model_package_arn} does not register these files ({'; '.join(wrong)})")
        tag = package.get("CustomerMetadataProperties", {}).get("image_tag", "")
        if not tag:
            raise BaselineError(f"{props.model_package_arn} has no image_tag in its metadata properties")
        destination = folder(props)
        bodies: dict[str, bytes] = {}
        for kind, uri in given.items():
            bucket, key = split_uri(uri)
            bodies[kind] = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        evaluation = json_object(bodies["evaluation"], props.evaluation_uri)
        quality = json.dumps(
            quality_constraints(evaluation, props.problem_type, props.max_quality_degradation), indent=2
        ).encode()
        if props.drift_threshold is not None:
            bodies["constraints"] = with_drift_threshold(
                bodies["constraints"], props.drift_threshold, props.constraints_uri
            )
        files = {FILES[kind]: body for kind, body in bodies.items()} | {QUALITY_CONSTRAINTS: quality}
        current = f"{props.prefix.strip('/')}/{CURRENT}/"
        for folder_key in (destination, current):
            for name, body in files.items():
                self._put(props, f"{folder_key}{name}", body)
        baseline = Baseline(
            uri=f"s3://{props.bucket}/{destination}",
            image_tag=tag,
            suffix=suffix(props),
            current_uri=f"s3://{props.bucket}/{current}",
        )
        version = {
            "model_package_arn": props.model_package_arn,
            "image_tag": tag,
            "baseline_uri": baseline.uri,
        }
        # Last: the launcher follows this file, so a run never sees half of a deploy.
        self._put(props, f"{current}{VERSION_FILE}", json.dumps(version, indent=2, sort_keys=True).encode())
        return baseline

    def _put(self, props: BaselineProperties, key: str, body: bytes) -> None:
        self.s3.put_object(
            Bucket=props.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=props.kms_key_arn,
        )

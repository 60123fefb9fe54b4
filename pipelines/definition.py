"""The model-build SageMaker Pipeline: preprocess, train, evaluate, baseline, gate, register (or fail).

``get_pipeline(settings)`` builds it with the sagemaker SDK (v2, ``sagemaker.workflow``).
Every job runs the platform's training image (the code is in the image: nothing is
uploaded while the definition is built), in the VPC's private subnets, with network
isolation, inter-container encryption, the data key on volumes and outputs, retries on
throttling and capacity errors, and caching.

Values known only after deployment are written as references to the environment's
discovery parameters, ``{{ssm:/name}}`` (one value) and ``{{ssm-list:/name}}`` (a
comma-separated list), which ``pipelines.run`` resolves at upsert. The images are the
parameters ``TrainingImage`` and ``InferenceImage``: ``repo:tag`` here, pinned to
``repo@sha256:...`` by the runner, which resolves the tag's digest through ECR.

Every registered version records what it was built from in its metadata properties
(``RECORD_KEYS``, each value at most 256 characters of ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``, at
most 50 of them: botocore's ``CustomerMetadataMap``): the parameters it ran with, the commit,
the image digests, the config's hash, the seed, the input's identity as the preprocess step
hashed it, whether the time budget cut the search, and for the deploy the target column
(``target``) and the test split's prefix (``test_data_uri``). ``pipelines.reproduce`` rebuilds a
version from that record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.offline import offline_session

# Metadata property -> the pipeline parameter it records: what pipelines.reproduce starts the rebuild with.
RECORDED_PARAMETERS = {
    "input_data_uri": "InputDataUri",
    "processing_instance_type": "ProcessingInstanceType",
    "processing_instance_count": "ProcessingInstanceCount",
    "training_instance_type": "TrainingInstanceType",
    "training_instance_count": "TrainingInstanceCount",
    "metric_threshold": "MetricThreshold",
    "source_commit": "SourceCommit",
    "training_image": "TrainingImage",
    "inference_image": "InferenceImage",
}
# Metadata property -> the key of evaluation.json's "lineage" section it is read from (JsonGet).
RECORDED_FROM_EVALUATION = {
    "data_sha256": "input_sha256",
    "budget_exhausted": "budget_exhausted",
    "trials_completed": "trials_completed",
    "refit_rows": "refit_rows",
    "predictions_sha256": "predictions_sha256",
}

METRIC_GATE = {
    # problem type -> (evaluation.json path, the test passes when the metric is "<=" or ">=" the threshold)
    "regression": ("regression_metrics.rmse.value", "<="),
    "binary": ("binary_classification_metrics.auc.value", ">="),
    "multiclass": ("multiclass_classification_metrics.weighted_f1.value", ">="),
}


@dataclass(frozen=True)
class PipelineSettings:
    """Everything environment-specific the definition needs."""

    name: str
    region: str
    role_arn: str
    artifacts_bucket: str
    data_uri: str
    training_image: str
    inference_image: str
    model_package_group: str
    kms_key: str
    subnets: list[str]
    security_group_ids: list[str]
    target: str
    problem_type: str
    processing_instance_type: str = "ml.m5.xlarge"
    processing_instance_count: int = 1
    training_instance_type: str = "ml.m5.xlarge"
    training_instance_count: int = 1
    metric_threshold: float = 3.0
    time_budget_seconds: int = 600
    cache_expiry: str = "P30D"
    spark_preprocessing: bool = False
    spark_code_uri: str = ""  # where the runner uploads ml_code/spark/preprocess.py before the upsert
    image_tag: str = ""  # the content hash of ml_code/ both images were built from
    config_sha256: str = ""  # the environment's validated config, hashed
    seed: int = 42


def get_pipeline(settings: PipelineSettings) -> Any:
    """Build the pipeline object; ``.definition()`` gives its JSON, offline."""
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.model import Model
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.network import NetworkConfig
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo, ConditionLessThanOrEqualTo
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_definition_config import PipelineDefinitionConfig
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.retry import (
        SageMakerJobExceptionTypeEnum,
        SageMakerJobStepRetryPolicy,
        StepExceptionTypeEnum,
        StepRetryPolicy,
    )
    from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

    if settings.problem_type not in METRIC_GATE:
        raise ValueError(f"problem_type must be one of {sorted(METRIC_GATE)}, got {settings.problem_type!r}")
    session = offline_session(settings.region, settings.artifacts_bucket)

    input_data = ParameterString("InputDataUri", default_value=settings.data_uri)
    processing_type = ParameterString("ProcessingInstanceType", default_value=settings.processing_instance_type)
    processing_count = ParameterInteger("ProcessingInstanceCount", default_value=settings.processing_instance_count)
    training_type = ParameterString("TrainingInstanceType", default_value=settings.training_instance_type)
    training_count = ParameterInteger("TrainingInstanceCount", default_value=settings.training_instance_count)
    threshold = ParameterFloat("MetricThreshold", default_value=settings.metric_threshold)
    # The commit CI built from (the runner fills it from CodeBuild's or GitHub's variables).
    source_commit = ParameterString("SourceCommit", default_value="unknown")
    # repo:tag offline; the runner pins both to repo@sha256:<digest> at upsert and start.
    training_image = ParameterString("TrainingImage", default_value=settings.training_image)
    inference_image = ParameterString("InferenceImage", default_value=settings.inference_image)
    # Steps are cached on their arguments: a rebuild (pipelines.reproduce) passes a new RebuildId, which
    # every job receives as an environment variable that no step reads, so nothing comes from the cache.
    rebuild_id = ParameterString("RebuildId", default_value="none")
    job_env: dict[str, Any] = {"MLOPS_REBUILD_ID": rebuild_id}

    # The SDK types these as lists of str-or-PipelineVariable; ours are plain strings.
    subnets: list[Any] = list(settings.subnets)
    security_groups: list[Any] = list(settings.security_group_ids)
    network = NetworkConfig(
        enable_network_isolation=True,
        encrypt_inter_container_traffic=True,
        subnets=subnets,
        security_group_ids=security_groups,
    )
    cache = CacheConfig(enable_caching=True, expire_after=settings.cache_expiry)
    service_retry = StepRetryPolicy(
        exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
        backoff_rate=2.0,
        interval_seconds=30,
        max_attempts=5,
    )
    retries = [
        service_retry,
        SageMakerJobStepRetryPolicy(
            exception_types=[
                SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
                SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
            ],
            backoff_rate=2.0,
            interval_seconds=60,
            max_attempts=3,
        ),
    ]

    def processor(step: str, *args: str) -> Processor:
        # One instance: these scripts do not split their work, so a second instance would repeat
        # it. ProcessingInstanceCount is for the Spark preprocess, which does.
        return Processor(
            image_uri=training_image,
            entrypoint=["python3", "-m", f"ml_code.{step}", *args],
            role=settings.role_arn,
            instance_type=processing_type,
            instance_count=1,
            volume_kms_key=settings.kms_key,
            output_kms_key=settings.kms_key,
            network_config=network,
            env=job_env,
            base_job_name=f"{settings.name}-{step}",
            sagemaker_session=session,
        )

    root = "/opt/ml/processing"
    preprocess_image: Any = training_image
    if settings.spark_preprocessing:
        # AWS's Spark image is recorded by its tag: AWS owns that repository, the runner cannot resolve its digest.
        preprocess, split_uri, preprocess_image = _spark_preprocess(
            settings, session, input_data, processing_type, processing_count, cache, retries, job_env
        )
    else:
        preprocess = ProcessingStep(
            name="Preprocess",
            step_args=processor(
                "preprocess",
                "--target",
                settings.target,
                "--problem-type",
                settings.problem_type,
            ).run(
                inputs=[ProcessingInput(source=input_data, destination=f"{root}/input/data")],
                outputs=[
                    ProcessingOutput(output_name=s, source=f"{root}/output/{s}")
                    for s in ("train", "validation", "test")
                ],
            ),
            cache_config=cache,
            retry_policies=retries,
        )

        def split_uri(name: str) -> Any:
            return preprocess.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    estimator = Estimator(
        image_uri=training_image,
        role=settings.role_arn,
        instance_type=training_type,
        instance_count=training_count,
        volume_kms_key=settings.kms_key,
        output_kms_key=settings.kms_key,
        subnets=subnets,
        security_group_ids=security_groups,
        enable_network_isolation=True,
        encrypt_inter_container_traffic=True,
        output_path=f"s3://{settings.artifacts_bucket}/{settings.name}/models",
        base_job_name=f"{settings.name}-train",
        environment=job_env,
        hyperparameters={
            "target": settings.target,
            "problem_type": settings.problem_type,
            "time_budget_seconds": str(settings.time_budget_seconds),
            "seed": str(settings.seed),
        },
        sagemaker_session=session,
    )
    train = TrainingStep(
        name="Train",
        step_args=estimator.fit(
            inputs={
                split: TrainingInput(s3_data=split_uri(split), content_type="text/csv")
                for split in ("train", "validation")
            }
        ),
        cache_config=cache,
        retry_policies=retries,
        depends_on=[preprocess.name],
    )
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        name="Evaluate",
        step_args=processor("evaluate").run(
            inputs=[
                ProcessingInput(source=model_data, destination=f"{root}/model"),
                ProcessingInput(source=split_uri("test"), destination=f"{root}/test"),
            ],
            outputs=[ProcessingOutput(output_name="evaluation", source=f"{root}/evaluation")],
        ),
        property_files=[report],
        cache_config=cache,
        retry_policies=retries,
    )
    baseline = ProcessingStep(
        name="DataQualityBaseline",
        step_args=processor("baseline").run(
            inputs=[
                ProcessingInput(source=split_uri("train"), destination=f"{root}/train"),
                # The baseline leads with the model's output, as Model Monitor lines captured data up.
                ProcessingInput(source=model_data, destination=f"{root}/model"),
            ],
            outputs=[ProcessingOutput(output_name="baseline", source=f"{root}/baseline")],
        ),
        cache_config=cache,
        retry_policies=retries,
    )

    def output_file(step: Any, output: str, name: str) -> Any:
        uri = step.properties.ProcessingOutputConfig.Outputs[output].S3Output.S3Uri
        return Join(on="/", values=[uri, name])

    metrics = ModelMetrics(
        model_statistics=MetricsSource(
            s3_uri=output_file(evaluate, "evaluation", "evaluation.json"), content_type="application/json"
        ),
        model_data_statistics=MetricsSource(
            s3_uri=output_file(baseline, "baseline", "statistics.json"), content_type="application/json"
        ),
        model_data_constraints=MetricsSource(
            s3_uri=output_file(baseline, "baseline", "constraints.json"), content_type="application/json"
        ),
    )
    parameters = [
        input_data,
        processing_type,
        processing_count,
        training_type,
        training_count,
        threshold,
        source_commit,
        training_image,
        inference_image,
        rebuild_id,
    ]
    by_name = {p.name: p for p in parameters}
    record: dict[str, Any] = {
        # Std:Join makes every value a string, integers and floats included.
        key: Join(on="", values=[by_name[name]])
        for key, name in RECORDED_PARAMETERS.items()
    }
    record.update(
        {
            key: JsonGet(step_name=evaluate.name, property_file=report, json_path=f"lineage.{field}")
            for key, field in RECORDED_FROM_EVALUATION.items()
        }
    )
    record.update(
        {
            "image_tag": settings.image_tag or "unknown",
            "preprocess_image": preprocess_image,
            "config_sha256": settings.config_sha256 or "unknown",
            "seed": str(settings.seed),
            "time_budget_seconds": str(settings.time_budget_seconds),
            "pipeline_execution_arn": ExecutionVariables.PIPELINE_EXECUTION_ARN,
            "rebuild_id": rebuild_id,
            # Read by the deploy's smoke test: the first CSV under test_data_uri, less the target column, and
            # how to judge the answers (a number for a regression, one of the split's labels otherwise).
            "target": settings.target,
            "test_data_uri": split_uri("test"),
            "problem_type": settings.problem_type,
        }
    )
    model = Model(
        image_uri=inference_image,
        model_data=model_data,
        role=settings.role_arn,
        vpc_config={"Subnets": subnets, "SecurityGroupIds": security_groups},
        enable_network_isolation=True,
        sagemaker_session=session,
    )
    register = ModelStep(
        name="RegisterModel",
        step_args=model.register(
            content_types=["text/csv", "application/json"],
            response_types=["text/csv", "application/json"],
            inference_instances=["ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge"],
            transform_instances=["ml.m5.xlarge"],
            model_package_group_name=settings.model_package_group,
            # Always for a person to approve: the pipeline's role may register nothing else (issue 8).
            approval_status="PendingManualApproval",
            model_metrics=metrics,
            description=f"{settings.name}: {settings.problem_type} model of {settings.target}",
            # What this version was built from, on the version itself: enough to rebuild it.
            customer_metadata_properties=record,
        ),
        retry_policies=[service_retry],  # registering starts no job: job retry policies do not apply
    )

    json_path, direction = METRIC_GATE[settings.problem_type]
    metric: Any = JsonGet(step_name=evaluate.name, property_file=report, json_path=json_path)
    passes = (ConditionLessThanOrEqualTo if direction == "<=" else ConditionGreaterThanOrEqualTo)(
        left=metric, right=threshold
    )
    fail = FailStep(
        name="QualityGateFailed",
        error_message=Join(
            on=" ",
            values=[
                "test",
                json_path,
                "=",
                metric,
                f"is not {direction} the threshold",
                threshold,
                "; the model was not registered",
            ],
        ),
    )
    gate = ConditionStep(
        name="QualityGate",
        conditions=[passes],
        if_steps=[register],
        else_steps=[fail],
        depends_on=[baseline.name],
    )
    return Pipeline(
        name=settings.name,
        parameters=parameters,
        steps=[preprocess, train, evaluate, baseline, gate],
        sagemaker_session=session,
        # Jobs are named after their base_job_name (<prefix>-model-build-<step>...), not SageMaker's
        # pipelines-<execution>-...: the role may touch only this environment's job names.
        pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=True),
    )


def _spark_preprocess(
    settings: PipelineSettings,
    session: Any,
    input_data: Any,
    instance_type: Any,
    instance_count: Any,
    cache: Any,
    retries: list[Any],
    job_env: dict[str, Any],
) -> tuple[Any, Any, str]:
    """The Spark variant of Preprocess: SageMaker's Spark container runs ml_code/spark/preprocess.py.

    Spark reads the input and writes the splits in S3 itself, so this job needs the network
    (to S3, through the VPC's gateway endpoint): it runs in the private subnets, without
    network isolation. Later steps read the splits from the prefix it writes.
    """
    from sagemaker.network import NetworkConfig
    from sagemaker.spark.processing import PySparkProcessor
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.steps import ProcessingStep

    if not settings.spark_code_uri.startswith("s3://"):
        raise ValueError("spark_preprocessing needs spark_code_uri, the S3 URI the runner uploads the script to")
    spark = PySparkProcessor(
        framework_version="3.5",
        role=settings.role_arn,
        instance_type=instance_type,
        instance_count=instance_count,
        volume_kms_key=settings.kms_key,
        output_kms_key=settings.kms_key,
        network_config=NetworkConfig(
            enable_network_isolation=False,
            encrypt_inter_container_traffic=True,
            subnets=list[Any](settings.subnets),
            security_group_ids=list[Any](settings.security_group_ids),
        ),
        base_job_name=f"{settings.name}-spark-preprocess",
        env=job_env,
        sagemaker_session=session,
    )
    output = Join(
        on="/",
        values=[
            "s3:/",
            settings.artifacts_bucket,
            settings.name,
            ExecutionVariables.PIPELINE_EXECUTION_ID,
            "Preprocess",
        ],
    )
    step = ProcessingStep(
        name="Preprocess",
        step_args=spark.run(
            submit_app=settings.spark_code_uri,
            arguments=[
                "--input",
                input_data,
                "--output",
                output,
                "--target",
                settings.target,
                "--problem-type",
                settings.problem_type,
            ],
        ),
        cache_config=cache,
        retry_policies=retries,
    )

    def split_uri(name: str) -> Any:
        return Join(on="/", values=[output, name])

    return step, split_uri, str(spark.image_uri)

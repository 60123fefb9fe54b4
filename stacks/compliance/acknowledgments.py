"""Every acknowledged compliance finding, cdk-nag's and checkov's, in one reviewable table.

An entry names exact findings on exact resources: each path (relative to its stack,
down to the CloudFormation resource the pack reports) is paired with each rule id,
and the pair is acknowledged with the entry's reason. Nothing is acknowledged by
rule prefix, by path pattern, or for a whole stack.

A path that does not exist in an environment (the dev-only auto-delete handler, the
endpoints an imported VPC may already have) is skipped there. A test checks that
every pair applies in at least one shipped configuration, so stale entries cannot
pile up, and the reasons are written into each template's metadata
(``cdk_nag.rules_to_suppress``) for auditors.

A finding may hold placeholders filled per environment, because IAM5 findings name the
exact wildcard resource: ``{partition}``, ``{region}``, ``{account}``, ``{prefix}`` (the name prefix),
``{models}`` (the model package group), ``{domain}`` (the Studio domain's id, as the
packs print it), ``{ci_artifacts}`` (the prefix CodePipeline keeps its artifacts
under), ``{endpoint}`` (the endpoint's name) and ``{source_partition}``, ``{source_prefix}``, ``{source_account}``,
``{source_region}``, ``{source_models}`` (the registry environment that deploys to this
one's endpoint). Each filled finding is still one exact resource.

Findings named ``checkov::CKV_...`` become resource-level skips in the template
metadata (``checkov.skip``), which checkov reads when it scans ``cdk.out``; checkov
is never told to skip a check globally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import aws_cdk as cdk
from constructs import IConstruct

from stacks.config import EnvironmentConfig

AWS_SOLUTIONS = "AwsSolutions::AwsSolutions"
NIST = "NIST.800.53.R5::NIST.800.53.R5"
HIPAA = "HIPAA.Security::HIPAA.Security"
CHECKOV = "checkov::"


@dataclass(frozen=True)
class Acknowledgment:
    """Accepted findings: every (path, finding) pair, for one reason.

    ``only_if`` limits the entry to environments whose config makes the finding exist (a
    statement present only with a feature on): elsewhere it would silence nothing, which the
    audit reports as stale.
    """

    stack: str
    paths: tuple[str, ...]
    findings: tuple[str, ...]
    reason: str
    only_if: Callable[[EnvironmentConfig], bool] | None = None


_PERSONA_POLICIES = ("Personas/DataScientistPolicy/Resource", "Personas/MlEngineerPolicy/Resource")
_SAGEMAKER_ARN = "arn:{partition}:sagemaker:{region}:{account}"
_IAM5 = f"{AWS_SOLUTIONS}-IAM5"

_EVENT_DLQ_ENCRYPTION = (
    "Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled); the check recognizes KMS keys only. "
    "EventBridge sends to its dead-letter queue as itself, which a KMS-encrypted queue allows only if the key "
    "policy admits events.amazonaws.com, and the data key admits no AWS service but CloudWatch Logs."
)

_CDK_PROVIDER_HANDLERS = (
    "Custom::S3AutoDeleteObjectsCustomResourceProvider/Handler",
    "Custom::VpcRestrictDefaultSGCustomResourceProvider/Handler",
)

ACKNOWLEDGMENTS: tuple[Acknowledgment, ...] = (
    # --- Studio -------------------------------------------------------------------------------
    Acknowledgment(
        stack="Studio",
        paths=(*_PERSONA_POLICIES, "Teardown/Policy/Resource"),
        findings=(f"{_IAM5}[Resource::*]",),
        reason=(
            "Only List*/Search calls, ecr:GetAuthorizationToken and ec2:DescribeNetworkInterfaces use Resource "
            "'*': IAM supports no resource-level permissions for them. Every other action is scoped to ARNs."
        ),
    ),
    Acknowledgment(
        stack="Studio",
        paths=(*_PERSONA_POLICIES, "Teardown/Policy/Resource"),
        findings=tuple(
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:{kind}/{{domain}}/*]" for kind in ("app", "space", "user-profile")
        ),
        reason=(
            "Apps, spaces and user profiles of this one domain, named by users at run time. Personas may only "
            "describe them, create, change or delete a space or its apps only when the space's owner "
            "(sagemaker:OwnerUserProfileArn) is their own profile, and run apps of shared spaces (no owner); "
            "the teardown deletes them all on stack deletion."
        ),
    ),
    Acknowledgment(
        stack="Studio",
        paths=_PERSONA_POLICIES,
        findings=(f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:app/{{domain}}/<sagemaker:UserProfileName>/*]",),
        reason=(
            "The apps of the caller's own user profile: the domain sets ExecutionRoleIdentityConfig, and the "
            "${sagemaker:UserProfileName} variable is the profile of the session; app names are chosen at run time."
        ),
    ),
    Acknowledgment(
        stack="Studio",
        paths=_PERSONA_POLICIES,
        findings=(
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:training-job/{{prefix}}-*]",
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:processing-job/{{prefix}}-*]",
        ),
        reason=(
            "Experiment jobs are named at run time, but must start with this environment's prefix, so no other "
            "environment's jobs match. Creating one requires, by IAM condition, this environment's subnets and "
            "Studio security group, network isolation, inter-container encryption and the data key."
        ),
    ),
    Acknowledgment(
        stack="Studio",
        paths=_PERSONA_POLICIES,
        findings=(
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:pipeline/{{prefix}}-*]",
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:model-package/{{models}}/*]",
        ),
        reason=(
            "Scoped to this environment's pipelines (name prefix) and to the versions of its one model package "
            "group; versions are numbered by SageMaker at registration."
        ),
    ),
    Acknowledgment(
        stack="Studio",
        paths=_PERSONA_POLICIES,
        findings=(
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-data-{{account}}-{{region}}/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-artifacts-{{account}}-{{region}}/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-artifacts-{{account}}-{{region}}/studio-sharing/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-artifacts-{{account}}-{{region}}/experiments/*]",
        ),
        reason=(
            "Read objects of this environment's data and artifacts buckets; write only under the people's "
            "prefixes (studio-sharing/, experiments/). What CI, the pipeline and the registry read is under "
            "other prefixes, which the bucket policy lets only CI roles write."
        ),
    ),
    Acknowledgment(
        stack="Studio",
        paths=_PERSONA_POLICIES,
        findings=(
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/TrainingJobs:"
            "log-stream:{prefix}-*]",
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/ProcessingJobs:"
            "log-stream:{prefix}-*]",
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/studio:"
            "log-stream:{domain}/*]",
        ),
        reason=(
            "SageMaker logs each job and app into a stream of an account-wide group, named after the job "
            "(this environment's prefix) or the app (this domain's id): events go only to those streams."
        ),
    ),
    Acknowledgment(
        stack="Studio",
        paths=("Teardown/Policy/Resource",),
        findings=(f"{_IAM5}[Resource::arn:{{partition}}:ec2:{{region}}:{{account}}:network-interface/*]",),
        reason=(
            "A Lambda in a VPC creates and deletes its own network interfaces, whose ids Lambda chooses; an "
            "ec2:Vpc condition limits them to this environment's VPC, and subnets and security group are named."
        ),
    ),
    Acknowledgment(
        stack="Studio",
        paths=("Teardown/Role/DefaultPolicy/Resource",),
        findings=(f"{NIST}-IAMNoInlinePolicy", f"{HIPAA}-IAMNoInlinePolicy"),
        reason=(
            "CDK writes the dead-letter queue's sqs:SendMessage, scoped to that one queue, into the function "
            "role's inline default policy; everything else the role may do is in its customer-managed policy."
        ),
    ),
    # --- Model build ----------------------------------------------------------------------------
    Acknowledgment(
        stack="ModelBuild",
        paths=("Execution/Policy/Resource", "Ci/ImagesProjectPolicy/Resource", "GitHubActions/Policy/Resource"),
        findings=(f"{_IAM5}[Resource::*]",),
        reason=(
            "Only ecr:GetAuthorizationToken, cloudwatch:PutMetricData (limited to SageMaker's namespaces by "
            "condition) and ec2:Describe* for VPC jobs use Resource '*': IAM has no resource-level permissions "
            "for them."
        ),
    ),
    Acknowledgment(
        stack="ModelBuild",
        paths=("Execution/Policy/Resource",),
        findings=(
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:processing-job/{{prefix}}-model-build-*]",
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:training-job/{{prefix}}-model-build-*]",
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/TrainingJobs:"
            "log-stream:{prefix}-model-build-*]",
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/ProcessingJobs:"
            "log-stream:{prefix}-model-build-*]",
        ),
        reason=(
            "The pipeline's jobs carry its name as prefix (use_custom_job_prefix with base_job_name "
            "<pipeline>-<step>), with a suffix SageMaker adds; their log streams are named after them. No other "
            "environment's pipeline has this name. Creation also requires this environment's subnets, the job "
            "security group and the data key, and network isolation for all but the Spark preprocess (which "
            "reads S3 itself, through the endpoint policy's perimeter) when spark_preprocessing is on."
        ),
    ),
    Acknowledgment(
        stack="ModelBuild",
        paths=("Execution/Policy/Resource",),
        findings=(f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:processing-job/{{prefix}}-model-build-spark-preprocess*]",),
        reason=(
            "With spark_preprocessing on, the Spark preprocess job (named <pipeline>-spark-preprocess plus the "
            "suffix SageMaker adds) may run without network isolation, because Spark reads and writes S3 itself, "
            "through the S3 endpoint's perimeter; it still needs this environment's subnets, job security group "
            "and data key."
        ),
        only_if=lambda config: config.model_build is not None and config.model_build.pipeline.spark_preprocessing,
    ),
    Acknowledgment(
        stack="ModelBuild",
        paths=("Execution/Policy/Resource",),
        findings=(
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:model-package/{{models}}/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-data-{{account}}-{{region}}/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-artifacts-{{account}}-{{region}}/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-artifacts-{{account}}-{{region}}/{{prefix}}-model-build/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:ec2:{{region}}:{{account}}:network-interface/*]",
        ),
        reason=(
            "Model versions are numbered at registration in this environment's one group; the jobs read this "
            "environment's data and artifacts buckets and write only under the pipeline's own prefix; VPC jobs "
            "create network interfaces whose ids EC2 chooses, limited to this environment's VPC by an ec2:Vpc "
            "condition (subnets and security group are named exactly)."
        ),
    ),
    Acknowledgment(
        stack="ModelBuild",
        paths=("Execution/Policy/Resource",),
        findings=(
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:transform-job/{{prefix}}-batch-*]",
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/TransformJobs:"
            "log-stream:{prefix}-batch-*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-artifacts-{{account}}-{{region}}/{{prefix}}-batch/*]",
        ),
        reason=(
            "The batch pipeline's transform jobs are named <prefix>-batch-transform plus the suffix SageMaker "
            "adds (use_custom_job_prefix), their log streams after them; creation requires the data key on the "
            "volume and the output. They write output and captured data only under the batch pipeline's prefix "
            "of this environment's artifacts bucket. Their network settings come from the model, which "
            "pipelines.batch creates in the private subnets with network isolation."
        ),
    ),
    Acknowledgment(
        stack="ModelBuild",
        paths=("Ci/TrainProjectPolicy/Resource", "GitHubActions/Policy/Resource"),
        findings=(
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:pipeline/{{prefix}}-model-build/execution/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:ssm:{{region}}:{{account}}:parameter/{{prefix}}/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-artifacts-{{account}}-{{region}}/{{prefix}}-model-build/code/*]",
        ),
        reason=(
            "The CI runner follows the executions it starts of its one pipeline (ids chosen by SageMaker), "
            "reads this environment's discovery parameters (the ids the definition refers to), and uploads "
            "the Spark step's script under its pipeline's code prefix, one folder per content hash."
        ),
    ),
    Acknowledgment(
        stack="ModelBuild",
        paths=tuple(
            f"Ci/{name}Policy/Resource" for name in ("Pipeline", "TestsProject", "ImagesProject", "TrainProject")
        ),
        findings=(
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-artifacts-{{account}}-{{region}}/{{ci_artifacts}}/*]",
        ),
        reason=(
            "CodePipeline names each run's artifact objects itself; access is confined to this pipeline's "
            "prefix of the artifacts bucket, which only CI roles may write (bucket policy)."
        ),
    ),
    Acknowledgment(
        stack="ModelBuild",
        paths=("Ci/Tests/Resource", "Ci/Images/Resource", "Ci/Train/Resource"),
        findings=(f"{HIPAA}-CodeBuildProjectSourceRepoUrl",),
        reason=(
            "These projects' source type is CODEPIPELINE: they have no repository URL at all, so none can carry "
            "credentials; the source arrives as the pipeline's encrypted artifact."
        ),
    ),
    # --- Deploy -------------------------------------------------------------------------------
    Acknowledgment(
        stack="Deploy",
        paths=("FunctionsPolicy/Resource",),
        findings=(f"{_IAM5}[Resource::*]",),
        reason="Only sagemaker:ListModelPackages uses Resource '*': IAM has no resource-level permission for it.",
    ),
    Acknowledgment(
        stack="Deploy",
        paths=("ApproverPolicy/Resource",),
        findings=(f"{_IAM5}[Resource::*]",),
        reason=(
            "Only states:SendTaskSuccess/SendTaskFailure use Resource '*': they take a task token, not a resource. "
            "Who may decide is whoever may read the token, which lives only in this deploy's approvals table "
            "(encrypted with the data key); this policy is for the people who approve."
        ),
    ),
    Acknowledgment(
        stack="Deploy",
        paths=("FunctionsPolicy/Resource",),
        findings=(
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:model-package/{{models}}/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-artifacts-{{account}}-{{region}}/{{prefix}}-model-build/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:states:{{region}}:{{account}}:execution:{{prefix}}-deploy:*]",
        ),
        reason=(
            "Versions of this environment's one registry (numbered at registration); its test splits under the "
            "model build's prefix (read only, for the smoke test); executions of this deploy's one state machine "
            "(named by the trigger, to stop a deploy of a version people rejected)."
        ),
    ),
    Acknowledgment(
        stack="Deploy",
        paths=("StateMachineRole/DefaultPolicy/Resource",),
        findings=(f"{_IAM5}[Resource::*]", f"{_IAM5}[Resource::{{deploy_tasks}}:*]"),
        reason=(
            "CDK's grants for the state machine: X-Ray's PutTraceSegments/PutTelemetryRecords and CloudWatch Logs' "
            "log-delivery calls take no resource (Step Functions' documented logging policy); ':*' are the "
            "versions of the deploy's own tasks function."
        ),
    ),
    Acknowledgment(
        stack="Deploy",
        paths=("StateMachineRole/DefaultPolicy/Resource", "FunctionsRole/DefaultPolicy/Resource"),
        findings=(f"{NIST}-IAMNoInlinePolicy", f"{HIPAA}-IAMNoInlinePolicy"),
        reason=(
            "CDK writes these grants into the role's inline default policy: the state machine's invocation of its "
            "tasks function, its logs and traces; the trigger's dead-letter queue (sqs:SendMessage to that one "
            "queue). Everything else the functions may do is in their customer-managed policy."
        ),
    ),
    Acknowledgment(
        stack="Deploy",
        paths=("Trigger/Function/Resource", "Tasks/Function/Resource"),
        findings=(f"{NIST}-LambdaInsideVPC", f"{HIPAA}-LambdaInsideVPC", f"{CHECKOV}CKV_AWS_117"),
        reason=(
            "The deploy's functions call only AWS APIs (STS, CloudFormation, SageMaker and its runtime in the "
            "stages' accounts, Step Functions, DynamoDB, SNS, S3), several of which have no endpoint in these "
            "subnets, which have no route out. They reach no resource inside a VPC; outside it they use AWS's "
            "public endpoints over TLS, with IAM."
        ),
    ),
    Acknowledgment(
        stack="Deploy",
        paths=("Tasks/Function/Resource",),
        findings=(f"{NIST}-LambdaDLQ", f"{HIPAA}-LambdaDLQ", f"{CHECKOV}CKV_AWS_116"),
        reason=(
            "The state machine invokes this function synchronously and handles its failures (retry, catch, notify); "
            "a dead-letter queue applies only to asynchronous invocations and would never receive anything."
        ),
    ),
    Acknowledgment(
        stack="Deploy",
        paths=("Approvals/Resource",),
        findings=(f"{NIST}-DynamoDBInBackupPlan", f"{HIPAA}-DynamoDBInBackupPlan"),
        reason=(
            "Point-in-time recovery is on (35 days). The table holds approvals in flight (task tokens that expire "
            "with their execution) and the decisions, which each execution's history also records."
        ),
    ),
    # --- Endpoint -----------------------------------------------------------------------------
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/ModelPolicy/Resource", "Access/DeployerPolicy/Resource"),
        findings=(f"{_IAM5}[Resource::*]",),
        reason=(
            "Only ecr:GetAuthorizationToken, the ec2:Describe* calls a VPC endpoint makes for its network "
            "interfaces, and sagemaker:ListEndpointConfigs/ListModels (the deploy's clean-up finds retained "
            "versions by name) use Resource '*': IAM has no resource-level permissions for them."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/CloudFormationPolicy/Resource",),
        findings=(f"{_IAM5}[Resource::*]",),
        reason=(
            "Only application-autoscaling:DescribeScalableTargets/DescribeScalingPolicies use Resource '*': "
            "Application Auto Scaling's Describe calls take no resource."
        ),
        only_if=lambda config: _autoscaled(config),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/CloudFormationPolicy/Resource", "Access/DeployerPolicy/Resource"),
        findings=(
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:model/{{prefix}}-v*]",
            f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:endpoint-config/{{prefix}}-v*]",
        ),
        reason=(
            "Each deploy creates the served version's model and endpoint config under a new name, "
            "<prefix>-v<version>-<deploy id> (both are immutable); no other environment's names start with this "
            "prefix. Creating a model also requires, by IAM condition, this environment's subnets and endpoint "
            "security group and network isolation (instance endpoints)."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/CloudFormationPolicy/Resource",),
        findings=(
            f"{_IAM5}[Resource::arn:{{source_partition}}:sagemaker:{{source_region}}:{{source_account}}:model-package/{{source_models}}/*]",
        ),
        reason=(
            "Creating a model from a package reads the version: versions of the one registry that deploys to "
            "this endpoint, numbered by SageMaker at registration."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/DeployerPolicy/Resource",),
        findings=(
            f"{_IAM5}[Resource::arn:{{partition}}:cloudformation:{{region}}:{{account}}:stack/{{prefix}}-endpoint/*]",
        ),
        reason=(
            "This one stack, by name: CloudFormation appends a generated id to a stack's ARN. The deployer may "
            "update it only passing the endpoint's CloudFormation role, whose permissions are scoped as above."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/ModelPolicy/Resource",),
        findings=(
            f"{_IAM5}[Resource::arn:{{source_partition}}:s3:::{{source_prefix}}-artifacts-{{source_account}}-{{source_region}}/"
            "{source_prefix}-model-build/*]",
            f"{_IAM5}[Resource::arn:{{source_partition}}:kms:{{source_region}}:{{source_account}}:key/*]",
        ),
        reason=(
            "The served version's artifact is an object under the source registry's model-build prefix, named by "
            "its pipeline execution. The source's data key has a random id in another stack (or account): the "
            "statement names it by its alias through a kms:ResourceAliases condition, so no other key matches."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/ModelPolicy/Resource",),
        findings=(
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/Endpoints/"
            "{endpoint}:log-stream:*]",
        ),
        reason="The streams of the endpoint's own log group, which SageMaker names after its instances.",
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/ModelPolicy/Resource",),
        findings=(f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-monitoring-{{account}}-{{region}}/capture/*]",),
        reason=(
            "Data capture objects, which SageMaker names <endpoint>/<variant>/yyyy/mm/dd/hh/<file>, under the "
            "capture prefix of this environment's monitoring bucket (which requires the data key)."
        ),
        only_if=lambda config: config.endpoint is not None and config.endpoint.data_capture.enabled,
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/ModelPolicy/Resource",),
        findings=(f"{_IAM5}[Resource::arn:{{partition}}:ec2:{{region}}:{{account}}:network-interface/*]",),
        reason=(
            "SageMaker creates the endpoint's network interfaces, with ids EC2 chooses; an ec2:Vpc condition "
            "limits them to this environment's VPC, and subnets and security group are named."
        ),
        only_if=lambda config: config.endpoint is not None and config.endpoint.kind == "instance",
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Access/CloudFormationPolicy/Resource",),
        findings=(
            f"{_IAM5}[Resource::arn:{{partition}}:application-autoscaling:{{region}}:{{account}}:scalable-target/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:cloudwatch:{{region}}:{{account}}:alarm:TargetTracking-endpoint/"
            "{endpoint}/*]",
        ),
        reason=(
            "Application Auto Scaling gives scalable targets generated ids: conditions limit the actions to "
            "SageMaker variants' desired instance count. Target tracking names its alarms "
            "TargetTracking-endpoint/<endpoint>/...: only this endpoint's."
        ),
        only_if=lambda config: _autoscaled(config),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Hosting/EndpointConfig",),
        findings=(
            f"{NIST}-SageMakerEndpointConfigurationKMSKeyConfigured",
            f"{HIPAA}-SageMakerEndpointConfigurationKMSKeyConfigured",
        ),
        reason=(
            "A serverless endpoint config takes no KmsKeyId: serverless endpoints have no ML storage volume to "
            "encrypt (SageMaker's serverless exclusions: no volume key, VPC, data capture or Model Monitor). Config "
            "refuses data capture and monitoring on serverless endpoints; instance endpoints carry the data key."
        ),
        only_if=lambda config: config.endpoint is not None and config.endpoint.kind == "serverless",
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Hosting/Model",),
        findings=(f"{CHECKOV}CKV_AWS_370",),
        reason=(
            "A serverless endpoint's model cannot use network isolation or a VPC (SageMaker's serverless "
            "exclusions); instance endpoints' models are isolated, in the private subnets."
        ),
        only_if=lambda config: config.endpoint is not None and config.endpoint.kind == "serverless",
    ),
    # --- Monitoring (Endpoint stack) and retraining (Retrain stack) ----------------------------
    Acknowledgment(
        stack="Endpoint",
        paths=(
            "Monitoring/Baseline/Function/Python/Function/Resource",
            "Monitoring/Platform/Launcher/Python/Function/Resource",
            "Monitoring/Results/Function/Python/Function/Resource",
        ),
        findings=(f"{NIST}-LambdaInsideVPC", f"{HIPAA}-LambdaInsideVPC", f"{CHECKOV}CKV_AWS_117"),
        reason=(
            "These functions call AWS APIs only (S3, SageMaker, CloudWatch), with signed requests, and reach "
            "nothing inside the VPC; AWS's Lambda documentation advises against attaching a function to a VPC it "
            "does not need. The baseline function must also read the source environment's artifacts bucket, "
            "which the private subnets' S3 endpoint (this environment's buckets only) would refuse. The data "
            "itself is processed by the monitoring jobs, which run in the private subnets with network isolation."
        ),
    ),
    Acknowledgment(
        stack="Retrain",
        paths=("ModelRetrain/Function/Python/Function/Resource",),
        findings=(f"{NIST}-LambdaInsideVPC", f"{HIPAA}-LambdaInsideVPC", f"{CHECKOV}CKV_AWS_117"),
        reason=(
            "The retrain function calls SageMaker, DynamoDB, SNS and S3 only, with signed requests, and reaches "
            "nothing inside the VPC; the private subnets have no route out and no DynamoDB or SNS endpoint, and "
            "AWS's Lambda documentation advises against attaching a function to a VPC it does not need."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=(
            "Monitoring/Baseline/Function/Policy/Resource",
            "Monitoring/Platform/Launcher/Policy/Resource",
            "Monitoring/Results/Function/Policy/Resource",
            "Monitoring/JobRole/Policy/Resource",
        ),
        findings=(f"{_IAM5}[Resource::*]",),
        reason=(
            "Only xray:PutTraceSegments and xray:PutTelemetryRecords (the functions' traces), "
            "cloudwatch:PutMetricData (limited by condition to the platform's monitoring namespace, or to Model "
            "Monitor's two), ecr:GetAuthorizationToken and the jobs' ec2:Describe* calls use Resource '*': IAM "
            "has no resource-level permissions for them."
        ),
    ),
    Acknowledgment(
        stack="Retrain",
        paths=("ModelRetrain/Function/Policy/Resource",),
        findings=(f"{_IAM5}[Resource::*]",),
        reason=(
            "Only xray:PutTraceSegments and xray:PutTelemetryRecords (the function's traces) use Resource '*': "
            "X-Ray has no resource-level permissions for them. Everything else names its pipeline, table and topic."
        ),
    ),
    Acknowledgment(
        stack="Retrain",
        paths=("ModelRetrain/Function/Policy/Resource",),
        findings=(f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:pipeline/{{prefix}}-model-build/execution/*]",),
        reason=(
            "sagemaker:DescribePipelineExecution on the executions of this environment's build pipeline only "
            "(ids chosen by SageMaker at start): the function reads why a retrain it started failed."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Monitoring/Baseline/Function/Policy/Resource",),
        findings=(
            f"{_IAM5}[Resource::arn:{{source_partition}}:sagemaker:{{source_region}}:{{source_account}}:model-package/{{source_models}}/*]",
            f"{_IAM5}[Resource::arn:{{source_partition}}:s3:::{{source_prefix}}-artifacts-{{source_account}}-{{source_region}}/"
            "{source_prefix}-model-build/*]",
            f"{_IAM5}[Resource::arn:{{source_partition}}:kms:{{source_region}}:{{source_account}}:key/*]",
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-monitoring-{{account}}-{{region}}/baselines/{{prefix}}-endpoint/*]",
        ),
        reason=(
            "At each deploy it reads the served version of the registry that deploys here (the source "
            "environment's model package group, versions numbered by SageMaker), that version's files under the "
            "source's model-build prefix, and decrypts them with the source's data key, named by its alias "
            "(kms:ResourceAliases: its id is random and in another stack or account); it writes only under this "
            "endpoint's baselines/ folder of its own monitoring bucket, one folder per deploy."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Monitoring/JobRole/Policy/Resource",),
        findings=(
            *(
                f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-monitoring-{{account}}-{{region}}/{folder}/{{prefix}}-endpoint/*]"
                for folder in ("capture", "ground-truth", "baselines", "reports")
            ),
            f"{_IAM5}[Resource::arn:{{partition}}:ec2:{{region}}:{{account}}:network-interface/*]",
        ),
        reason=(
            "The monitoring jobs read this endpoint's captured data, ground truth and copied baselines, and write "
            "its reports, each under the endpoint's own folder of this environment's monitoring bucket (objects "
            "named by SageMaker's capture, by the labeller and by the runs' hours); their network interfaces, "
            "whose ids EC2 chooses, are limited to this environment's VPC by an ec2:Vpc condition."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Monitoring/JobRole/Policy/Resource",),
        findings=(
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/ProcessingJobs:"
            "log-stream:{prefix}-monitor-*]",
        ),
        reason=(
            "The platform engine's jobs are named <prefix>-monitor-<check>-<hour> by the launcher; their log "
            "streams are named after them in SageMaker's account-wide group. No other environment's jobs match."
        ),
        only_if=lambda config: config.monitoring is not None and config.monitoring.engine.value == "platform",
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Monitoring/JobRole/Policy/Resource",),
        findings=(
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/ProcessingJobs:"
            "log-stream:model-monitoring-*]",
            f"{_IAM5}[Resource::arn:{{partition}}:logs:{{region}}:{{account}}:log-group:/aws/sagemaker/ProcessingJobs:"
            "log-stream:groundtruth-merge-*]",
        ),
        reason=(
            "Model Monitor names its executions itself (model-monitoring-<time>-<hash>, and groundtruth-merge-... "
            "for model quality's merge): a schedule cannot give them this environment's prefix, so their log "
            "streams can only be named by these prefixes. The role writes log events only; it reads no logs."
        ),
        only_if=lambda config: config.monitoring is not None and config.monitoring.engine.value == "model_monitor",
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Monitoring/Platform/Launcher/Policy/Resource",),
        findings=(f"{_IAM5}[Resource::{_SAGEMAKER_ARN}:processing-job/{{prefix}}-monitor-*]",),
        reason=(
            "The launcher names each job <prefix>-monitor-<check>-<hour> at run time; creation also requires, by "
            "IAM condition, this environment's subnets and the endpoint's security group, network isolation, "
            "encryption between instances and the data key on volume and output."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Monitoring/Results/Function/Policy/Resource",),
        findings=(
            f"{_IAM5}[Resource::arn:{{partition}}:s3:::{{prefix}}-monitoring-{{account}}-{{region}}/reports/{{prefix}}-endpoint/*]",
        ),
        reason=(
            "It reads the reports of this endpoint's runs, filed by schedule and hour under the endpoint's own "
            "reports/ folder of this environment's monitoring bucket; it writes nothing there."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Monitoring/Results/Undelivered/Resource", "Monitoring/ForwardToSource/Undelivered/Resource"),
        findings=(f"{AWS_SOLUTIONS}-SQS3",),
        reason=(
            "This queue is itself a dead-letter queue: EventBridge's, for events it could not deliver to the "
            "rule's target (the pack recognizes only queues named in another queue's redrive policy)."
        ),
    ),
    Acknowledgment(
        stack="Endpoint",
        paths=("Monitoring/Results/Undelivered/Resource", "Monitoring/ForwardToSource/Undelivered/Resource"),
        findings=(f"{CHECKOV}CKV_AWS_27",),
        reason=_EVENT_DLQ_ENCRYPTION,
    ),
    Acknowledgment(
        stack="Retrain",
        paths=("ModelRetrain/Undelivered/Resource",),
        findings=(f"{AWS_SOLUTIONS}-SQS3",),
        reason=(
            "This queue is itself a dead-letter queue: EventBridge's, for events it could not deliver to the "
            "retrain function (the pack recognizes only queues named in another queue's redrive policy)."
        ),
    ),
    Acknowledgment(
        stack="Retrain",
        paths=("ModelRetrain/Undelivered/Resource",),
        findings=(f"{CHECKOV}CKV_AWS_27",),
        reason=_EVENT_DLQ_ENCRYPTION,
    ),
    Acknowledgment(
        stack="Retrain",
        paths=("ModelRetrain/Table/Resource",),
        findings=(f"{NIST}-DynamoDBInBackupPlan", f"{HIPAA}-DynamoDBInBackupPlan"),
        reason=(
            "The table holds only cooldowns and idempotency records, each expiring (TTL) within the cooldown or a "
            "day; point-in-time recovery is on. Losing it costs at most one extra retrain, which the pipeline's "
            "own approval gate still stops before any deployment."
        ),
    ),
    # --- Foundation ---------------------------------------------------------------------------
    Acknowledgment(
        stack="Foundation",
        paths=_CDK_PROVIDER_HANDLERS,
        findings=(f"{CHECKOV}CKV_AWS_115", f"{CHECKOV}CKV_AWS_116", f"{CHECKOV}CKV_AWS_117"),
        reason=(
            "CDK's own custom-resource handler (empties buckets on dev teardown / strips the default security "
            "group's rules). CloudFormation invokes it asynchronously, a few times per deployment, and waits "
            "for its response: a failure surfaces as a failed stack operation, so a DLQ has nothing to keep and "
            "a concurrency reservation nothing to protect. It calls the S3 and EC2 APIs; in these subnets EC2 "
            "has no endpoint, so it runs outside the VPC, with a role that reaches only this stack's buckets "
            "or default security group."
        ),
    ),
    Acknowledgment(
        stack="Foundation",
        paths=("Repositories/Training/Resource", "Repositories/Inference/Resource"),
        findings=(f"{CHECKOV}CKV_AWS_32",),
        reason=(
            "The repository policy's only statement with Principal '*' is a Deny: it refuses pushes by anyone "
            "but the CI roles. It grants nothing to anyone; the check flags a '*' principal whatever its Effect."
        ),
    ),
    Acknowledgment(
        stack="Foundation",
        paths=("Buckets/AccessLogs/Resource",),
        findings=(f"{CHECKOV}CKV_AWS_18",),
        reason="This is the server-access-log bucket; logging its own access would loop into itself.",
    ),
    Acknowledgment(
        stack="Foundation",
        paths=("Buckets/Artifacts/Resource", "Buckets/Monitoring/Resource", "Buckets/AccessLogs/Resource"),
        findings=(f"{NIST}-S3BucketReplicationEnabled", f"{HIPAA}-S3BucketReplicationEnabled"),
        reason=(
            "Derived data: artifacts and models are rebuilt by re-running the pipeline from the data bucket "
            "and the commit recorded in the registry; monitoring reports and access logs are regenerated or "
            "expire. Cross-region replication is each adopter's disaster-recovery decision for its regions."
        ),
    ),
    Acknowledgment(
        stack="Foundation",
        paths=("Buckets/Data/Resource",),
        findings=(f"{NIST}-S3BucketReplicationEnabled", f"{HIPAA}-S3BucketReplicationEnabled"),
        reason=(
            "This bucket is the source data and nothing re-creates it. Its recovery is versioning: every "
            "overwritten or deleted object stays recoverable for retention.noncurrent_version_expiration_days "
            "(90 by default), and the bucket is retained outside dev. A regional loss is not covered: an "
            "adopter who needs that adds replication or AWS Backup for this bucket in its own regions."
        ),
    ),
    Acknowledgment(
        stack="Foundation",
        paths=("Buckets/AccessLogs/Resource",),
        findings=(f"{NIST}-S3DefaultEncryptionKMS", f"{HIPAA}-S3DefaultEncryptionKMS"),
        reason=(
            "S3 server access logging delivers only to buckets encrypted with SSE-S3 (AES256); "
            "this bucket is the access-log target, so SSE-KMS is not possible."
        ),
    ),
)


def _autoscaled(config: EnvironmentConfig) -> bool:
    endpoint = config.endpoint
    return endpoint is not None and endpoint.kind == "instance" and endpoint.autoscaling.enabled


def apply_acknowledgments(stage: cdk.Stage, placeholders: dict[str, str]) -> set[tuple[int, str, str]]:
    """Acknowledge each (path, finding) pair on the construct it names, where it exists.

    Args:
        placeholders: values for the ``{...}`` names findings may hold (see the module docstring).

    Returns:
        The (entry index, path, finding) triples that matched a construct in this stage,
        findings as written in the table (before placeholders are filled).
    """
    used: set[tuple[int, str, str]] = set()
    checkov_skips: dict[str, tuple[cdk.CfnResource, list[dict[str, str]]]] = {}
    config: EnvironmentConfig | None = getattr(stage, "config", None)
    for index, ack in enumerate(ACKNOWLEDGMENTS):
        stack = stage.node.try_find_child(ack.stack)
        if stack is None or (ack.only_if is not None and (config is None or not ack.only_if(config))):
            continue
        for path in ack.paths:
            target = _find(stack, path)
            if target is None:
                continue
            for finding in ack.findings:
                if finding.startswith(CHECKOV):
                    if not isinstance(target, cdk.CfnResource):
                        raise TypeError(f"{ack.stack}/{path}: checkov skips go on a CloudFormation resource")
                    entry = checkov_skips.setdefault(target.node.path, (target, []))
                    entry[1].append({"id": finding.removeprefix(CHECKOV), "comment": ack.reason})
                else:
                    exact = finding.format(**placeholders)
                    cdk.Validations.of(target).acknowledge(cdk.Acknowledgment(id=exact, reason=ack.reason))
                used.add((index, path, finding))
    for resource, skips in checkov_skips.values():
        resource.add_metadata("checkov", {"skip": skips})
    return used


def all_pairs() -> set[tuple[int, str, str]]:
    """Every (entry index, path, finding) triple the table declares."""
    return {
        (index, path, finding)
        for index, ack in enumerate(ACKNOWLEDGMENTS)
        for path in ack.paths
        for finding in ack.findings
    }


def _find(root: IConstruct, path: str) -> IConstruct | None:
    """The construct at ``path`` below ``root``, or None where this environment has none."""
    node: IConstruct | None = root
    for part in path.split("/"):
        node = node.node.try_find_child(part) if node is not None else None
    return node


@dataclass(frozen=True)
class DockerfileAcknowledgment:
    """An accepted checkov finding on a Dockerfile.

    checkov reads Dockerfile skips only from ``# checkov:skip=<check>:<reason>`` comments in the
    file itself, so the comment is the mechanism and this table the record: a test checks that
    each Dockerfile carries exactly the skips listed here, with these reasons.
    """

    dockerfile: str
    check: str
    reason: str


_ROOT_IN_SAGEMAKER = (
    "SageMaker runs training, processing and hosting containers as root and mounts its own volumes over "
    "/opt/ml (AWS's custom-container contract); a non-root user cannot write /opt/ml/processing/output "
    "or /opt/ml/model there, so the image keeps root"
)

DOCKERFILE_ACKNOWLEDGMENTS: tuple[DockerfileAcknowledgment, ...] = (
    DockerfileAcknowledgment("ml_code/containers/training/Dockerfile", "CKV_DOCKER_3", _ROOT_IN_SAGEMAKER),
    DockerfileAcknowledgment("ml_code/containers/inference/Dockerfile", "CKV_DOCKER_3", _ROOT_IN_SAGEMAKER),
)

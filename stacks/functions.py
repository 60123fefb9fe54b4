"""The platform's Python Lambda functions, built one way: a package of lambdas/, Powertools, an encrypted
and expiring log group of its own, an encrypted environment, bounded concurrency, and (for functions
invoked asynchronously) a dead-letter queue that no other queue may redrive into.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.platform_stack import encrypted_log_group

LAMBDAS = Path(__file__).resolve().parents[1] / "lambdas"
RUNTIME = lambda_.Runtime.PYTHON_3_14


def powertools_layer(scope: Construct, id_: str, config: EnvironmentConfig) -> lambda_.ILayerVersion:
    """Powertools for AWS Lambda (it brings pydantic), resolved by CloudFormation at deploy from its public
    SSM parameter: no lookup at synth."""
    return lambda_.LayerVersion.from_layer_version_arn(
        scope,
        id_,
        ssm.StringParameter.value_for_string_parameter(
            scope, f"/aws/service/powertools/python/x86_64/{RUNTIME.name}/{config.powertools_version}"
        ),
    )


class PythonFunction(Construct):
    """One function of ``lambdas/<package>``.

    Attributes:
        function: the function.
        log_group: its log group (logs key, config's retention).
        dead_letters: its dead-letter queue, when it is invoked asynchronously.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        package: str,
        handler: str,
        function_name: str,
        description: str,
        role: iam.IRole,
        layer: lambda_.ILayerVersion,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        environment: dict[str, str],
        timeout: cdk.Duration,
        reserved_concurrency: int,
        asynchronous: bool,
        memory_mb: int = 256,
        tracing: lambda_.Tracing | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.log_group = encrypted_log_group(self, "Logs", config=config, key=logs_key)
        self.dead_letters: sqs.IQueue | None = None
        if asynchronous:
            self.dead_letters = sqs.Queue(
                self,
                "DeadLetters",
                encryption=sqs.QueueEncryption.KMS,
                encryption_master_key=data_key,
                enforce_ssl=True,
                retention_period=cdk.Duration.days(14),
                redrive_allow_policy=sqs.RedriveAllowPolicy(redrive_permission=sqs.RedrivePermission.DENY_ALL),
            )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=f"{package}.handler.{handler}",
            code=lambda_.Code.from_asset(str(LAMBDAS), exclude=["*", f"!{package}", f"!{package}/*.py"]),
            layers=[layer],
            role=role,
            timeout=timeout,
            memory_size=memory_mb,
            reserved_concurrent_executions=reserved_concurrency,
            dead_letter_queue=self.dead_letters,
            environment={"POWERTOOLS_LOG_LEVEL": "INFO", **environment},
            environment_encryption=data_key,
            log_group=self.log_group,
            description=description,
            tracing=tracing,
        )


class OwnRoleFunction(Construct):
    """A ``PythonFunction`` with a role of its own, all of whose permissions are one customer-managed policy.

    Invoked asynchronously (EventBridge, Scheduler, CloudFormation): it has a dead-letter queue, and traces
    (Powertools' Tracer, X-Ray). CDK would write the queue's and X-Ray's grants into an inline policy of
    the role; the function gets an immutable view of its role instead, and those grants are in the
    managed policy, which the function waits for (Lambda checks the queue permission at creation).

    Attributes:
        function: the function.
        role: its execution role (trusted by Lambda only).
        policy: its customer-managed policy; ``add_statements`` grants the function's own permissions.
        dead_letters: its dead-letter queue.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        package: str,
        function_name: str,
        description: str,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        environment: dict[str, str],
        timeout: cdk.Duration | None = None,
        memory_mb: int = 256,
        reserved_concurrency: int = 2,
    ) -> None:
        super().__init__(scope, id_)
        self.role = iam.Role(
            self,
            "Role",
            # Named like the function: cross-account grants admit this environment's roles by name prefix.
            role_name=function_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
        )
        built = PythonFunction(
            self,
            "Python",
            config=config,
            package=package,
            handler="lambda_handler",
            function_name=function_name,
            description=description,
            role=iam.Role.from_role_arn(self, "ExecutionRole", self.role.role_arn, mutable=False),
            layer=powertools_layer(self, "Powertools", config),
            data_key=data_key,
            logs_key=logs_key,
            environment={"POWERTOOLS_SERVICE_NAME": package.replace("_", "-"), **environment},
            timeout=timeout or cdk.Duration.minutes(1),
            reserved_concurrency=reserved_concurrency,
            asynchronous=True,
            memory_mb=memory_mb,
            tracing=lambda_.Tracing.ACTIVE,
        )
        self.function = built.function
        assert built.dead_letters is not None
        self.dead_letters = built.dead_letters
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"{function_name}: {description}",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="OwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[built.log_group.log_group_arn],
                ),
                iam.PolicyStatement(
                    sid="EncryptedEnvironmentAndQueue",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[data_key.key_arn],
                ),
                iam.PolicyStatement(
                    sid="OwnDeadLetters", actions=["sqs:SendMessage"], resources=[self.dead_letters.queue_arn]
                ),
                iam.PolicyStatement(
                    sid="Traces",
                    actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                    resources=["*"],
                ),
            ],
        )
        # Lambda checks at creation that the role may send to the dead-letter queue.
        self.function.node.add_dependency(self.policy)

    def add_statements(self, *statements: iam.PolicyStatement) -> None:
        """Grant the function these permissions, in its customer-managed policy."""
        self.policy.add_statements(*statements)


def event_dead_letters(scope: Construct, id_: str) -> sqs.Queue:
    """A dead-letter queue for events EventBridge could not deliver to a target.

    Encrypted with SQS-managed keys: EventBridge sends to it as itself, and the data key's policy
    admits no AWS service but CloudWatch Logs (stacks/foundation/keys.py).
    """
    return sqs.Queue(
        scope,
        id_,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=cdk.Duration.days(14),
        redrive_allow_policy=sqs.RedriveAllowPolicy(redrive_permission=sqs.RedrivePermission.DENY_ALL),
    )

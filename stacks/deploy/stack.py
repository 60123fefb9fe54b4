"""DeployStack: in the environment whose registry deploys (a ``deploy`` section), what moves approved versions.

- an EventBridge rule on "SageMaker Model Package State Change" for this registry (Approved, Rejected)
  starts the trigger function, which plans the deploy and starts the state machine (``workflow.py``);
- the state machine's steps run in the tasks function; both functions act as one role, the one the
  stages' deployer roles trust (``stacks/endpoint/access.py``);
- approvals wait in a KMS-encrypted table (the task token, the version, who decided), announced on a
  KMS-encrypted topic that also reports every deploy's start and outcome;
- ``<prefix>-deploy-approver``, a managed policy for the people who approve (the ML engineer persona
  has it), lets them decide through ``python -m pipelines.approve``.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.config import EnvironmentConfig, Promotion
from stacks.deploy.workflow import DeployWorkflow
from stacks.foundation.discovery import DiscoveryParameters
from stacks.foundation.stack import FoundationStack
from stacks.functions import PythonFunction, powertools_layer
from stacks.platform_stack import PlatformStack, harden_cdk_providers, removal_policy
from stacks.principals import role_arn
from stacks.sagemaker_access import sagemaker_arn, service_principal


def stage_settings(stage: EnvironmentConfig, approval: bool) -> dict[str, object]:
    """One stage as the deploy functions read it (``lambdas/model_deploy/events.py`` ``StageSettings``)."""
    endpoint = stage.endpoint
    assert endpoint is not None
    return {
        "name": stage.name,
        "name_prefix": stage.name_prefix,
        "region": stage.region,
        "stack_name": stage.endpoint_stack_name,
        "endpoint_name": stage.endpoint_name,
        "deployer_role_arn": role_arn(stage, stage.endpoint_deployer_role_name),
        "cloudformation_role_arn": role_arn(stage, stage.endpoint_cloudformation_role_name),
        "approval": approval,
        "smoke_rows": endpoint.smoke_test.rows,
        # Serverless endpoints start cold: the first requests wait for a container.
        "smoke_p95_ms": endpoint.smoke_test.p95_latency_ms,
        "kind": endpoint.kind.value,
    }


class DeployStack(PlatformStack):
    """The deploy of one registry environment to the stages its config lists.

    Attributes:
        rule, trigger, tasks, workflow, topic, table, approver_policy: see the module docstring.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        foundation: FoundationStack,
        promotion: Promotion,
        approvers: list[iam.IRole],
    ) -> None:
        super().__init__(scope, id_, config=config, description=f"AWS-MLOps {config.name}: deploy of approved models")
        deploy = config.deploy
        assert deploy is not None and promotion.stages
        keys = foundation.keys
        stack = cdk.Stack.of(self)
        approvals = set(deploy.approvals)
        stages = [stage_settings(stage, stage.name in approvals) for stage in promotion.stages]

        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=config.deploy_topic_name,
            display_name=f"{config.name_prefix} deploys",
            master_key=keys.data_key,
            enforce_ssl=True,
        )
        for email in deploy.notify_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self.table = dynamodb.Table(
            self,
            "Approvals",
            table_name=config.deploy_table_name,
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=keys.data_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute="expiration",
            removal_policy=removal_policy(config),
        )

        state_machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=config.deploy_state_machine_name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        executions_arn = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{config.deploy_state_machine_name}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        group = config.model_package_group_name
        artifacts = foundation.buckets.bucket_arn("artifacts")
        role = iam.Role(
            self,
            "FunctionsRole",
            role_name=config.deploy_functions_role_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{config.name_prefix}: the deploy's functions (trigger and steps)",
        )
        layer = powertools_layer(self, "Powertools", config)
        environment = {
            "TOPIC_ARN": self.topic.topic_arn,
            "TABLE_NAME": config.deploy_table_name,
            "MODEL_PACKAGE_GROUP": group,
            "STAGES": json.dumps(stages, sort_keys=True, separators=(",", ":")),
            "STATE_MACHINE_ARN": state_machine_arn,
            "APPROVAL_TIMEOUT_HOURS": f"{deploy.approval_timeout_hours:g}",
        }
        common = {
            "config": config,
            "package": "model_deploy",
            "role": role,
            "layer": layer,
            "data_key": keys.data_key,
            "logs_key": keys.logs_key,
            "environment": environment,
        }
        self.trigger = PythonFunction(
            self,
            "Trigger",
            handler="trigger_handler",
            function_name=config.deploy_trigger_function_name,
            description=f"{config.name_prefix}: starts a deploy when a model version is approved or rejected",
            timeout=cdk.Duration.minutes(2),
            reserved_concurrency=2,
            asynchronous=True,
            **common,  # type: ignore[arg-type]
        )
        self.tasks = PythonFunction(
            self,
            "Tasks",
            handler="task_handler",
            function_name=config.deploy_tasks_function_name,
            description=f"{config.name_prefix}: the deploy state machine's steps",
            # The smoke test sends up to smoke_test.rows + 1 requests.
            timeout=cdk.Duration.minutes(5),
            reserved_concurrency=5,
            asynchronous=False,
            **common,  # type: ignore[arg-type]
        )
        iam.ManagedPolicy(
            self,
            "FunctionsPolicy",
            roles=[role],
            description=f"{config.name_prefix}: read the registry, drive the stages' endpoints, run the deploy",
            statements=[
                iam.PolicyStatement(
                    sid="ActAsTheStagesDeployer",
                    actions=["sts:AssumeRole"],
                    resources=sorted({str(stage["deployer_role_arn"]) for stage in stages}),
                ),
                iam.PolicyStatement(
                    sid="ReadTheRegistry",
                    actions=["sagemaker:DescribeModelPackage"],
                    resources=[sagemaker_arn(self, "model-package", f"{group}/*")],
                ),
                iam.PolicyStatement(sid="ListVersions", actions=["sagemaker:ListModelPackages"], resources=["*"]),
                iam.PolicyStatement(
                    sid="ReadTestData",
                    actions=["s3:GetObject"],
                    resources=[f"{artifacts}/{config.build_pipeline_name}/*"],
                ),
                iam.PolicyStatement(
                    sid="ListTestData",
                    actions=["s3:ListBucket"],
                    resources=[artifacts],
                    conditions={"StringLike": {"s3:prefix": f"{config.build_pipeline_name}/*"}},
                ),
                iam.PolicyStatement(
                    sid="DataKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[keys.data_key.key_arn],
                ),
                iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[self.topic.topic_arn]),
                iam.PolicyStatement(
                    # Approvals waiting (tasks function) and the trigger's idempotency records (Powertools).
                    sid="ApprovalsAndIdempotency",
                    actions=["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                    resources=[self.table.table_arn],
                ),
                iam.PolicyStatement(
                    sid="RunTheDeploy",
                    actions=["states:StartExecution", "states:ListExecutions"],
                    resources=[state_machine_arn],
                ),
                iam.PolicyStatement(
                    sid="FollowAndStopDeploys",
                    actions=["states:DescribeExecution", "states:StopExecution"],
                    resources=[executions_arn],
                ),
                iam.PolicyStatement(
                    sid="OwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[
                        self.trigger.log_group.log_group_arn,
                        self.tasks.log_group.log_group_arn,
                    ],
                ),
            ],
        )

        self.workflow = DeployWorkflow(
            self,
            "Workflow",
            config=config,
            tasks_function=self.tasks.function,
            logs_key=keys.logs_key,
            role=iam.Role(
                self,
                "StateMachineRole",
                role_name=config.deploy_role_name,
                assumed_by=service_principal(self, "states.amazonaws.com", source_arn=state_machine_arn),
                description=f"{config.name_prefix}: the deploy state machine",
            ),
        )

        self.rule = events.Rule(
            self,
            "PackageStateChange",
            rule_name=f"{config.name_prefix}-deploy-on-approval",
            description=f"{config.name_prefix}: an approved or rejected version of {group} starts a deploy",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved", "Rejected"]},
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                self.trigger.function,
                dead_letter_queue=self.trigger.dead_letters,
                retry_attempts=8,
                max_event_age=cdk.Duration.hours(6),
            )
        )

        self.approver_policy = iam.ManagedPolicy(
            self,
            "ApproverPolicy",
            managed_policy_name=f"{config.name_prefix}-deploy-approver",
            description=f"{config.name_prefix}: approve or reject a deploy waiting for a person",
            roles=approvers,
            statements=[
                iam.PolicyStatement(
                    sid="ReadAndCloseApprovals",
                    actions=["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem"],
                    resources=[self.table.table_arn],
                ),
                iam.PolicyStatement(
                    sid="TableKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[keys.data_key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{config.region}.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    # A task token is not a resource: who may decide is whoever may read the token above.
                    sid="Decide",
                    actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                    resources=["*"],
                ),
            ],
        )
        self.discovery = DiscoveryParameters(
            self,
            "Discovery",
            prefix=config.discovery_parameter("deploy"),
            values={
                "state-machine-arn": state_machine_arn,
                "approvals-table": config.deploy_table_name,
                "topic-arn": self.topic.topic_arn,
            },
        )
        harden_cdk_providers(self, config=config, logs_key=keys.logs_key)

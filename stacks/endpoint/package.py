"""The model version an endpoint stack serves: CloudFormation parameters that a deploy sets.

The endpoint stack is synthesized like every other stack (auditors read it in ``cdk.out``), and
``cdk deploy`` creates it with no model: every resource that needs one carries the ``HasModel``
condition. A deploy then updates the stack with CloudFormation's ``UsePreviousTemplate`` and these
parameters, so the template that serves traffic is always the one that was synthesized and reviewed,
and the version it serves is a parameter value anyone can read from the stack.

``cdk deploy`` keeps a deployed stack's parameter values (the CLI's default
``--previous-parameters``), so redeploying the platform does not take the model away.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct, IConstruct

# The parameters a deploy passes, by name (the deploy code reads the same names from here).
MODEL_PACKAGE_ARN = "ModelPackageArn"
DATA_STATISTICS_URI = "DataBaselineStatisticsUri"
DATA_CONSTRAINTS_URI = "DataBaselineConstraintsUri"
EVALUATION_URI = "ModelEvaluationUri"
DEPLOY_ID = "DeployId"
PARAMETERS = (MODEL_PACKAGE_ARN, DATA_STATISTICS_URI, DATA_CONSTRAINTS_URI, EVALUATION_URI, DEPLOY_ID)

_PACKAGE_ARN = r"^$|^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[a-zA-Z0-9-]{1,63}/\d+$"
_S3_URI = r"^$|^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"


class DeployedPackage(Construct):
    """The parameters that name the served model version and its registered baselines.

    Attributes:
        model_package_arn: the approved model package version ("" until the first deploy).
        statistics_uri, constraints_uri: its data-quality baseline (Model Monitor's formats); "" where the
            environment does not monitor (no such parameter then).
        evaluation_uri: its registered evaluation (``evaluation.json``), the model-quality reference (same).
        deploy_id: the deploy that set them (names the served model and endpoint config).
        has_model: true once a deploy has set ``ModelPackageArn``; every serving resource carries it.
    """

    def __init__(self, scope: Construct, id_: str, *, baselines: bool) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)

        def parameter(name: str, pattern: str, description: str) -> str:
            # Parameters belong to the stack, not to this construct: their names are the deploy's interface.
            return cdk.CfnParameter(
                stack, name, type="String", default="", allowed_pattern=pattern, description=description
            ).value_as_string

        self.model_package_arn = parameter(
            MODEL_PACKAGE_ARN, _PACKAGE_ARN, "Approved model package version to serve (set by the deploy)"
        )
        # The baselines exist as parameters where something reads them (monitoring); a deploy sets the
        # parameters the stack has.
        self.statistics_uri = self.constraints_uri = self.evaluation_uri = ""
        if baselines:
            self.statistics_uri = parameter(
                DATA_STATISTICS_URI, _S3_URI, "statistics.json of that version's data-quality baseline"
            )
            self.constraints_uri = parameter(
                DATA_CONSTRAINTS_URI, _S3_URI, "constraints.json of that version's data-quality baseline"
            )
            self.evaluation_uri = parameter(EVALUATION_URI, _S3_URI, "evaluation.json registered with that version")
        # Each deploy names what it creates anew (a SageMaker model and endpoint config are immutable, and a
        # replaced one is retained): restoring a version after a rollback must not collide with its old names.
        self.deploy_id = cdk.CfnParameter(
            stack,
            DEPLOY_ID,
            type="String",
            default="none",
            allowed_pattern=r"^[a-z0-9]{1,16}$",
            description="Short id of the deploy that set these values (part of the served resources' names)",
        ).value_as_string
        self.has_model = cdk.CfnCondition(
            stack, "HasModel", expression=cdk.Fn.condition_not(cdk.Fn.condition_equals(self.model_package_arn, ""))
        )


def only_with_model(construct: IConstruct, package: DeployedPackage) -> None:
    """Give every CloudFormation resource under ``construct`` the ``HasModel`` condition.

    Call it once the construct's children exist: L2 constructs take no condition themselves.
    """
    for child in construct.node.find_all():
        if isinstance(child, cdk.CfnResource):
            child.cfn_options.condition = package.has_model

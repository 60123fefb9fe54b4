"""Who may write what CI and the model registry read, and where people write instead.

The artifacts bucket holds three kinds of objects: CodePipeline's source artifacts (which the
privileged image build and the pipeline-updating stage read), the SageMaker Pipeline's code and
outputs (the Spark script, the splits, the model artifacts that registered packages point to),
and what people share from Studio. Only CI and the pipeline's job role may write the first two;
people write only under their own prefixes. The same principals alone may push images.

The CI roles have fixed names so that the foundation's bucket and repository policies, which
are deployed before the model-build stack exists, can name them without a cross-stack reference.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from stacks.config import EnvironmentConfig

# Prefixes of the artifacts bucket that Studio users write (their shared notebooks and experiment
# outputs). Nothing CI, the SageMaker Pipeline or the model registry reads lives under them.
PEOPLE_PREFIXES = ("studio-sharing", "experiments")

# The CodePipeline/CodeBuild roles of the model build, by the name ``BuildPipeline`` gives them.
CI_ROLES = ("pipeline", "sourceevents", "testsproject", "imagesproject", "trainproject")


def ci_role_name(config: EnvironmentConfig, role: str) -> str:
    """The fixed name of one of the model build's CI roles, e.g. ``mlops-dev-ci-imagesproject``."""
    if role not in CI_ROLES:
        raise ValueError(f"unknown CI role {role!r}; expected one of {CI_ROLES}")
    return f"{config.name_prefix}-ci-{role}"


def role_arn(config: EnvironmentConfig, name: str) -> str:
    """ARN of a role of this environment's account, by name."""
    return f"arn:{config.partition}:iam::{config.account}:role/{name}"


def ci_protected_prefixes(config: EnvironmentConfig) -> tuple[str, ...]:
    """Prefixes of the artifacts bucket that CI, the pipeline and the registry read: only CI writes them."""
    return (config.build_pipeline_name, config.ci_artifact_prefix)


def artifact_writer_arns(config: EnvironmentConfig) -> list[str]:
    """Roles that may write the CI-protected prefixes: CodePipeline, the train stage (the Spark script),
    the GitHub runner (same), and the SageMaker Pipeline's job role (its outputs and model artifacts)."""
    return [
        role_arn(config, ci_role_name(config, "pipeline")),
        role_arn(config, ci_role_name(config, "trainproject")),
        role_arn(config, config.github_role_name),
        role_arn(config, config.pipeline_role_name),
    ]


def image_pusher_arns(config: EnvironmentConfig) -> list[str]:
    """Roles that may push images: the image build stage, or the GitHub runner."""
    return [role_arn(config, ci_role_name(config, "imagesproject")), role_arn(config, config.github_role_name)]


def consumer_principals(consumers: list[EnvironmentConfig]) -> list[iam.IPrincipal]:
    """The roles of environments in other accounts that serve this registry's versions.

    Each is its account, narrowed to the roles named with that environment's prefix (its endpoint's model,
    CloudFormation and monitoring roles): a condition, not role ARNs, because IAM refuses a principal
    that does not exist yet, and those environments may be deployed after this one.
    """
    return [
        iam.AccountPrincipal(consumer.account).with_conditions(  # roles named <prefix>-... of that environment
            {"ArnLike": {"aws:PrincipalArn": role_arn(consumer, f"{consumer.name_prefix}-*")}}
        )
        for consumer in consumers
    ]

"""What an endpoint environment's roles may read of the registry environment that deploys to it.

A model version lives in its source environment (``Promotion.source``): the package in that
environment's registry, its artifact and baselines under that environment's model-build prefix of
its artifacts bucket (encrypted with its data key), its images in its repositories. In one account the
source is often another environment (dev's registry feeds staging and prod); multi-account it is
another account, whose bucket, key, repository and registry policies grant the same (the deploy's
grants in the source environment).

These are the identity-side statements; every name is the source's, never a wildcard over
environments.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam

from stacks.config import EnvironmentConfig


def _arn(source: EnvironmentConfig, service: str, resource: str) -> str:
    return f"arn:{source.partition}:{service}:{source.region}:{source.account}:{resource}"


def data_key_alias(source: EnvironmentConfig) -> str:
    """The alias of the source's data key (``stacks/foundation/keys.py`` creates it)."""
    return f"alias/{source.name_prefix}/data"


def source_model_statements(
    source: EnvironmentConfig,
    *,
    sid_prefix: str = "Source",
    packages: bool = True,
    artifacts: bool = True,
    key: bool = True,
    images: Sequence[str] = ("training", "inference"),
) -> list[iam.PolicyStatement]:
    """Read the source's registered versions, their artifacts and baselines, and pull its images.

    The keyword flags pick the statements a role needs (the model's role reads artifacts and the
    inference image, not the registry); ``images`` names the repositories to pull from. The data key
    is named by its alias (``kms:ResourceAliases``): its id is random and lives in another stack, or
    account, that this one cannot reference at synth.
    """
    bucket = f"arn:{source.partition}:s3:::{source.bucket_name('artifacts')}"
    statements = [
        iam.PolicyStatement(
            sid=f"{sid_prefix}ModelPackages",
            actions=["sagemaker:DescribeModelPackage"],
            resources=[_arn(source, "sagemaker", f"model-package/{source.model_package_group_name}/*")],
        ),
        iam.PolicyStatement(
            sid=f"{sid_prefix}ModelArtifacts",
            actions=["s3:GetObject"],
            resources=[f"{bucket}/{source.build_pipeline_name}/*"],
        ),
        iam.PolicyStatement(
            sid=f"{sid_prefix}DataKey",
            actions=["kms:Decrypt", "kms:DescribeKey"],
            resources=[_arn(source, "kms", "key/*")],
            conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": data_key_alias(source)}},
        ),
        iam.PolicyStatement(
            sid=f"{sid_prefix}Images",
            actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            resources=[_arn(source, "ecr", f"repository/{source.repository_name(image)}") for image in images],
        ),
    ]
    wanted = (packages, artifacts, key, bool(images))
    return [statement for statement, keep in zip(statements, wanted, strict=True) if keep]

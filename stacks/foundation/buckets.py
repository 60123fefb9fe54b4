"""S3 buckets for data, model artifacts, monitoring and server access logs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import EnvironmentConfig, RemovalPolicyName
from stacks.platform_stack import deny_all_but, removal_policy
from stacks.principals import artifact_writer_arns, ci_protected_prefixes, consumer_principals


class PlatformBuckets(Construct):
    """The environment's buckets.

    Every bucket is versioned, TLS-only, private, and logs access into the
    access-log bucket. The three data buckets use the data key (SSE-KMS with a
    bucket key); the access-log bucket uses SSE-S3, the only encryption S3 server
    access logging can write to.

    Buckets are named ``<prefix>-<purpose>-<account>-<region>`` so that policies in other
    stacks carry literal, readable ARNs (``names`` and ``objects_arn``).

    Attributes:
        data: raw and prepared training data.
        artifacts: model artifacts, pipeline outputs, evaluation reports, baselines.
        monitoring: endpoint data capture and monitoring reports.
        access_logs: server access logs of the three above.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        key: kms.IKey,
        consumers: list[EnvironmentConfig],
    ) -> None:
        super().__init__(scope, id_)
        retention = config.retention
        destroy = retention.removal_policy is RemovalPolicyName.DESTROY
        removal = removal_policy(config)
        auto_delete = destroy and retention.auto_delete_objects
        noncurrent = cdk.Duration.days(retention.noncurrent_version_expiration_days)
        multipart = cdk.Duration.days(retention.abort_incomplete_multipart_upload_days)
        self.names = {
            purpose: config.bucket_name(purpose) for purpose in ("data", "artifacts", "monitoring", "access-logs")
        }

        self.access_logs: s3.IBucket = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=self.names["access-logs"],
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
            auto_delete_objects=auto_delete,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=cdk.Duration.days(retention.log_retention_days),
                    noncurrent_version_expiration=noncurrent,
                    abort_incomplete_multipart_upload_after=multipart,
                )
            ],
        )

        def data_bucket(name: str) -> s3.Bucket:
            return s3.Bucket(
                self,
                name.capitalize(),
                bucket_name=self.names[name],
                encryption=s3.BucketEncryption.KMS,
                encryption_key=key,
                bucket_key_enabled=True,
                versioned=True,
                enforce_ssl=True,
                minimum_tls_version=1.2,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                server_access_logs_bucket=self.access_logs,
                server_access_logs_prefix=f"{name}/",
                removal_policy=removal,
                auto_delete_objects=auto_delete,
                lifecycle_rules=[
                    s3.LifecycleRule(
                        id="expire-noncurrent-and-abort-multipart",
                        noncurrent_version_expiration=noncurrent,
                        abort_incomplete_multipart_upload_after=multipart,
                    )
                ],
            )

        self.data: s3.IBucket = data_bucket("data")
        self.artifacts: s3.IBucket = data_bucket("artifacts")
        self.monitoring: s3.IBucket = data_bucket("monitoring")

        for bucket in (self.data, self.artifacts, self.monitoring):
            _require_the_data_key(bucket, key)
        _only_ci_writes_what_ci_reads(self.artifacts, config)

        if config.tooling_account:
            # The tooling account reads the model artifacts; it runs no CI, so it writes nothing.
            self.artifacts.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="ToolingAccountRead",
                    principals=[iam.AccountPrincipal(config.tooling_account)],
                    actions=["s3:GetObject", "s3:ListBucket"],
                    resources=[self.artifacts.bucket_arn, self.artifacts.arn_for_objects("*")],
                )
            )

        if consumers:
            # Endpoints in other accounts serve this registry's versions: their artifacts and baselines.
            self.artifacts.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="ServingAccountsReadModelVersions",
                    principals=consumer_principals(consumers),
                    actions=["s3:GetObject"],
                    resources=[self.artifacts.arn_for_objects(f"{config.build_pipeline_name}/*")],
                )
            )

    def bucket_arn(self, purpose: str) -> str:
        """Literal ARN of a bucket (no cross-stack export), e.g. ``bucket_arn("data")``."""
        return cdk.Arn.format(
            cdk.ArnComponents(service="s3", region="", account="", resource=self.names[purpose]), cdk.Stack.of(self)
        )


def _require_the_data_key(bucket: s3.IBucket, key: kms.IKey) -> None:
    """Refuse writes that ask for another encryption (SSE-S3, DSSE) or another KMS key.

    A write that names no encryption gets the bucket's default, the data key; one that names it
    must name it by ARN.
    """
    objects = bucket.arn_for_objects("*")
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyOtherEncryption",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[objects],
            conditions={"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}},
        )
    )
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyOtherKeys",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[objects],
            conditions={"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key.key_arn}},
        )
    )


def _only_ci_writes_what_ci_reads(bucket: s3.IBucket, config: EnvironmentConfig) -> None:
    """CodePipeline's source artifacts and the SageMaker Pipeline's code and outputs (which registered
    model packages point to) are written by CI and the pipeline's job role only, whatever IAM grants."""
    bucket.add_to_resource_policy(
        deny_all_but(
            config,
            sid="OnlyCiWritesCiAndRegistryPaths",
            actions=["s3:PutObject"],
            allowed_arns=artifact_writer_arns(config),
            resources=[bucket.arn_for_objects(f"{prefix}/*") for prefix in ci_protected_prefixes(config)],
        )
    )

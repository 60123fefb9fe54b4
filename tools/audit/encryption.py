"""Section 4: every storage and messaging resource with its key, or the reason it has none."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.audit.assembly import Environment, Resource
from tools.audit.document import Code, Flag, Section
from tools.audit.intrinsics import Resolver, short_path


@dataclass(frozen=True)
class AtRest:
    """How one thing is encrypted: the key (readable), or why there is none, and how it should be read."""

    subject: str
    kind: str
    key: str
    flag: Flag


def _kms(resolver: Resolver, resource: Resource, value: Any, what: str) -> tuple[str, Flag]:
    target = resolver.target(resource.stack, value)
    if target is not None and target.type == "AWS::KMS::Key":
        rotation = "rotation on" if target.properties.get("EnableKeyRotation") else "rotation OFF"
        return f"customer KMS key {short_path(target)} ({rotation})", ("" if "on" in rotation else "warn")
    return f"KMS key {resolver.text(resource.stack, value)} ({what})", ""


def _bucket(resolver: Resolver, r: Resource) -> tuple[str, Flag]:
    rules = r.properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    if not rules:
        return "no encryption configured: only S3's default SSE-S3 (AWS-owned key) applies", "error"
    default = rules[0].get("ServerSideEncryptionByDefault", {})
    algorithm = default.get("SSEAlgorithm", "")
    if algorithm in ("aws:kms", "aws:kms:dsse"):
        if "KMSMasterKeyID" not in default:
            return "SSE-KMS with the AWS-managed key aws/s3", "warn"
        text, flag = _kms(resolver, r, default["KMSMasterKeyID"], "SSE-KMS")
        bucket_key = " + bucket key" if rules[0].get("BucketKeyEnabled") else ""
        return text + bucket_key, flag
    return f"SSE-S3 ({algorithm}, S3-managed key)", "warn"


def _key_property(
    prop: str, none_reason: str, none_flag: Flag = "warn"
) -> Callable[[Resolver, Resource], tuple[str, Flag]]:
    def check(resolver: Resolver, r: Resource) -> tuple[str, Flag]:
        value = r.properties.get(prop)
        if value is None:
            return none_reason, none_flag
        return _kms(resolver, r, value, prop)

    return check


def _nested_key(
    path: tuple[str, ...], none_reason: str, none_flag: Flag = "warn"
) -> Callable[[Resolver, Resource], tuple[str, Flag]]:
    def check(resolver: Resolver, r: Resource) -> tuple[str, Flag]:
        value: Any = r.properties
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return none_reason, none_flag
        return _kms(resolver, r, value, ".".join(path))

    return check


def _ecr(resolver: Resolver, r: Resource) -> tuple[str, Flag]:
    config = r.properties.get("EncryptionConfiguration", {})
    if config.get("EncryptionType") in ("KMS", "KMS_DSSE"):
        if "KmsKey" not in config:
            return "KMS with the AWS-managed key aws/ecr", "warn"
        return _kms(resolver, r, config["KmsKey"], "EncryptionConfiguration.KmsKey")
    return "AES256 with an ECR-managed key (no KMS key)", "warn"


def _queue(resolver: Resolver, r: Resource) -> tuple[str, Flag]:
    if "KmsMasterKeyId" in r.properties:
        return _kms(resolver, r, r.properties["KmsMasterKeyId"], "KmsMasterKeyId")
    if r.properties.get("SqsManagedSseEnabled") is False:
        return "no encryption: SqsManagedSseEnabled is false", "error"
    return "SSE-SQS (SQS-managed key, the default)", "warn"


def _table(resolver: Resolver, r: Resource) -> tuple[str, Flag]:
    spec = r.properties.get("SSESpecification", {})
    if spec.get("KMSMasterKeyId"):
        return _kms(resolver, r, spec["KMSMasterKeyId"], "SSESpecification")
    if spec.get("SSEEnabled"):
        return "KMS with the AWS-managed key aws/dynamodb", "warn"
    return "DynamoDB's AWS-owned key (the default)", "warn"


def _encrypted_flag(flag_prop: str, key_prop: str) -> Callable[[Resolver, Resource], tuple[str, Flag]]:
    def check(resolver: Resolver, r: Resource) -> tuple[str, Flag]:
        if not r.properties.get(flag_prop):
            return f"not encrypted: {flag_prop} is not true", "error"
        if key_prop in r.properties:
            return _kms(resolver, r, r.properties[key_prop], key_prop)
        return "encrypted with the service's AWS-managed key", "warn"

    return check


def _parameter(resolver: Resolver, r: Resource) -> tuple[str, Flag]:
    return (
        f"{r.properties.get('Type', 'String')} parameter: stored without a customer key "
        "(CloudFormation cannot create SecureString parameters); holds configuration, not secrets",
        "",
    )


def _domain(resolver: Resolver, r: Resource) -> tuple[str, Flag]:
    if "KmsKeyId" not in r.properties:
        return "home EFS volume: AWS-managed key (no KmsKeyId)", "warn"
    text, flag = _kms(resolver, r, r.properties["KmsKeyId"], "KmsKeyId")
    return f"home EFS volume: {text}", flag


CHECKS: dict[str, Callable[[Resolver, Resource], tuple[str, Flag]]] = {
    "AWS::S3::Bucket": _bucket,
    "AWS::ECR::Repository": _ecr,
    "AWS::Logs::LogGroup": _key_property("KmsKeyId", "CloudWatch Logs' service-managed key (no KmsKeyId)"),
    "AWS::SNS::Topic": _key_property("KmsMasterKeyId", "not encrypted: no KmsMasterKeyId", "error"),
    "AWS::SQS::Queue": _queue,
    "AWS::DynamoDB::Table": _table,
    "AWS::DynamoDB::GlobalTable": _table,
    "AWS::SageMaker::Domain": _domain,
    "AWS::EFS::FileSystem": _encrypted_flag("Encrypted", "KmsKeyId"),
    "AWS::RDS::DBInstance": _encrypted_flag("StorageEncrypted", "KmsKeyId"),
    "AWS::RDS::DBCluster": _encrypted_flag("StorageEncrypted", "KmsKeyId"),
    "AWS::EC2::Volume": _encrypted_flag("Encrypted", "KmsKeyId"),
    "AWS::CodeCommit::Repository": _key_property("KmsKeyId", "CodeCommit's AWS-managed key aws/codecommit"),
    "AWS::CodeBuild::Project": _key_property("EncryptionKey", "build artifacts: the AWS-managed key aws/s3"),
    "AWS::CodePipeline::Pipeline": _nested_key(
        ("ArtifactStore", "EncryptionKey", "Id"), "artifact store: the AWS-managed key aws/s3"
    ),
    "AWS::SecretsManager::Secret": _key_property("KmsKeyId", "the AWS-managed key aws/secretsmanager"),
    "AWS::Kinesis::Stream": _nested_key(("StreamEncryption", "KeyId"), "not encrypted: no StreamEncryption", "error"),
    "AWS::SageMaker::EndpointConfig": _key_property("KmsKeyId", "instance storage: SageMaker's AWS-managed key"),
    "AWS::SageMaker::NotebookInstance": _key_property("KmsKeyId", "instance storage: SageMaker's AWS-managed key"),
    "AWS::SSM::Parameter": _parameter,
}

# Where a pipeline step keeps data at rest, by step type: (what, path to the key) pairs.
_STEP_KEYS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Processing": (
        ("volume", ("ProcessingResources", "ClusterConfig", "VolumeKmsKeyId")),
        ("outputs", ("ProcessingOutputConfig", "KmsKeyId")),
    ),
    "Training": (("volume", ("ResourceConfig", "VolumeKmsKeyId")), ("outputs", ("OutputDataConfig", "KmsKeyId"))),
    "Transform": (
        ("volume", ("TransformResources", "VolumeKmsKeyId")),
        ("outputs", ("TransformOutput", "KmsKeyId")),
    ),
    "Tuning": (
        ("volume", ("TrainingJobDefinition", "ResourceConfig", "VolumeKmsKeyId")),
        ("outputs", ("TrainingJobDefinition", "OutputDataConfig", "KmsKeyId")),
    ),
}

_SSM_REF = re.compile(r"\{\{ssm:([^}]+)\}\}")


def pipeline_at_rest(env: Environment, resolver: Resolver) -> list[AtRest]:
    """The volumes and outputs of every job in the environment's SageMaker Pipeline definition."""
    if env.pipeline_definition is None:
        return []
    parameters = {r.properties.get("Name"): r for r in env.resources() if r.type == "AWS::SSM::Parameter"}
    out = []
    for step in _steps(env.pipeline_definition.get("Steps", [])):
        for what, path in _STEP_KEYS.get(step.get("Type", ""), ()):
            value: Any = step.get("Arguments", {})
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            subject = f"pipeline step {step.get('Name')} ({step.get('Type')}): {what}"
            if value is None:
                out.append(AtRest(subject, "SageMaker job", "no KMS key: the service-managed key", "warn"))
                continue
            key = str(value)
            match = _SSM_REF.fullmatch(key)
            parameter = parameters.get(match.group(1)) if match else None
            if parameter is not None:
                text, flag = _kms(resolver, parameter, parameter.properties.get("Value"), "via SSM")
                key = f"{text}, read from SSM {match.group(1) if match else ''}"
                out.append(AtRest(subject, "SageMaker job", key, flag))
            else:
                out.append(AtRest(subject, "SageMaker job", f"KMS key {key}", ""))
    return out


def _steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step, including those inside condition branches."""
    out = []
    for step in steps:
        out.append(step)
        arguments = step.get("Arguments", {})
        out.extend(_steps(arguments.get("IfSteps", []) + arguments.get("ElseSteps", [])))
    return out


def resources_at_rest(env: Environment, resolver: Resolver) -> list[AtRest]:
    """Every storage and messaging resource of the templates with its encryption."""
    out = []
    for resource in env.resources():
        check = CHECKS.get(resource.type)
        if check is not None:
            key, flag = check(resolver, resource)
            out.append(AtRest(resource.path, resource.type, key, flag))
    return out


def encryption_section(env: Environment) -> tuple[Section, dict[str, str]]:
    """Section 4.

    Returns:
        The section and, for comparisons, each subject's key text.
    """
    resolver = Resolver(env)
    section = Section("encryption", "4. Encryption at rest")
    items = resources_at_rest(env, resolver) + pipeline_at_rest(env, resolver)
    unencrypted = [i for i in items if i.flag == "error"]
    section.para(
        f"{len(items)} storage and messaging resources and job volumes; {len(unencrypted)} without encryption; "
        f"{sum(1 for i in items if i.flag == 'warn')} on a key this environment does not control (highlighted)."
    )
    for item in unencrypted:
        section.para(f"Unencrypted: {item.subject} ({item.kind}): {item.key}", "error")
    if env.pipeline_definition is None:
        section.para("The pipeline definition was not found: its jobs' volumes and outputs are not listed.", "warn")
    table = section.table("resource", "type", "key or reason")
    for item in sorted(items, key=lambda i: (i.kind, i.subject)):
        table.add(Code(item.subject), Code(item.kind), item.key, flag=item.flag)
    return section, {i.subject: i.key for i in items}

"""The model registry as the deploy reads it: a version's baselines and test data, and which version came before.

"The latest approved version" is ambiguous without an order: versions are compared by their number
(SageMaker numbers a group's versions in registration order), never by listing order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model_deploy.events import Version


class RegistryError(RuntimeError):
    """A version the deploy needs is missing, not approved, or lacks what the deploy reads."""


@dataclass(frozen=True)
class PackageInfo:
    """What the endpoint stack and the smoke test need of one version."""

    version: Version
    status: str
    statistics_uri: str = ""
    constraints_uri: str = ""
    evaluation_uri: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def test_data_uri(self) -> str:
        return self.metadata.get("test_data_uri", "")

    @property
    def target(self) -> str:
        return self.metadata.get("target", "")

    @property
    def problem_type(self) -> str:
        return self.metadata.get("problem_type", "")


class Registry:
    """One model package group, through a SageMaker client."""

    def __init__(self, sagemaker: Any, group: str) -> None:
        self.sagemaker, self.group = sagemaker, group

    def describe(self, version: Version) -> PackageInfo:
        package = self.sagemaker.describe_model_package(ModelPackageName=version.arn)
        if package.get("ModelPackageGroupName") not in (None, self.group):
            raise RegistryError(f"{version.arn} is in group {package['ModelPackageGroupName']}, not {self.group}")
        metrics = package.get("ModelMetrics", {})
        data = metrics.get("ModelDataQuality", {})
        return PackageInfo(
            version=version,
            status=str(package.get("ModelApprovalStatus", "")),
            statistics_uri=data.get("Statistics", {}).get("S3Uri", ""),
            constraints_uri=data.get("Constraints", {}).get("S3Uri", ""),
            evaluation_uri=metrics.get("ModelQuality", {}).get("Statistics", {}).get("S3Uri", ""),
            metadata=dict(package.get("CustomerMetadataProperties", {})),
        )

    def approved(self, version: Version) -> PackageInfo:
        """The version, which must (still) be approved: a deploy never serves anything else."""
        info = self.describe(version)
        if info.status != "Approved":
            raise RegistryError(f"version {version.number} is {info.status or 'in no state'}, not Approved")
        return info

    def approved_versions(self) -> list[Version]:
        """Every approved version of the group, newest (highest number) first."""
        versions = []
        paginator = self.sagemaker.get_paginator("list_model_packages")
        pages = paginator.paginate(
            ModelPackageGroupName=self.group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
        )
        for page in pages:
            versions += [Version.of(summary["ModelPackageArn"]) for summary in page["ModelPackageSummaryList"]]
        return sorted(versions, key=lambda v: v.number, reverse=True)

    def approved_before(self, version: Version) -> Version | None:
        """The newest approved version older than ``version``: where a rejected version rolls back to."""
        older = [v for v in self.approved_versions() if v.number < version.number]
        return older[0] if older else None

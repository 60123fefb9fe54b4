"""Attaches the cdk-nag packs to a stage; any unacknowledged finding fails synth."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks

from stacks.compliance.acknowledgments import apply_acknowledgments

PACKS = (AwsSolutionsChecks, NIST80053R5Checks, HIPAASecurityChecks)


def attach_compliance_gate(stage: cdk.Stage, placeholders: dict[str, str]) -> set[tuple[int, str, str]]:
    """Run every pack on this stage's stacks and record the acknowledgments.

    Plugins are registered on the Stage itself: a plugin on the App does not reach
    stacks nested in stages. Acknowledgments are also written into each template's
    metadata (``cdk_nag.rules_to_suppress``) so that auditors see the reasons in
    what is deployed.

    Returns:
        The (entry index, path, finding) acknowledgments that matched a construct here.
    """
    for pack in PACKS:
        cdk.Validations.of(stage).add_plugins(pack(stage, verbose=True, write_suppressions_to_cloud_formation=True))
    return apply_acknowledgments(stage, placeholders)

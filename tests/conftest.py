"""Shared fixtures. Synthesizing starts the CDK runtime (seconds), so each app is built once a session."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# No test may need AWS credentials or a region from the machine: make sure none leak in.
for _name in (
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
):
    os.environ.pop(_name, None)
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

# Property tests are deterministic: the same examples on every run and machine (no example database, no
# random seed), so the suite cannot pass or fail by luck. HYPOTHESIS_PROFILE=explore draws new random
# examples (kept in the git-ignored .hypothesis/) when you go looking for bugs; pin what it finds with
# @example.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@dataclass
class SynthesizedApp:
    """An app synthesized into a temp dir, with its templates by environment and stack id."""

    outdir: Path
    stages: dict  # env name -> EnvironmentStage
    templates: dict[str, dict[str, dict]]  # env -> stack id -> template JSON
    acknowledgments_used: set

    def template(self, env: str, stack: str):  # -> aws_cdk.assertions.Template
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[env][stack])


def synthesize(outdir: Path, config_dir: Path, extra_context: dict | None = None) -> SynthesizedApp:
    """Build and synthesize the whole app as `cdk synth` would, into ``outdir``."""
    import app as entry

    context = {**entry.cdk_json_context(), "config_dir": str(config_dir), **(extra_context or {})}
    cdk_app = entry.create_app(outdir=str(outdir), context=context)
    stages = {stage.config.name: stage for stage in entry.build_app(cdk_app)}
    assembly = cdk_app.synth()
    templates: dict[str, dict[str, dict]] = {}
    used: set = set()
    for name, stage in stages.items():
        used |= stage.acknowledgments_used
        nested = assembly.get_nested_assembly(stage.artifact_id)
        templates[name] = {}
        for stack in nested.stacks:
            stack_id = stack.hierarchical_id.split("/")[-1]
            templates[name][stack_id] = json.loads((Path(nested.directory) / stack.template_file).read_text())
    return SynthesizedApp(outdir=outdir, stages=stages, templates=templates, acknowledgments_used=used)


@pytest.fixture(scope="session")
def single_account(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    """The shipped configs: dev, staging and prod in one account."""
    return synthesize(tmp_path_factory.mktemp("cdk-single"), ROOT / "config")


@pytest.fixture(scope="session")
def multi_account(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    """The multi-account example: one account each, a tooling account, prod on an imported VPC."""
    return synthesize(tmp_path_factory.mktemp("cdk-multi"), ROOT / "config" / "examples" / "multi-account")

"""Every discovery parameter a pipeline definition refers to is published by a stack of its environment.

The pipeline runner resolves ``{{ssm:/name}}`` and ``{{ssm-list:/name}}`` at upsert; a name the stacks
do not publish would fail only then, in AWS. This checks the agreement offline, for every environment.
"""

from __future__ import annotations

import json
import re

import pytest

from pipelines.run import definition_json

REFERENCE = re.compile(r"\{\{ssm(?:-list)?:(/[^}]+)\}\}")


def _published(app, env: str) -> set[str]:
    return {
        resource["Properties"]["Name"]
        for template in app.templates[env].values()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::SSM::Parameter"
    }


@pytest.mark.parametrize("which", ["single_account", "multi_account"])
def test_every_reference_in_a_definition_is_published(which: str, request: pytest.FixtureRequest) -> None:
    app = request.getfixturevalue(which)
    for env, stage in app.stages.items():
        referenced = set(REFERENCE.findall(json.dumps(definition_json(stage.config, "sha-0123456789abcdef"))))
        assert len(referenced) == 8, (env, sorted(referenced))
        assert referenced <= _published(app, env), (env, sorted(referenced - _published(app, env)))

"""Template assertions for the model-build stack, for each source: CodeCommit, CodeConnections, GitHub Actions."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from stacks.config import RUNNER_SESSION_HOURS
from stacks.model_build.ci import TRAIN_COMMANDS, UNIT_TEST_COMMANDS
from tests.infra.references import logical_id_of, referenced

GITHUB_SUBJECT = "repo:example-org/mlops-model-build:ref:refs/heads/main"


def _data_key(app, env: str) -> tuple[str, str]:
    return logical_id_of(app.stages[env].foundation.keys.data_key)


def _resources(app, env: str, type_: str) -> dict[str, dict]:
    return {k: v for k, v in app.templates[env]["ModelBuild"]["Resources"].items() if v["Type"] == type_}


def _one(app, env: str, type_: str) -> dict:
    (resource,) = _resources(app, env, type_).values()
    return resource["Properties"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_codepipeline_v2_runs_tests_images_then_the_sagemaker_pipeline(single_account, env: str) -> None:
    pipeline = _one(single_account, env, "AWS::CodePipeline::Pipeline")
    assert pipeline["PipelineType"] == "V2"
    assert pipeline["Name"] == f"mlops-{env}-model-build"
    assert [s["Name"] for s in pipeline["Stages"]] == ["Source", "UnitTests", "Images", "Train"]
    store = pipeline["ArtifactStore"]
    assert store["Location"] == f"mlops-{env}-artifacts-111111111111-eu-west-1"
    assert store["EncryptionKey"]["Type"] == "KMS"
    assert referenced(single_account, env, "ModelBuild", store["EncryptionKey"]["Id"]) == _data_key(single_account, env)
    # Actions run with the pipeline's own role: no per-action roles.
    assert all("RoleArn" not in a for s in pipeline["Stages"] for a in s["Actions"])


def test_codecommit_source_creates_an_encrypted_repository_and_a_branch_push_trigger(single_account) -> None:
    repo = _one(single_account, "dev", "AWS::CodeCommit::Repository")
    assert repo["RepositoryName"] == "mlops-dev-model-build"
    assert referenced(single_account, "dev", "ModelBuild", repo["KmsKeyId"]) == _data_key(single_account, "dev")
    rule = _one(single_account, "dev", "AWS::Events::Rule")
    assert rule["EventPattern"]["source"] == ["aws.codecommit"]
    assert rule["EventPattern"]["detail-type"] == ["CodeCommit Repository State Change"]
    # A tag named like the branch must not start a build: the reference must be a branch.
    assert rule["EventPattern"]["detail"] == {
        "event": ["referenceCreated", "referenceUpdated"],
        "referenceType": ["branch"],
        "referenceName": ["main"],
    }
    stage = single_account.stages["dev"]
    (resource,) = rule["EventPattern"]["resources"]
    assert referenced(single_account, "dev", "ModelBuild", resource) == logical_id_of(stage.model_build.ci.repository)
    (target,) = rule["Targets"]
    pipeline = stage.model_build.ci.pipeline
    assert target["Arn"]["Fn::Join"][1][-1] == {"Ref": logical_id_of(pipeline)[1]}
    assert "Triggers" not in _one(single_account, "dev", "AWS::CodePipeline::Pipeline")


@pytest.mark.parametrize(("env", "branch"), [("staging", "main"), ("prod", "release")])
def test_codeconnections_source_triggers_on_push_with_branch_and_path_filters(single_account, env, branch) -> None:
    pipeline = _one(single_account, env, "AWS::CodePipeline::Pipeline")
    source = pipeline["Stages"][0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["FullRepositoryId"] == "example-org/mlops-model-build"
    assert source["Configuration"]["BranchName"] == branch
    (trigger,) = pipeline["Triggers"]
    assert trigger["ProviderType"] == "CodeStarSourceConnection"
    (push,) = trigger["GitConfiguration"]["Push"]
    assert push["Branches"] == {"Includes": [branch]}
    assert push["FilePaths"] == {"Includes": ["ml_code/**", "pipelines/**", "config/**"]}
    assert _resources(single_account, env, "AWS::CodeCommit::Repository") == {}


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_codebuild_projects_are_encrypted_logged_and_only_images_is_privileged(single_account, env: str) -> None:
    projects = {
        p["Properties"]["Name"]: p["Properties"]
        for p in _resources(single_account, env, "AWS::CodeBuild::Project").values()
    }
    assert set(projects) == {f"mlops-{env}-model-build-{n}" for n in ("tests", "images", "train")}
    for name, project in projects.items():
        assert referenced(single_account, env, "ModelBuild", project["EncryptionKey"]) == _data_key(
            single_account, env
        ), name
        assert project["LogsConfig"]["CloudWatchLogs"]["Status"] == "ENABLED"
        assert project["Environment"]["PrivilegedMode"] is name.endswith("-images"), name
        assert project["Source"]["Type"] == "CODEPIPELINE"
    for group in _resources(single_account, env, "AWS::Logs::LogGroup").values():
        assert "KmsKeyId" in group["Properties"] and "RetentionInDays" in group["Properties"]
    # What each Python stage runs (tests/integration/test_ci_commands.py runs these in a clean venv).
    for stage, commands in (("train", TRAIN_COMMANDS), ("tests", UNIT_TEST_COMMANDS)):
        spec = json.loads(projects[f"mlops-{env}-model-build-{stage}"]["Source"]["BuildSpec"])
        assert spec["phases"]["build"]["commands"] == commands


@pytest.mark.parametrize("which", ["single_account", "multi_account"])
def test_model_build_roles_have_no_inline_policies(which: str, request: pytest.FixtureRequest) -> None:
    app = request.getfixturevalue(which)
    for env in ("dev", "staging", "prod"):
        assert _resources(app, env, "AWS::IAM::Policy") == {}, env
        for role in _resources(app, env, "AWS::IAM::Role").values():
            assert "Policies" not in role["Properties"]


def test_only_the_train_project_may_run_the_sagemaker_pipeline(single_account) -> None:
    policies = {
        p["Properties"]["Description"]: json.dumps(p["Properties"]["PolicyDocument"])
        for p in _resources(single_account, "dev", "AWS::IAM::ManagedPolicy").values()
    }
    runners = [d for d, doc in policies.items() if "sagemaker:StartPipelineExecution" in doc]
    assert runners == ["mlops-dev model build: TrainProject"]
    pushers = [d for d, doc in policies.items() if "ecr:PutImage" in doc]
    assert pushers == ["mlops-dev model build: ImagesProject"]
    assert "arn:aws:sagemaker:eu-west-1:111111111111:pipeline/mlops-dev-model-build" in policies[runners[0]]


def test_pipeline_execution_role_is_named_and_scoped(single_account) -> None:
    role = next(
        r["Properties"]
        for r in _resources(single_account, "dev", "AWS::IAM::Role").values()
        if r["Properties"].get("RoleName") == "mlops-dev-sagemaker-pipeline"
    )
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    (policy,) = [
        p["Properties"]
        for p in _resources(single_account, "dev", "AWS::IAM::ManagedPolicy").values()
        if p["Properties"]["Description"] == "mlops-dev model-build pipeline jobs"
    ]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["RegisterIntoThisEnvironmentsGroup"]["Resource"] == [
        "arn:aws:sagemaker:eu-west-1:111111111111:model-package-group/mlops-dev-models",
        "arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-models/*",
    ]
    assert statements["DataKeyGrantsForJobVolumes"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    # Batch transform (pipelines.batch): its jobs only, with the data key on volume and output.
    transform = statements["BatchTransformWithTheDataKey"]
    assert (transform["Action"], transform["Resource"]) == (
        "sagemaker:CreateTransformJob",
        "arn:aws:sagemaker:eu-west-1:111111111111:transform-job/mlops-dev-batch-*",
    )
    assert set(transform["Condition"]["StringEquals"]) == {"sagemaker:VolumeKmsKey", "sagemaker:OutputKmsKey"}
    assert len({json.dumps(v) for v in transform["Condition"]["StringEquals"].values()}) == 1
    assert "arn:aws:s3:::" in json.dumps(statements["WriteOwnArtifactPrefixes"]) and "/mlops-dev-batch/*" in json.dumps(
        statements["WriteOwnArtifactPrefixes"]
    )


def test_registry_and_discovery(single_account, multi_account) -> None:
    group = _one(single_account, "dev", "AWS::SageMaker::ModelPackageGroup")
    assert group["ModelPackageGroupName"] == "mlops-dev-models"
    assert "ModelPackageGroupPolicy" not in group
    shared = _one(multi_account, "prod", "AWS::SageMaker::ModelPackageGroup")
    principal = shared["ModelPackageGroupPolicy"]["Statement"][0]["Principal"]
    assert principal == {"AWS": "arn:aws:iam::555555555555:root"}
    single_account.template("dev", "ModelBuild").has_resource_properties(
        "AWS::SSM::Parameter", {"Name": "/mlops-dev/model-build/job-security-group-id"}
    )


def test_github_actions_source_trusts_one_repository_and_branch_only(multi_account) -> None:
    template = multi_account.template("staging", "ModelBuild")
    template.resource_count_is("AWS::CodePipeline::Pipeline", 0)
    template.resource_count_is("AWS::CodeBuild::Project", 0)
    template.has_resource_properties(
        "AWS::IAM::OIDCProvider",
        {"Url": "https://token.actions.githubusercontent.com", "ClientIdList": ["sts.amazonaws.com"]},
    )
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": "mlops-staging-github-model-build",
            "MaxSessionDuration": RUNNER_SESSION_HOURS * 3600,
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Action": "sts:AssumeRoleWithWebIdentity",
                            "Condition": {
                                "StringEquals": {
                                    "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                                    "token.actions.githubusercontent.com:sub": GITHUB_SUBJECT,
                                }
                            },
                        }
                    )
                ]
            },
        },
    )


def test_one_account_cannot_hold_two_github_providers(tmp_path) -> None:
    import shutil

    from stacks.config import ConfigError, load_environments
    from tests.conftest import ROOT

    for name in ("dev", "staging", "prod"):
        shutil.copy(ROOT / "config" / "examples" / "multi-account" / f"{name}.yaml", tmp_path / f"{name}.yaml")
    staging = tmp_path / "staging.yaml"
    staging.write_text(staging.read_text().replace('"333333333333"', '"222222222222"'))
    with pytest.raises(ConfigError, match=r"github_actions in dev, staging, all in account 222222222222"):
        load_environments(tmp_path)

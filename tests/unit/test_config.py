"""Environment config: every shipped file validates; bad files fail with file, field and problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacks.config import ConfigError, CreatedNetwork, ImportedNetwork, load_config, load_environments

ROOT = Path(__file__).resolve().parents[2]


def _valid() -> dict:
    return yaml.safe_load((ROOT / "config" / "dev.yaml").read_text())


def _write(tmp_path: Path, data: object, name: str = "dev") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("config_dir", ["config", "config/examples/multi-account"])
def test_shipped_configs_validate(config_dir: str) -> None:
    configs = load_environments(ROOT / config_dir)
    assert [c.name for c in configs] == ["dev", "staging", "prod"]


def test_single_account_configs_share_one_account() -> None:
    configs = load_environments(ROOT / "config")
    assert len({c.account for c in configs}) == 1
    assert all(c.tooling_account is None for c in configs)


def test_multi_account_configs_use_one_account_each_and_a_tooling_account() -> None:
    configs = load_environments(ROOT / "config/examples/multi-account")
    assert len({c.account for c in configs}) == 3
    assert {c.tooling_account for c in configs} == {"555555555555"}
    assert isinstance(configs[2].networking, ImportedNetwork)
    assert isinstance(configs[0].networking, CreatedNetwork)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {},
            r"name_prefix mlops-dev in account 111111111111 is in dev, qa; "
            r"model_build.source.repository mlops-dev-model-build in account 111111111111, eu-west-1 is in dev, qa",
        ),
        (
            {"name_prefix": "mlops-qa"},
            r"model_build.source.repository mlops-dev-model-build in account 111111111111, eu-west-1 is in dev, qa",
        ),
    ],
    ids=["prefix", "codecommit repository"],
)
def test_two_environments_in_one_account_may_not_create_the_same_names(tmp_path: Path, change, message) -> None:
    # A copy of dev.yaml renamed qa but for what each case keeps: the second deploy would fail on the name.
    _write(tmp_path, _valid())
    qa = {**_valid(), "name": "qa", **change}
    qa["networking"]["cidr"] = "10.50.0.0/16"
    _write(tmp_path, qa, "qa")
    with pytest.raises(ConfigError, match=message + r": each would create it"):
        load_environments(tmp_path)
    qa["model_build"]["source"]["repository"] = "mlops-qa-model-build"
    qa["name_prefix"] = "mlops-qa"
    _write(tmp_path, qa, "qa")
    assert [c.name for c in load_environments(tmp_path)] == ["dev", "qa"]


def test_github_actions_in_two_environments_of_one_account_is_refused(tmp_path: Path) -> None:
    for name in ("dev", "qa"):
        data = {**_valid(), "name": name, "name_prefix": f"mlops-{name}"}
        data["model_build"]["source"] = {"kind": "github_actions", "repository": f"example/{name}-models"}
        _write(tmp_path, data, name)
    with pytest.raises(ConfigError, match=r"github_actions in dev, qa, all in account 111111111111"):
        load_environments(tmp_path)


def test_selecting_one_environment_loads_only_it() -> None:
    assert [c.name for c in load_environments(ROOT / "config", "staging")] == ["staging"]


def test_an_environment_without_a_file_is_named_with_those_that_exist() -> None:
    with pytest.raises(
        ConfigError,
        match=rf"-c env=qa: no environment 'qa': {ROOT}/config/qa.yaml not found \(environments there: dev, prod, "
        r"staging\)",
    ):
        load_environments(ROOT / "config", "qa")


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"{tmp_path}/dev.yaml not found \(environments there: none\)"):
        load_environments(tmp_path, "dev")
    with pytest.raises(ConfigError, match=rf"{tmp_path}/dev.yaml: configuration file not found"):
        load_config(tmp_path / "dev.yaml")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text("name: dev\naccount: [unclosed\n")
    with pytest.raises(ConfigError, match=r"dev.yaml: not valid YAML"):
        load_config(path)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected a mapping at the top level, got list"):
        load_config(_write(tmp_path, ["dev"]))


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda d: d.update(account="12345"), "account", "String should match pattern"),
        (lambda d: d.pop("region"), "region", "Field required"),
        (lambda d: d.update(colour="blue"), "colour", "Extra inputs are not permitted"),
        (lambda d: d["networking"].update(cidr="10.0.0.0/8"), "networking.cidr", "between /16 and /24"),
        (lambda d: d["networking"].update(cidr="10.0.0.1/16"), "networking.cidr", "host bits set"),
        (lambda d: d["networking"].update(mode="peered"), "networking", "does not match any of the expected tags"),
        (
            lambda d: d["networking"].update(availability_zones=["eu-west-1a"]),
            "networking.availability_zones",
            "at least 2 items",
        ),
        (
            lambda d: d["networking"].update(availability_zones=["us-east-1a", "us-east-1b"]),
            "networking.availability_zones, region",
            "availability zone 'us-east-1a' is not in region 'eu-west-1'",
        ),
        (
            lambda d: d["retention"].update(removal_policy="retain"),
            "retention.auto_delete_objects, retention.removal_policy",
            "auto_delete_objects: true requires removal_policy: destroy",
        ),
        (lambda d: d["retention"].update(removal_policy="snapshot"), "retention.removal_policy", "Input should be"),
        (
            lambda d: d["retention"].update(log_retention_days=31),
            "retention.log_retention_days",
            "must be one of CloudWatch's values",
        ),
        (
            lambda d: d["networking"].update(flow_log_retention_days=31),
            "networking.flow_log_retention_days",
            "must be one of CloudWatch's values",
        ),
        (
            lambda d: d["retention"].update(key_pending_window_days=3),
            "retention.key_pending_window_days",
            "greater than or equal to 7",
        ),
        (
            lambda d: d.update(tooling_account=d["account"]),
            "tooling_account, account",
            "tooling_account must differ from account",
        ),
        (
            lambda d: d["model_build"]["source"].update(kind="codeconnections"),
            "model_build.source.kind, model_build.source.connection_arn",
            "kind codeconnections needs connection_arn",
        ),
    ],
)
def test_bad_field_is_named_with_its_problem(tmp_path: Path, mutate, field: str, problem: str) -> None:
    data = _valid()
    mutate(data)
    with pytest.raises(ConfigError) as excinfo:
        load_config(_write(tmp_path, data))
    message = str(excinfo.value)
    assert message.startswith(f"{tmp_path}/dev.yaml: invalid configuration")
    assert f"  {field}: " in message
    assert problem in message


def test_imported_network_needs_one_subnet_and_route_table_per_zone(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "config/examples/multi-account/prod.yaml").read_text())
    data["private_subnet_ids"] = None
    data.pop("private_subnet_ids")
    data["networking"]["private_route_table_ids"] = data["networking"]["private_route_table_ids"][:2]
    with pytest.raises(
        ConfigError,
        match=r"  networking.availability_zones, networking.private_subnet_ids, networking.private_route_table_ids: "
        r"Value error, .*one subnet and route table per zone",
    ):
        load_config(_write(tmp_path, data, "prod"))


def test_name_must_match_file(tmp_path: Path) -> None:
    data = _valid()
    data["name"] = "staging"
    with pytest.raises(ConfigError, match=r"name: 'staging' does not match the file name 'dev'"):
        load_config(_write(tmp_path, data))


# --- studio ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("users", "field", "problem"),
    [
        (
            [
                {"name": "alice", "persona": "data_scientist"},
                {"name": "bob", "persona": "ml_engineer"},
                {"name": "alice", "persona": "ml_engineer"},
            ],
            "studio.users",
            "duplicate user 'alice' at entries 0 and 2",
        ),
        ([{"name": "carol", "persona": "admin"}], "studio.users.0.persona", "Input should be 'data_scientist' or"),
        ([{"name": "bad_name!", "persona": "ml_engineer"}], "studio.users.0.name", "String should match pattern"),
        ([{"name": "dan"}], "studio.users.0.persona", "Field required"),
    ],
)
def test_bad_studio_users_are_named(tmp_path: Path, users, field: str, problem: str) -> None:
    data = _valid()
    data["studio"]["users"] = users
    with pytest.raises(ConfigError) as excinfo:
        load_config(_write(tmp_path, data))
    assert f"  {field}: " in str(excinfo.value)
    assert problem in str(excinfo.value)


@pytest.mark.parametrize(("minutes", "problem"), [(59, "greater than or equal to 60"), (525601, "less than or equal")])
def test_idle_timeout_out_of_range_is_named(tmp_path: Path, minutes: int, problem: str) -> None:
    data = _valid()
    data["studio"]["idle_timeout_minutes"] = minutes
    with pytest.raises(ConfigError, match=rf"studio.idle_timeout_minutes: Input should be {problem}"):
        load_config(_write(tmp_path, data))


# --- any environment name --------------------------------------------------------------------------


def _environment(folder: Path, name: str, **changes: object) -> Path:
    data = _valid()
    data.update(name=name, name_prefix=f"mlops-{name}", **changes)
    data["model_build"]["source"]["repository"] = f"mlops-{name}-model-build"
    return _write(folder, data, name)


@pytest.mark.parametrize("name", ["qa", "perf", "sandbox-alice"])
def test_any_environment_with_a_valid_file_loads_like_the_shipped_three(tmp_path: Path, name: str) -> None:
    _environment(tmp_path, name)
    (config,) = load_environments(tmp_path, name)
    assert (config.name, config.name_prefix) == (name, f"mlops-{name}")


def test_all_environments_of_a_folder_load_shipped_order_first(tmp_path: Path) -> None:
    for name in ("sandbox-alice", "prod", "qa", "dev", "staging"):
        _environment(tmp_path, name)
    assert [c.name for c in load_environments(tmp_path)] == ["dev", "staging", "prod", "qa", "sandbox-alice"]


@pytest.mark.parametrize("name", ["../config/dev", "QA", "q", "qa-", "qa_1", "a" * 17, "1qa", "qa.prod", ""])
def test_an_unsafe_environment_name_is_refused_before_any_file_is_read(name: str) -> None:
    with pytest.raises(ConfigError, match=r"not a valid environment name \(2-16 lowercase letters, digits"):
        load_environments(ROOT / "config", name)


def test_a_config_file_whose_name_is_not_an_environment_name_is_named(tmp_path: Path) -> None:
    _environment(tmp_path, "dev")
    (tmp_path / "Team_QA.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError, match=rf"{tmp_path}/Team_QA.yaml: 'Team_QA' is not a valid environment name"):
        load_environments(tmp_path)


def test_a_folder_without_environments_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"{tmp_path}: no environment"):
        load_environments(tmp_path)
    with pytest.raises(ConfigError, match=rf"{tmp_path}/nope: configuration folder not found"):
        load_environments(tmp_path / "nope")


# --- files that are not UTF-8 YAML, or are YAML that hides a mistake ------------------------------


@pytest.mark.parametrize(
    ("encoding", "byte"),
    [("utf-16", "NUL byte"), ("utf-16-be", "NUL byte"), ("utf-32", "NUL byte"), ("latin-1", "byte 0xe9")],
)
@pytest.mark.parametrize("accent", [True, False])
def test_a_file_not_in_utf8_is_one_clear_error(tmp_path: Path, encoding: str, byte: str, accent: bool) -> None:
    path = tmp_path / "dev.yaml"
    text = (ROOT / "config" / "dev.yaml").read_text()
    if accent or encoding == "latin-1":
        text = text.replace("project:", "projé:")
    path.write_bytes(text.encode(encoding))
    with pytest.raises(ConfigError, match=rf"dev.yaml: not UTF-8 text \({byte} at offset \d+.*\); save it as UTF-8"):
        load_config(path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (ROOT / "config" / "dev.yaml").read_bytes())
    assert load_config(path).name == "dev"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1000 + "]" * 1000,
        "{a: " * 1000 + "1" + "}" * 1000,
        "".join(f"{'  ' * level}k{level}:\n" for level in range(1000)) + "  " * 1000 + "v\n",
        "- " * 1000 + "x\n",
    ],
    ids=["flow-sequences", "flow-mappings", "block-mappings", "block-sequences"],
)
def test_yaml_nested_a_thousand_levels_is_one_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(text)
    with pytest.raises(
        ConfigError, match=r"dev.yaml: not a configuration: nested more than 32 levels deep at line \d+"
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("name: dev\naccount: '111111111111'\nname: prod\n", "name", 3, 1),
        ("networking:\n  mode: create\n  cidr: 10.0.0.0/16\n  mode: import\n", "mode", 4, 2),
        ("tags:\n  team: a\n  team: b\n", "team", 3, 2),
        ("1: a\n1: b\n", 1, 2, 1),
    ],
)
def test_a_duplicate_key_is_an_error_naming_the_key_and_line(
    tmp_path: Path, text: str, key: object, line: int, first: int
) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert str(excinfo.value) == (
        f"{path}: line {line}: duplicate key {key!r} (first at line {first}); "
        "YAML would silently keep only the last one"
    )


def test_merge_keys_may_still_override_what_they_merge(tmp_path: Path) -> None:
    text = (
        (ROOT / "config" / "dev.yaml")
        .read_text()
        .replace("tags:\n  project: aws-mlops\n", "tags:\n  <<: {project: other, owner: ml}\n  project: aws-mlops\n")
    )
    path = tmp_path / "dev.yaml"
    path.write_text(text)
    assert load_config(path).tags == {"owner": "ml", "project": "aws-mlops", "environment": "dev"}


# --- the model build's gate can be met ----------------------------------------------------------------


def _pipeline(tmp_path: Path, **pipeline: object) -> object:
    data = _valid()
    data["model_build"]["pipeline"] = pipeline
    return load_config(_write(tmp_path, data)).model_build.pipeline  # type: ignore[union-attr]


def _pipeline_error(tmp_path: Path, **pipeline: object) -> str:
    with pytest.raises(ConfigError) as excinfo:
        _pipeline(tmp_path, **pipeline)
    return str(excinfo.value)


def test_the_sample_data_keeps_its_target_and_rmse_bar(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    assert (pipeline.target, pipeline.problem_type, pipeline.metric_threshold) == ("rings", "regression", 3.0)


@pytest.mark.parametrize(("problem", "threshold"), [("binary", 0.75), ("multiclass", 0.7)])
def test_a_classification_threshold_defaults_to_its_own_metric(tmp_path: Path, problem: str, threshold: float) -> None:
    pipeline = _pipeline(tmp_path, problem_type=problem, target="sex")
    assert (pipeline.target, pipeline.metric_threshold) == ("sex", threshold)


@pytest.mark.parametrize(
    ("pipeline", "fields", "problem"),
    [
        (
            {"problem_type": "binary"},
            "model_build.pipeline.target, model_build.pipeline.problem_type, model_build.pipeline.input_data_key",
            "target is required: the column to predict cannot be inferred for a binary model",
        ),
        (
            {"input_data_key": "churn/customers.csv"},
            "model_build.pipeline.target",
            "for a regression model of 'churn/customers.csv'",
        ),
        (
            {"input_data_key": "houses/prices.csv", "target": "price"},
            "model_build.pipeline.metric_threshold, model_build.pipeline.problem_type, model_build.pipeline.target",
            "metric_threshold is required: the maximum test RMSE is in the units of 'price'",
        ),
        (
            {"problem_type": "binary", "target": "churned", "metric_threshold": 3.0},
            "model_build.pipeline.metric_threshold, model_build.pipeline.problem_type",
            "metric_threshold 3.0 is out of range for problem_type binary: the gate is a minimum test AUC",
        ),
        (
            {"problem_type": "multiclass", "target": "sex", "metric_threshold": 1.5},
            "model_build.pipeline.metric_threshold",
            "minimum weighted F1, which lies between 0 and 1",
        ),
        ({"metric_threshold": float("inf")}, "model_build.pipeline.metric_threshold", "finite number"),
        ({"metric_threshold": float("nan")}, "model_build.pipeline.metric_threshold", "finite number"),
        ({"metric_threshold": 0}, "model_build.pipeline.metric_threshold", "greater than 0"),
        ({"target": ""}, "model_build.pipeline.target", "at least 1 character"),
    ],
)
def test_a_gate_that_could_never_pass_or_a_guessed_target_is_refused(
    tmp_path: Path, pipeline: dict, fields: str, problem: str
) -> None:
    message = _pipeline_error(tmp_path, **pipeline)
    assert f"  {fields}" in message
    assert problem in message


def test_an_infinite_threshold_written_in_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(
        (ROOT / "config" / "dev.yaml").read_text().replace("metric_threshold: 3.0", "metric_threshold: .inf")
    )
    with pytest.raises(ConfigError, match=r"model_build.pipeline.metric_threshold: Input should be a finite number"):
        load_config(path)


# --- the network can hold its subnets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "mask", "zones", "fits"),
    [
        ("10.0.0.0/24", 25, 2, True),  # exactly two /25s
        ("10.0.0.0/24", 25, 3, False),
        ("10.0.0.0/24", 26, 4, True),
        ("10.0.0.0/16", 16, 2, False),  # one /16 in a /16
        ("10.0.0.0/20", 16, 2, False),  # subnets larger than the VPC
        ("10.0.0.0/16", 20, 6, True),
    ],
)
def test_a_vpc_too_small_for_its_subnets_names_the_fields(
    tmp_path: Path, cidr: str, mask: int, zones: int, fits: bool
) -> None:
    data = _valid()
    data["networking"].update(
        cidr=cidr, subnet_cidr_mask=mask, availability_zones=[f"eu-west-1{z}" for z in "abcdef"[:zones]]
    )
    if fits:
        assert load_config(_write(tmp_path, data)).networking.cidr == cidr
        return
    with pytest.raises(ConfigError) as excinfo:
        load_config(_write(tmp_path, data))
    message = str(excinfo.value)
    assert "  networking.cidr, networking.subnet_cidr_mask, networking.availability_zones: " in message
    assert f"but {zones} zones need one each" in message


# --- whatever the file holds: a config or one clear error ---------------------------------------------

DEV_BYTES = (ROOT / "config" / "dev.yaml").read_bytes()


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["truncated", "spliced", "bytes", "text"]))
    if kind == "truncated":
        return DEV_BYTES[: draw(st.integers(0, len(DEV_BYTES)))]
    if kind == "spliced":
        at = draw(st.integers(0, len(DEV_BYTES)))
        return DEV_BYTES[:at] + draw(st.binary(max_size=20) | st.text(max_size=20).map(str.encode)) + DEV_BYTES[at:]
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    return draw(st.text(max_size=200)).encode(draw(st.sampled_from(["utf-8", "utf-16", "utf-32"])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=damaged_files())
def test_any_file_content_gives_a_config_or_one_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "dev.yaml"
    path.write_bytes(content)
    try:
        assert load_config(path).name == "dev"
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}: ")


def test_the_subnet_rule_agrees_with_cdks_own_allocation() -> None:
    # The rule must refuse exactly what CDK's Vpc cannot lay out (it used to die there with a jsii error).
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2

    from stacks.config import CreatedNetwork

    cases = [
        ("10.0.0.0/24", 25, 2),
        ("10.0.0.0/24", 25, 3),
        ("10.0.0.0/24", 26, 4),
        ("10.0.0.0/24", 26, 5),
        ("10.0.0.0/16", 16, 2),
        ("10.0.0.0/20", 16, 2),
        ("10.0.0.0/16", 19, 6),
        ("10.0.0.0/16", 20, 6),
    ]
    stack = cdk.Stack(cdk.App(), "Probe", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    for index, (cidr, mask, zones) in enumerate(cases):
        names = [f"eu-west-1{z}" for z in "abcdef"[:zones]]
        try:
            CreatedNetwork(mode="create", cidr=cidr, subnet_cidr_mask=mask, availability_zones=names)
            config_accepts = True
        except ValueError:
            config_accepts = False
        try:
            ec2.Vpc(
                stack,
                f"Vpc{index}",
                ip_addresses=ec2.IpAddresses.cidr(cidr),
                availability_zones=names,
                nat_gateways=0,
                subnet_configuration=[
                    ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=mask)
                ],
            )
            cdk_accepts = True
        except RuntimeError:
            cdk_accepts = False
        assert config_accepts == cdk_accepts, (cidr, mask, zones)


def test_endpoint_zones_cannot_exceed_the_zones_and_endpoints_are_named(tmp_path) -> None:
    from stacks.config import ConfigError, load_config

    base = (ROOT / "config" / "dev.yaml").read_text()
    too_many = tmp_path / "dev.yaml"
    too_many.write_text(base.replace("endpoint_zones: 1", "endpoint_zones: 3"))
    with pytest.raises(
        ConfigError, match=r"networking.endpoint_zones, networking.availability_zones: .*3 is more than"
    ):
        load_config(too_many)
    unknown = tmp_path / "dev.yaml"
    unknown.write_text(base.replace("interface_endpoints: [sagemaker_api,", "interface_endpoints: [sagemaker_apl,"))
    with pytest.raises(ConfigError, match=r"networking.interface_endpoints.0"):
        load_config(unknown)


# --- endpoints, monitoring and deploy ----------------------------------------------------------------


def _error(tmp_path: Path, data: dict) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_config(_write(tmp_path, data))
    return str(excinfo.value)


def test_the_shipped_endpoints_are_serverless_in_dev_and_monitored_instances_elsewhere() -> None:
    configs = {config.name: config for config in load_environments(ROOT / "config")}
    assert configs["dev"].endpoint is not None and configs["dev"].endpoint.kind == "serverless"
    assert configs["dev"].monitoring is None
    for name in ("staging", "prod"):
        config = configs[name]
        assert config.endpoint is not None and config.endpoint.kind == "instance"
        assert config.endpoint.data_capture.enabled and config.monitoring is not None
    assert configs["dev"].endpoint_name == "mlops-dev-endpoint"


def test_serverless_with_data_capture_is_refused_with_the_reason(tmp_path: Path) -> None:
    data = _valid()
    data["endpoint"]["data_capture"]["enabled"] = True
    message = _error(tmp_path, data)
    assert "endpoint.kind, endpoint.data_capture.enabled" in message
    assert "serverless endpoint cannot capture data" in message


@pytest.mark.parametrize(
    ("change", "fields", "problem"),
    [
        (
            {"kind": "instance", "data_capture": {"enabled": False}},
            "monitoring, endpoint.data_capture.enabled",
            "captured traffic",
        ),
        (None, "monitoring, endpoint", "needs an endpoint section"),
    ],
)
def test_monitoring_without_captured_traffic_is_refused(tmp_path: Path, change, fields: str, problem: str) -> None:
    data = _valid()
    data["monitoring"] = {"engine": "platform"}
    if change is None:
        del data["endpoint"]
        del data["deploy"]
    else:
        data["endpoint"] = change
    message = _error(tmp_path, data)
    assert fields in message and problem in message


def _monitored() -> dict:
    data = yaml.safe_load((ROOT / "config" / "staging.yaml").read_text())
    data["name"] = "dev"  # written as dev.yaml by _error
    return data


@pytest.mark.parametrize(
    ("value", "field", "problem"),
    [
        ({"max_quality_degradation": 1.0}, "monitoring.max_quality_degradation", "less than 1"),
        ({"drift_threshold": 0}, "monitoring.drift_threshold", "greater than 0"),
        ({"drift_threshold": 1}, "monitoring.drift_threshold", "less than 1"),
        ({"drift_threshold": "high"}, "monitoring.drift_threshold", "a valid number"),
        ({"ground_truth_delay_hours": 121}, "monitoring.ground_truth_delay_hours", "less than or equal to 120"),
        ({"ground_truth_delay_hours": 0}, "monitoring.ground_truth_delay_hours", "greater than or equal to 1"),
        ({"schedule": "weekly"}, "monitoring.schedule", "'hourly' or 'daily'"),
        ({"engine": "evidently"}, "monitoring.engine", "'platform' or 'model_monitor'"),
    ],
)
def test_bad_monitoring_settings_are_named(tmp_path: Path, value: dict, field: str, problem: str) -> None:
    data = _monitored()
    data["monitoring"] = {**data["monitoring"], **value}
    message = _error(tmp_path, data)
    assert field in message and problem in message


def test_monitoring_checks_and_period_follow_the_config(tmp_path: Path) -> None:
    data = _monitored()
    data["monitoring"] = {"engine": "platform", "schedule": "daily", "model_quality": True}
    monitoring = load_config(_write(tmp_path, data)).monitoring
    assert monitoring is not None
    assert (monitoring.checks, monitoring.period_hours) == (("data-quality", "model-quality"), 24)
    data["monitoring"] = {}
    monitoring = load_config(_write(tmp_path, data)).monitoring
    assert monitoring is not None and (monitoring.checks, monitoring.period_hours) == (("data-quality",), 1)
    assert monitoring.engine == "platform" and monitoring.retrain is True


@pytest.mark.parametrize(
    ("section", "value", "field", "problem"),
    [
        ("serverless", {"memory_mb": 3000}, "endpoint.serverless.memory_mb", "one of SageMaker's sizes"),
        ("autoscaling", {"min_instances": 3, "max_instances": 2}, "endpoint.autoscaling.min_instances", "above"),
        ("rollout", {"traffic_shift": "big_bang"}, "endpoint.rollout.traffic_shift", "canary"),
        ("rollout", {"step_percent": 80}, "endpoint.rollout.step_percent", "less than or equal to 50"),
    ],
)
def test_bad_endpoint_settings_are_named(tmp_path: Path, section: str, value: dict, field: str, problem: str) -> None:
    data = _valid()
    data["endpoint"] = {"kind": "instance", "data_capture": {"enabled": False}, section: value}
    message = _error(tmp_path, data)
    assert field in message and problem in message


@pytest.mark.parametrize(
    ("deploy", "field", "problem"),
    [
        ({"stages": ["dev", "dev"]}, "deploy.stages", "dev repeated"),
        ({"stages": ["dev"], "approval_before": ["prod"]}, "deploy.approval_before, deploy.stages", "prod, not in"),
        ({"stages": []}, "deploy.stages", "at least 1"),
        ({"stages": ["dev"], "notify_emails": ["not-an-address"]}, "deploy.notify_emails.0", "pattern"),
    ],
)
def test_bad_deploy_sections_are_named(tmp_path: Path, deploy: dict, field: str, problem: str) -> None:
    data = _valid()
    data["deploy"] = deploy
    message = _error(tmp_path, data)
    assert field in message and problem in message


def test_deploy_needs_a_model_build(tmp_path: Path) -> None:
    data = _valid()
    data["model_build"]["enabled"] = False
    assert "deploy, model_build" in _error(tmp_path, data)


def test_approval_defaults_to_the_last_stage(tmp_path: Path) -> None:
    data = _valid()
    data["deploy"] = {"stages": ["dev"]}
    config = load_config(_write(tmp_path, data))
    assert config.deploy is not None and config.deploy.approvals == ["dev"]


# --- promotions: which registry feeds which endpoint -------------------------------------------------


def test_single_account_dev_feeds_every_endpoint_in_order() -> None:
    from stacks.config import load_promotions

    promotions = load_promotions(ROOT / "config")
    assert [stage.name for stage in promotions["dev"].stages] == ["dev", "staging", "prod"]
    assert {name: p.source.name if p.source else None for name, p in promotions.items()} == {
        "dev": "dev",
        "staging": "dev",
        "prod": "dev",
    }
    assert promotions["staging"].stages == () and promotions["prod"].stages == ()


def test_multi_account_dev_feeds_staging_and_prod_feeds_itself() -> None:
    from stacks.config import load_promotions

    promotions = load_promotions(ROOT / "config" / "examples" / "multi-account")
    assert [stage.name for stage in promotions["dev"].stages] == ["staging"]
    staging_source = promotions["staging"].source
    assert staging_source is not None and staging_source.name == "dev"
    assert (staging_source.account, promotions["dev"].stages[0].account) == ("222222222222", "333333333333")
    assert promotions["prod"].source is not None and promotions["prod"].source.name == "prod"
    assert promotions["dev"].source is None


def _folder(tmp_path: Path, **changes: dict) -> Path:
    for name in ("dev", "staging", "prod"):
        data = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
        for key, value in changes.get(name, {}).items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        _write(tmp_path, data, name)
    return tmp_path


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"dev": {"deploy": {"stages": ["dev", "uat"]}}}, "no environment 'uat' (environments: dev, staging, prod)"),
        ({"staging": {"endpoint": None, "monitoring": None}}, "staging has no endpoint section to deploy to"),
        (
            {"dev": {"deploy": {"stages": ["dev", "prod"]}}},
            "monitoring: no registry deploys to staging, so nothing would be monitored",
        ),
        (
            {"prod": {"deploy": {"stages": ["prod"]}}},
            "prod is already deployed to by dev; an endpoint has one registry",
        ),
    ],
)
def test_a_promotion_that_cannot_work_names_the_file_and_stage(tmp_path: Path, changes: dict, problem: str) -> None:
    from stacks.config import load_promotions

    folder = _folder(tmp_path, **changes)
    with pytest.raises(ConfigError) as excinfo:
        load_promotions(folder)
    message = str(excinfo.value)
    assert "deploy.stages" in message and problem in message
    assert message.startswith(str(folder))


def test_a_stage_in_another_region_is_refused_with_the_reason(tmp_path: Path) -> None:
    from stacks.config import load_promotions

    prod = yaml.safe_load((ROOT / "config" / "prod.yaml").read_text())
    prod["region"] = "eu-central-1"
    prod["networking"]["availability_zones"] = ["eu-central-1a", "eu-central-1b"]
    folder = _folder(tmp_path, prod={k: prod[k] for k in ("region", "networking")})
    with pytest.raises(ConfigError, match=r"dev.yaml: deploy.stages: prod is in eu-central-1.*within its region"):
        load_promotions(folder)


# --- a valid file with its fields damaged: a config, or one error naming the file and the field ---------------


def _leaf_paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path in the parsed dev.yaml (mappings and list items), parents before children."""
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += _leaf_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths += _leaf_paths(value, (*prefix, index))
    return paths


DEV = yaml.safe_load(DEV_BYTES)
DEV_PATHS = _leaf_paths(DEV)
_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


@st.composite
def damaged_configs(draw: st.DrawFn) -> tuple[dict, list[tuple]]:
    """dev.yaml with 1-3 fields dropped, retyped, made unicode, huge or cut short; and the paths touched."""
    import copy

    data = copy.deepcopy(DEV)
    touched = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(DEV_PATHS))
        holder: object = data
        for key in path[:-1]:
            holder = holder[key] if isinstance(holder, (dict, list)) and _has(holder, key) else None
        if not isinstance(holder, (dict, list)) or not _has(holder, path[-1]):
            continue
        key = path[-1]
        action = draw(st.sampled_from(["drop", "type", "unicode", "huge", "cut", "extra"]))
        if action == "drop":
            holder.pop(key)
        elif action == "type":
            holder[key] = draw(_yaml_values)
        elif action == "unicode":
            holder[key] = draw(st.text(min_size=1, max_size=30))
        elif action == "huge":
            holder[key] = draw(st.sampled_from(["x" * 20_000, ["eu-west-1a"] * 2_000, 10**400]))
        elif action == "cut" and isinstance(holder[key], str):
            holder[key] = holder[key][: draw(st.integers(0, max(0, len(holder[key]) - 1)))]
        elif action == "extra" and isinstance(holder, dict):
            extra = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
            holder[extra] = draw(_yaml_values)
            path = (*path[:-1], extra)
        else:
            continue
        touched.append(path)
    return data, touched


def _has(holder: dict | list, key: object) -> bool:
    return key in holder if isinstance(holder, dict) else isinstance(key, int) and 0 <= key < len(holder)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damaged=damaged_configs(), unicode_out=st.booleans())
def test_any_damaged_field_gives_a_config_or_an_error_naming_the_file_and_the_field(
    tmp_path: Path, damaged: tuple[dict, list[tuple]], unicode_out: bool
) -> None:
    data, touched = damaged
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=unicode_out), encoding="utf-8")
    try:
        config = load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        if message.startswith(f"{path}: invalid configuration"):
            wheres = [line.strip().split(": ", 1)[0] for line in message.splitlines()[1:]]
            assert wheres and all(wheres), message
            # Each problem is named at a field: one the damage touched, or an ancestor or sibling rule of it.
            roots = {str(p[0]) for p in touched if p}
            # A rule over several fields names them all: "deploy, model_build: ...".
            named = {field.strip().split(".")[0] for w in wheres for field in w.split(",")}
            assert named & roots or "(top level)" in named or not roots, (touched, message)
    else:
        assert config.name == "dev"  # the damage was valid (an optional field dropped, a value still allowed)


@pytest.mark.parametrize("where", ["tags:\n  bomb: *a8", "studio:\n  users: *a8", "networking: *a8"])
def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path, where: str) -> None:
    import time

    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]  # 9**9 leaves, if expanded
    text = DEV_BYTES.decode()
    key = where.split(":", 1)[0]
    body = "\n".join(line for line in text.splitlines() if not line.startswith(f"{key}:"))
    path = tmp_path / "dev.yaml"
    path.write_text("\n".join(lines) + "\n" + body + "\n" + where + "\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)
    assert time.monotonic() - started < 2.0


def test_arns_and_the_registry_follow_the_region_s_partition() -> None:
    dev = load_config(ROOT / "config" / "dev.yaml")
    assert (dev.partition, dev.registry) == ("aws", "111111111111.dkr.ecr.eu-west-1.amazonaws.com")
    china = dev.model_copy(update={"region": "cn-north-1"})
    assert (china.partition, china.registry) == ("aws-cn", "111111111111.dkr.ecr.cn-north-1.amazonaws.com.cn")
    assert dev.model_copy(update={"region": "us-gov-west-1"}).partition == "aws-us-gov"

"""Environment config: every shipped file validates; bad files fail with file, field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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


def test_selecting_one_environment_loads_only_it() -> None:
    assert [c.name for c in load_environments(ROOT / "config", "staging")] == ["staging"]


def test_unknown_environment_is_named() -> None:
    with pytest.raises(ConfigError, match=r"-c env=qa: unknown environment; expected one of dev, staging, prod"):
        load_environments(ROOT / "config", "qa")


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"{tmp_path}/dev.yaml: configuration file not found"):
        load_environments(tmp_path, "dev")


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
            "(top level)",
            "availability zone 'us-east-1a' is not in region 'eu-west-1'",
        ),
        (
            lambda d: d["retention"].update(removal_policy="retain"),
            "retention",
            "auto_delete_objects: true requires removal_policy: destroy",
        ),
        (lambda d: d["retention"].update(removal_policy="snapshot"), "retention.removal_policy", "Input should be"),
        (lambda d: d["retention"].update(log_retention_days=31), "retention", "must be one of CloudWatch's values"),
        (
            lambda d: d["retention"].update(key_pending_window_days=3),
            "retention.key_pending_window_days",
            "greater than or equal to 7",
        ),
        (lambda d: d.update(tooling_account=d["account"]), "(top level)", "tooling_account must differ from account"),
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
    with pytest.raises(ConfigError, match=r"networking: Value error, .*one subnet and route table per zone"):
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

"""Cluster discovery and the leader's collection of worker results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_code.distributed import Cluster, ResultsCollector, send_results
from ml_code.serving.readiness import free_port


def test_cluster_comes_from_sagemakers_resource_config(tmp_path: Path) -> None:
    (tmp_path / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-10", "algo-2", "algo-1"]})
    )
    cluster = Cluster.from_env({}, tmp_path)
    assert cluster.hosts == ("algo-1", "algo-2", "algo-10")
    assert (cluster.leader, cluster.rank, cluster.size, cluster.is_leader) == ("algo-1", 1, 3, False)


def test_variables_override_the_file_and_one_instance_is_the_default(tmp_path: Path) -> None:
    assert Cluster.from_env({}, tmp_path) == Cluster(hosts=("algo-1",), current="algo-1")
    env = {"SM_HOSTS": '["algo-1","algo-2"]', "SM_CURRENT_HOST": "algo-2"}
    assert Cluster.from_env(env, tmp_path).rank == 1
    with pytest.raises(ValueError, match=r"current host 'algo-9' is not among the hosts"):
        Cluster.from_env({"SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-9"}, tmp_path)


def test_leader_collects_every_worker() -> None:
    port = free_port()
    collector = ResultsCollector(port, {"algo-2", "algo-3"})
    for host in ("algo-3", "algo-2"):
        send_results(("127.0.0.1", port), host, {"trials": [{"host": host}]}, timeout=5)
    assert collector.wait(timeout=5) == {"algo-2": [{"host": "algo-2"}], "algo-3": [{"host": "algo-3"}]}


def test_a_silent_worker_fails_the_leader_naming_it() -> None:
    collector = ResultsCollector(free_port(), {"algo-2"})
    with pytest.raises(RuntimeError, match=r"workers \['algo-2'\] did not report their trials within 0 s"):
        collector.wait(timeout=0.3)


def test_a_worker_error_fails_the_leader_with_it() -> None:
    port = free_port()
    collector = ResultsCollector(port, {"algo-2", "algo-3"})
    send_results(("127.0.0.1", port), "algo-2", {"error": "input channel 'validation' is missing"}, timeout=5)
    with pytest.raises(RuntimeError, match=r"worker algo-2 failed: input channel 'validation' is missing"):
        collector.wait(timeout=5)


def test_an_unreachable_leader_is_reported() -> None:
    with pytest.raises(RuntimeError, match=r"leader at http://127.0.0.1:\d+/results/algo-2 unreachable"):
        send_results(("127.0.0.1", free_port()), "algo-2", {"trials": []}, timeout=0.5)

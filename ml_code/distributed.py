"""Multi-instance training: the candidate search split across the instances of one training job.

SageMaker starts the same image on every instance and describes the cluster in
``/opt/ml/input/config/resourceconfig.json`` (``current_host``, ``hosts``). Every
instance gets the whole data set (FullyReplicated) and fits every n-th planned trial. The
leader (the first host, ``algo-1``) collects the workers' scores over HTTP, inside the
job's security group, then blends, selects, refits and alone writes ``/opt/ml/model``.
The result is the same leaderboard a single instance would compute, in less wall time.

For local runs, ``SM_HOSTS`` / ``SM_CURRENT_HOST`` override the file,
``MLOPS_HOST_ADDRESSES`` (a JSON object) maps host names to addresses, and
``MLOPS_LEADER_PORT`` moves the leader's port.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_LEADER_PORT = 7777


@dataclass(frozen=True)
class Cluster:
    """The instances of one training job, and which one this is."""

    hosts: tuple[str, ...]
    current: str

    @property
    def leader(self) -> str:
        return self.hosts[0]

    @property
    def is_leader(self) -> bool:
        return self.current == self.leader

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current)

    @property
    def size(self) -> int:
        return len(self.hosts)

    @classmethod
    def from_env(cls, env: Mapping[str, str], config_dir: Path) -> Cluster:
        """SM_HOSTS/SM_CURRENT_HOST, else resourceconfig.json, else a single instance.

        Raises:
            ValueError: the current host is not among the hosts.
        """
        if "SM_HOSTS" in env:
            hosts = json.loads(env["SM_HOSTS"])
            current = env.get("SM_CURRENT_HOST", hosts[0])
        elif (config_dir / "resourceconfig.json").is_file():
            resource = json.loads((config_dir / "resourceconfig.json").read_text())
            hosts, current = resource["hosts"], resource["current_host"]
        else:
            hosts, current = ["algo-1"], "algo-1"
        ordered = tuple(sorted(hosts, key=_host_order))
        if current not in ordered:
            raise ValueError(f"current host {current!r} is not among the hosts {list(ordered)}")
        return cls(hosts=ordered, current=current)


def _host_order(host: str) -> tuple[int, str]:
    # algo-2 before algo-10
    number = host.rsplit("-", 1)[-1]
    return (int(number), host) if number.isdigit() else (10**9, host)


def leader_address(cluster: Cluster, env: Mapping[str, str]) -> tuple[str, int]:
    addresses = json.loads(env.get("MLOPS_HOST_ADDRESSES", "{}"))
    return addresses.get(cluster.leader, cluster.leader), int(env.get("MLOPS_LEADER_PORT", DEFAULT_LEADER_PORT))


class ResultsCollector:
    """The leader's endpoint where workers deliver their trials (POST /results/<host>)."""

    def __init__(self, port: int, expected: set[str]) -> None:
        self.expected = set(expected)
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.failures: dict[str, str] = {}
        self.skipped: dict[str, int] = {}  # trials each worker could not complete within the time budget
        self._done = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                host = self.path.rsplit("/", 1)[-1]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with collector._done:
                    if host not in collector.expected:
                        self.send_response(404)
                    else:
                        if "error" in body:
                            collector.failures[host] = str(body["error"])
                        else:
                            collector.results[host] = body["trials"]
                            collector.skipped[host] = int(body.get("skipped", 0))
                        collector._done.notify_all()
                        self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # workers reach it on the job's network
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def wait(self, timeout: float) -> dict[str, list[dict[str, Any]]]:
        """The trials of every worker.

        Raises:
            RuntimeError: a worker reported a failure, or not every worker reported in time.
        """
        deadline = time.monotonic() + timeout
        with self._done:
            while not self.failures and set(self.results) | set(self.failures) != self.expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sorted(self.expected - set(self.results))
                    raise RuntimeError(f"workers {missing} did not report their trials within {timeout:.0f} s")
                self._done.wait(remaining)
        self.server.shutdown()
        if self.failures:
            host, error = sorted(self.failures.items())[0]
            raise RuntimeError(f"worker {host} failed: {error}")
        return self.results


def send_results(address: tuple[str, int], host: str, payload: dict[str, Any], timeout: float) -> None:
    """Deliver this worker's trials (or its error) to the leader, retrying until it listens.

    Raises:
        RuntimeError: the leader could not be reached within ``timeout`` seconds.
    """
    url = f"http://{address[0]}:{address[1]}/results/{host}"
    body = json.dumps(payload).encode()
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:  # the leader, inside the job's VPC
                response.read()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"leader at {url} unreachable for {timeout:.0f} s: {exc}") from None
            time.sleep(1.0)

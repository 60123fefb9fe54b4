"""Endpoints on this machine for ``make demo``: the real model server behind a router that switches blue/green.

In AWS a stage's endpoint is a SageMaker endpoint that a CloudFormation update moves to a new
endpoint config, with SageMaker's guardrails shifting traffic. Here a stage is:

- a **router** on a fixed local port that forwards SageMaker's serving contract (``/invocations``,
  ``/ping``) to the current server, and counts what it forwards;
- one ``python -m ml_code.serve`` process per deployed version, with data capture on, writing
  SageMaker's JSONL under ``<capture root>/<endpoint>/<variant>/yyyy/mm/dd/hh/``.

An update starts the new ("green") server from the version's artifact, waits for ``/ping``, moves
new requests to it in one step, lets the old ("blue") server finish what it is answering, bakes,
then stops it (SIGTERM: the server answers and captures what it holds, then exits). No request is
refused during the switch. ``LocalStage`` gives the deploy functions this endpoint through the
same interface the CloudFormation stage has, so the deploy's own code decides and verifies.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambdas"))  # the deploy functions, as Lambda sees them

from model_deploy.events import StageSettings  # noqa: E402
from model_deploy.registry import PackageInfo  # noqa: E402
from model_deploy.stage import (  # noqa: E402
    DEPLOY_ID,
    MODEL_PACKAGE_ARN,
    Served,
    StackProgress,
    StackState,
    Stage,
    UpdateState,
)

from ml_code.serving.readiness import free_port, start_server, stop_server  # noqa: E402
from tools.local_endpoint import LocalRuntime  # noqa: E402

VARIANT = "primary"


@dataclass
class Backend:
    """One served version: its server process and what it serves."""

    port: int
    process: subprocess.Popen[str]
    package_arn: str
    config_name: str
    model_dir: Path
    in_flight: int = 0


class Router:
    """Forwards requests to the current backend; the switch is one assignment under a lock."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.current: Backend | None = None
        self.lock = threading.Lock()
        self.forwarded = 0
        self.failed = 0
        router = self

        local = threading.local()  # each client connection's thread keeps its connection to each backend

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in one segment: no 40 ms wait for a delayed ACK (Nagle's algorithm).
            disable_nagle_algorithm = True

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with router.lock:
                    backend = router.current
                    if backend is not None:
                        backend.in_flight += 1
                if backend is None:
                    self._answer(503, b"no model deployed\n", "text/plain")
                    return
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    response, payload = self._exchange(backend.port, method, body, headers)
                    self._answer(response.status, payload, response.getheader("Content-Type", "text/plain"))
                    router.forwarded += 1
                except OSError as exc:
                    router.failed += 1
                    self._answer(502, f"backend failed: {exc}\n".encode(), "text/plain")
                finally:
                    with router.lock:
                        backend.in_flight -= 1

            def _exchange(
                self, port: int, method: str, body: bytes | None, headers: dict[str, str]
            ) -> tuple[http.client.HTTPResponse, bytes]:
                connections = getattr(local, "connections", None)
                if connections is None:
                    connections = local.connections = {}
                for attempt in (1, 2):
                    connection = connections.get(port)
                    if connection is None:
                        connection = connections[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    try:
                        connection.request(method, self.path, body=body, headers=headers)
                        response = connection.getresponse()
                        return response, response.read()
                    except (http.client.HTTPException, ConnectionError):
                        connection.close()  # the backend closed an idle keep-alive connection: reconnect once
                        connections.pop(port, None)
                        if attempt == 2:
                            raise
                raise AssertionError("unreachable")

            def _answer(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                self._forward("POST")

            def do_GET(self) -> None:
                self._forward("GET")

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Forward)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def switch(self, backend: Backend) -> Backend | None:
        with self.lock:
            old, self.current = self.current, backend
        return old

    def drain(self, backend: Backend, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if backend.in_flight == 0:
                    return
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LocalEndpoint:
    """One stage's endpoint: a router and the servers behind it (see the module docstring)."""

    def __init__(self, name: str, *, work_dir: Path, capture_root: Path | None, bake_seconds: float = 1.0) -> None:
        self.name, self.work_dir, self.capture_root, self.bake_seconds = name, work_dir, capture_root, bake_seconds
        self.router = Router(free_port())
        self.backends: list[Backend] = []
        self.state: StackProgress = "complete"
        self.reason = ""
        self.switches: list[tuple[float, str]] = []  # (time, package) of each switch, for the timeline
        self.servers_started = 0
        self._rollouts: list[threading.Thread] = []
        self._closed = False

    def _start_server(self, model_dir: Path) -> tuple[int, subprocess.Popen[str]]:
        args = []
        if self.capture_root is not None:
            args = ["--capture-dir", str(self.capture_root), "--endpoint-name", self.name, "--variant", VARIANT]
        # A file, not a pipe: nobody reads a long-running server's stderr, and a full pipe would block it.
        self.servers_started += 1
        log = self.work_dir / f"{self.name}-{self.servers_started}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Its own session: Ctrl-C in the terminal reaches the demo, which stops its servers.
            return start_server(model_dir, workers=1, args=args, log=log, timeout=120, new_session=True)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; its log: {log.read_text(errors='replace')[-2000:]}") from None

    def deploy(self, model_dir: Path, package_arn: str, config_name: str) -> None:
        """Blue/green to ``model_dir`` in the background; ``state`` says when it is done."""
        self.state, self.reason = "in_progress", ""

        def run() -> None:
            try:
                port, process = self._start_server(model_dir)
                green = Backend(port, process, package_arn, config_name, model_dir)
                if self._closed:  # closed (Ctrl-C) while the server started: nobody else will stop it
                    stop_server(process, timeout=30)
                    return
                self.backends.append(green)
                blue = self.router.switch(green)
                self.switches.append((time.time(), package_arn))
                if blue is not None:
                    self.router.drain(blue)
                    time.sleep(self.bake_seconds)
                    self._stop(blue)
                self.state = "complete"
            except (OSError, RuntimeError, TimeoutError) as exc:
                self.state, self.reason = "failed", f"the new server did not start: {exc}"

        rollout = threading.Thread(target=run, daemon=True)
        self._rollouts.append(rollout)
        rollout.start()

    def _stop(self, backend: Backend) -> None:
        stop_server(backend.process, timeout=30)
        if backend in self.backends:
            self.backends.remove(backend)

    def close(self) -> None:
        """Stop every server, those of a rollout still starting one included (it is waited for)."""
        self._closed = True
        for rollout in self._rollouts:
            rollout.join(timeout=150)  # start_server gives up (and kills the server) after 120 s
        for backend in list(self.backends):
            self._stop(backend)
        self.router.close()


class LocalStage(Stage):
    """A stage of the deploy served by a ``LocalEndpoint`` instead of a CloudFormation stack.

    The deploy's decisions (unchanged, busy, what is served, rollbacks, the smoke test) are the
    deploy's own code; only the stack and the endpoint are local.
    """

    def __init__(
        self,
        settings: StageSettings,
        *,
        endpoint: LocalEndpoint,
        sagemaker: Any,
        s3: Any,
        on_update: Any = None,
    ) -> None:
        """``on_update(package, deploy_id)``: what else a CloudFormation update of the stack would do (its
        monitoring's baseline custom resource), called before the new server starts."""
        super().__init__(
            settings,
            cloudformation=None,
            sagemaker=sagemaker,
            runtime=LocalRuntime({settings.endpoint_name: endpoint.router.port}),
        )
        self.endpoint, self.s3, self.on_update = endpoint, s3, on_update
        self.parameters: dict[str, str] = {MODEL_PACKAGE_ARN: "", DEPLOY_ID: "none"}

    def stack(self) -> StackState:
        current = self.endpoint.router.current
        status = {
            "in_progress": "UPDATE_IN_PROGRESS",
            "complete": "UPDATE_COMPLETE",
            "failed": "UPDATE_ROLLBACK_COMPLETE",
        }
        outputs = {"EndpointName": self.settings.endpoint_name}
        if current is not None:
            outputs |= {"EndpointConfigName": current.config_name, "ServedModelPackageArn": current.package_arn}
        return StackState(status=status[self.endpoint.state], parameters=dict(self.parameters), outputs=outputs)

    def update(self, package: PackageInfo, deploy_id: str) -> UpdateState:
        if self.endpoint.state == "in_progress":
            return "busy"
        if self.parameters[MODEL_PACKAGE_ARN] == package.version.arn:
            return "unchanged"
        model_dir = self._download(package.version.arn, deploy_id)
        if self.on_update is not None:
            self.on_update(package, deploy_id)
        self.parameters = {MODEL_PACKAGE_ARN: package.version.arn, DEPLOY_ID: deploy_id}
        config = f"{self.settings.name_prefix}-v{package.version.number}-{deploy_id}"
        self.endpoint.deploy(model_dir, package.version.arn, config)
        return "started"

    def _download(self, package_arn: str, deploy_id: str) -> Path:
        """The version's model.tar.gz, as SageMaker downloads it to /opt/ml/model."""
        package = self.sagemaker.describe_model_package(ModelPackageName=package_arn)
        url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        bucket, _, key = url.removeprefix("s3://").partition("/")
        target = self.endpoint.work_dir / f"{self.settings.name}-v{package_arn.rsplit('/', 1)[1]}-{deploy_id}"
        target.mkdir(parents=True, exist_ok=True)
        archive = target / "model.tar.gz"
        self.s3.download_file(bucket, key, str(archive))
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        archive.unlink()
        return target

    def progress(self) -> tuple[StackProgress, str]:
        return self.endpoint.state, self.endpoint.reason or self.stack().status

    def served(self) -> Served:
        current = self.endpoint.router.current
        if current is None:
            raise KeyError(f"{self.settings.endpoint_name} serves nothing yet")
        return Served(
            endpoint_name=self.settings.endpoint_name,
            status="InService",
            endpoint_config=current.config_name,
            model_name=current.config_name,
            package_arn=current.package_arn,
        )

    def clean_up(self) -> list[str]:
        current = self.endpoint.router.current
        deleted = []
        for path in sorted(self.endpoint.work_dir.glob(f"{self.settings.name}-v*")):
            if current is None or path != current.model_dir:
                for item in sorted(path.rglob("*"), reverse=True):
                    item.unlink() if item.is_file() else item.rmdir()
                path.rmdir()
                deleted.append(path.name)
        return deleted

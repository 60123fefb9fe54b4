"""Local stand-ins for CloudFormation's response URL; the moto server comes from tests/integration/conftest.py.

The handler accepts only https response URLs, as in AWS, and has no switch to accept
anything else. So the stand-in is an https server on 127.0.0.1 with a certificate made
for the session, and the tests trust that certificate the way any OpenSSL client is told
to, through ``SSL_CERT_FILE``: the code under test runs its production TLS path unchanged.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools.local_aws.events import job_state_change

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "lambdas"))  # how Lambda sees the asset: packages at the root


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class ResponseSink:
    """Collects the documents a custom resource PUTs to its https response URL.

    ``fail_first`` answers that many PUTs with 503 first (as S3 does when it sheds load).
    """

    def __init__(self, tls: tuple[Path, Path] | None, fail_first: int = 0) -> None:
        self.documents: list[dict] = []
        self.paths: list[str] = []
        self.attempts = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                payload = self.rfile.read(length)
                sink.attempts += 1
                sink.paths.append(self.path)
                if sink.attempts <= fail_first:
                    self.send_response(503)
                else:
                    sink.documents.append(json.loads(payload))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        # Shaped like a pre-signed URL: its escapes must reach the server unchanged.
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/response?X-Amz-Signature=abc%2Fdef"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def trust_test_certificate(tls_files, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))


@pytest.fixture
def response_sink(tls_files, trust_test_certificate) -> Iterator[ResponseSink]:
    sink = ResponseSink(tls_files)
    yield sink
    sink.server.shutdown()


@pytest.fixture
def flaky_sink(tls_files, trust_test_certificate) -> Iterator[ResponseSink]:
    sink = ResponseSink(tls_files, fail_first=2)
    yield sink
    sink.server.shutdown()


@pytest.fixture
def plain_http_sink() -> Iterator[ResponseSink]:
    sink = ResponseSink(None)
    yield sink
    sink.server.shutdown()


@pytest.fixture
def closed_port_url() -> str:
    """An https URL on 127.0.0.1 where nothing listens: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"https://127.0.0.1:{port}/response"


@pytest.fixture
def silent_server_url() -> Iterator[str]:
    """An https URL whose server accepts connections and never answers (a read timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/response"
    listener.close()


class Clock:
    """A fake clock for deadlines and backoff: sleeping advances it and records the wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@dataclass
class LambdaContextStandIn:
    """What Lambda passes a handler as its context: the fields Powertools reads."""

    function_name: str = "mlops-dev-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:mlops-dev-function"
    aws_request_id: str = "request-1"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> LambdaContextStandIn:
    return LambdaContextStandIn()


def set_environment(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, values: dict[str, str]) -> None:
    """A function's environment as Lambda gives it, its AWS calls pointed at the moto server."""
    for name, value in {
        **values,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "AWS-MLOps",
    }.items():
        monkeypatch.setenv(name, value)


def processing_job_state_change(detail: dict, status: str = "Completed", account: str = "123456789012") -> dict:
    """EventBridge's "SageMaker Processing Job State Change" for a job's description (DescribeProcessingJob's
    fields; SageMaker gives times as epoch milliseconds), in eu-west-1."""
    return job_state_change(detail, account, "eu-west-1", status)


def without_monitoring(template: dict, stage: object) -> dict:
    """An endpoint template without its monitoring (``stacks/monitoring``), for moto's CloudFormation.

    moto cannot create the monitoring's functions (their code is an asset in the CDK bootstrap bucket,
    their layer an SSM parameter under AWS's reserved /aws/ names) nor run its custom resource. Removed:
    the resources of ``stage.endpoint.monitoring``, the outputs and the statements of other policies that name them (the
    deploy role's monitoring grants), and the parameters nothing refers to any more, except those a deploy
    sets (they stay, so the deploy's parameters are the template's).
    """
    import json

    import aws_cdk as cdk

    from stacks.endpoint.package import PARAMETERS

    out = json.loads(json.dumps(template))
    monitoring = getattr(stage.endpoint, "monitoring", None)  # type: ignore[attr-defined]
    if monitoring is None:
        return out
    stack = cdk.Stack.of(monitoring)
    removed = {stack.resolve(c.logical_id) for c in monitoring.node.find_all() if isinstance(c, cdk.CfnResource)}
    out["Resources"] = {lid: r for lid, r in out["Resources"].items() if lid not in removed}

    def names_removed(value: object) -> bool:
        text = json.dumps(value)
        return any(f'"Ref": "{lid}"' in text or f'["{lid}", ' in text for lid in removed)

    for resource in out["Resources"].values():
        document = resource.get("Properties", {}).get("PolicyDocument")
        if isinstance(document, dict):
            document["Statement"] = [s for s in document["Statement"] if not names_removed(s)]
        if "DependsOn" in resource:
            kept = [d for d in resource["DependsOn"] if d not in removed]
            if kept:
                resource["DependsOn"] = kept
            else:
                del resource["DependsOn"]
    out["Outputs"] = {name: o for name, o in out.get("Outputs", {}).items() if not names_removed(o)}
    text = json.dumps(out["Resources"])
    out["Parameters"] = {
        name: p
        for name, p in out.get("Parameters", {}).items()
        if name in PARAMETERS or name == "BootstrapVersion" or f'"Ref": "{name}"' in text
    }
    return out


# The deploy's world (``deploy_world.py``) for every test module of the deploy functions. Imported last:
# that module uses ``without_monitoring`` above.
from tests.integration.lambdas.deploy_world import world  # noqa: E402, F401

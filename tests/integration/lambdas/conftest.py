"""A local stand-in for CloudFormation's response URL; the moto server comes from tests/integration/conftest.py."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "lambdas"))  # how Lambda sees the asset: packages at the root


class ResponseSink:
    """Collects the documents a custom resource PUTs to its response URL."""

    def __init__(self) -> None:
        self.documents: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                sink.documents.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def response_sink() -> Iterator[ResponseSink]:
    sink = ResponseSink()
    yield sink
    sink.server.shutdown()

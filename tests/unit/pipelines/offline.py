"""Proof that a definition is built offline: any socket opened meanwhile fails the test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_network() -> Iterator[None]:
    """Refuse every socket connection inside the block, naming the address that was tried."""
    real_connect = socket.socket.connect

    def refuse(self, address):  # type: ignore[no-untyped-def]
        raise AssertionError(f"network access while building the definition: {address}")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]

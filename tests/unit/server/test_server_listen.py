"""Binding the server's port: the next free one for ``stepwise dev``, a clear error else."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from stepwise.server.server import CannotListen, bind_listener


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_free_port_is_used_as_given() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with bind_listener("127.0.0.1", port, attempts=1) as sock:
        assert sock.getsockname()[1] == port


def test_a_taken_port_moves_to_a_later_free_one(taken: int) -> None:
    with bind_listener("127.0.0.1", taken, attempts=20) as sock:
        port = sock.getsockname()[1]
        assert taken < port < taken + 20
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # it listens


def test_without_fallback_a_taken_port_is_a_clear_error(taken: int) -> None:
    with pytest.raises(CannotListen, match=f"port {taken} on 127.0.0.1 already in use"):
        bind_listener("127.0.0.1", taken, attempts=1)

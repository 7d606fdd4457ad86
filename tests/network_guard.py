"""A guard that fails a test which opens a network connection (visionbench never downloads unasked)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def blocked_network() -> Iterator[None]:
    """Within the block, an IPv4/IPv6 ``connect`` raises ``AssertionError``; local (Unix) sockets,
    which loader workers use to pass file descriptors, stay allowed."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(real: Callable[..., object]) -> Callable[..., object]:
        def checked(self: socket.socket, address: object) -> object:
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise AssertionError(f"a test tried to open a network connection to {address!r}")
            return real(self, address)
        return checked

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guard(connect))
        patch.setattr(socket.socket, "connect_ex", guard(connect_ex))
        yield


def refuse_network_and_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any socket connection, name lookup or ``torch.hub`` download fail the test."""
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was touched")

    for owner, name in ((socket.socket, "connect"), (socket, "create_connection"), (socket, "getaddrinfo"),
                        (torch.hub, "load_state_dict_from_url"), (torch.hub, "download_url_to_file")):
        monkeypatch.setattr(owner, name, refuse)

"""`ledger serve --host NAME` listens at every address the name resolves to, on one port:
`localhost` is 127.0.0.1 and ::1 where the machine's resolver says so, and a client that
tries ::1 first (Node does) was refused when only the first address was bound."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from adapters.cli import serve


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="this machine cannot bind ::1")


@pytest.fixture
def dual_stack_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A name the resolver gives as 127.0.0.1 then ::1 (as many /etc/hosts give localhost)."""
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "both.test":
            return real(host, port, *args, **kwargs)
        stream = (socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
        return [
            (socket.AF_INET, *stream, ("127.0.0.1", port)),
            (socket.AF_INET6, *stream, ("::1", port, 0, 0)),
            (socket.AF_INET, *stream, ("127.0.0.1", port)),  # resolvers repeat themselves
        ]

    monkeypatch.setattr(serve.socket, "getaddrinfo", resolve)
    yield "both.test"


def _answers(family: socket.AddressFamily, address: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        return client.connect_ex((address, port)) == 0


@needs_ipv6
@pytest.mark.parametrize("port", [0, None], ids=["any port", "a given port"])
def test_a_name_listens_at_each_of_its_addresses_on_one_port(dual_stack_name: str, port: int | None) -> None:
    if port is None:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as free:
            free.bind(("::1", 0))
            port = free.getsockname()[1]
    sockets = serve._listening(dual_stack_name, port)
    try:
        assert [(s.family, s.getsockname()[0]) for s in sockets] == [
            (socket.AF_INET, "127.0.0.1"),
            (socket.AF_INET6, "::1"),
        ]
        taken = {s.getsockname()[1] for s in sockets}
        assert len(taken) == 1 and (port == 0 or taken == {port})
        (bound,) = taken
        assert _answers(socket.AF_INET, "127.0.0.1", bound)
        assert _answers(socket.AF_INET6, "::1", bound)
        assert sockets[1].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert all(s.get_inheritable() for s in sockets)  # handed to the workers
    finally:
        for sock in sockets:
            sock.close()


@needs_ipv6
def test_a_port_taken_at_one_of_the_addresses_is_one_usage_error_and_holds_nothing(dual_stack_name: str) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            typer.BadParameter, match=re.escape(f"cannot listen on {dual_stack_name}:{port}: Address already in use")
        ):
            serve._listening(dual_stack_name, port)
    # The IPv4 socket bound before the failure was closed: the port is free there.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
        again.bind(("127.0.0.1", port))


def test_an_address_is_bound_as_given_and_an_unknown_name_is_the_hosts_error() -> None:
    (sock,) = serve._listening("127.0.0.1", 0)
    with sock:
        assert sock.family == socket.AF_INET
    with pytest.raises(typer.BadParameter, match=re.escape("cannot listen on no-such-host.invalid:0")) as refused:
        serve._listening("no-such-host.invalid", 0)
    assert refused.value.param_hint == "'--host'"


def test_an_address_of_a_family_the_machine_cannot_bind_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with an IPv6 address on a machine without IPv6 still serves on the rest."""
    stream = (socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
    monkeypatch.setattr(
        serve.socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, *stream, ("127.0.0.1", port)),
            (socket.AF_INET6, *stream, ("2001:db8::1", port, 0, 0)),  # documentation prefix: not this machine's
        ],
    )
    sockets = serve._listening("v4-here.test", 0)
    try:
        assert [s.getsockname()[0] for s in sockets] == ["127.0.0.1"]
    finally:
        for sock in sockets:
            sock.close()

"""The stand-in's SQL listener (``mxha.lab.sql_forwarder``) over real sockets on loopback: bytes
pass both ways unchanged, the master is asked once per connection, and a connection with no master
to go to is closed at once."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from mxha.lab.sql_forwarder import SqlForwarder, master_from_servers


class Echo(socketserver.ThreadingTCPServer):
    """A server that answers every chunk with its name and the chunk: which server a client reached
    and what arrived there."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: bytes) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while data := self.request.recv(65536):
                    self.request.sendall(name + b":" + data)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", int(self.server_address[1])

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[Echo, Echo]]:
    one, two = Echo(b"one"), Echo(b"two")
    yield one, two
    one.close()
    two.close()


def exchange(port: int, payload: bytes) -> bytes:
    """Send ``payload``, then read until the other side ends; a connection closed under us (reset,
    or closed before we finished sending) ends the reading with what came before it."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        try:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            while data := conn.recv(65536):
                out += data
        except OSError as exc:  # a reset, or ENOTCONN after the other side closed
            if isinstance(exc, TimeoutError):
                raise
        return out


def test_each_connection_goes_to_the_master_of_the_moment_unchanged(servers: tuple[Echo, Echo]) -> None:
    one, two = servers
    master: list[tuple[str, int] | None] = [one.address]
    asked = []

    def route() -> tuple[str, int] | None:
        asked.append(master[0])
        return master[0]

    fwd = SqlForwarder("127.0.0.1", 0, route, connect_timeout=2).start()
    try:
        payload = bytes(range(256)) * 300  # every byte value, more than one read's worth
        assert exchange(fwd.port, payload).startswith(b"one:")
        echoed = exchange(fwd.port, payload)
        assert echoed.replace(b"one:", b"") == payload
        master[0] = two.address  # a failover: the next connection goes to the new master
        assert exchange(fwd.port, b"x") == b"two:x"
        assert asked[0] == one.address and asked[-1] == two.address  # asked at each connection
        assert fwd.forwarded == 3 and fwd.refused == 0 and fwd.cut_off == 0
    finally:
        fwd.stop()


def test_no_master_closes_the_connection_without_a_byte(servers: tuple[Echo, Echo]) -> None:
    fwd = SqlForwarder("127.0.0.1", 0, lambda: None, connect_timeout=2).start()
    try:
        assert exchange(fwd.port, b"hello") == b""
        assert fwd.refused == 1 and fwd.forwarded == 0
    finally:
        fwd.stop()


def test_a_master_that_does_not_answer_closes_the_connection(servers: tuple[Echo, Echo]) -> None:
    one, _ = servers
    address = one.address
    one.close()  # nothing listens there any more
    fwd = SqlForwarder("127.0.0.1", 0, lambda: address, connect_timeout=2).start()
    try:
        assert exchange(fwd.port, b"hello") == b""
        assert fwd.refused == 1
    finally:
        fwd.stop()


def server_doc(name: str, state: str, port: int) -> dict[str, object]:
    return {"id": name, "attributes": {"state": state, "parameters": {"address": "198.51.100.21", "port": port}}}


def test_the_master_is_the_server_maxscale_shows_master_and_running() -> None:
    docs = [server_doc("server1", "Slave, Running", 1), server_doc("server2", "Master, Running", 2)]
    assert master_from_servers(docs) == ("198.51.100.21", 2)
    # a master MaxScale cannot reach is shown Down: no master to route to (recorded: "Down" alone)
    assert master_from_servers([server_doc("server1", "Down", 1), server_doc("server2", "Slave, Running", 2)]) is None
    assert master_from_servers([]) is None


@pytest.mark.parametrize("then", ["none", "other"])
def test_a_session_whose_server_stops_being_the_master_is_closed(servers: tuple[Echo, Echo], then: str) -> None:
    """readwritesplit's default (master_failure_mode=fail_instantly): a session on a master that is
    lost (no master now, or another one promoted) ends; the client sees its connection closed."""
    one, two = servers
    master: list[tuple[str, int] | None] = [one.address]
    fwd = SqlForwarder("127.0.0.1", 0, lambda: master[0], connect_timeout=2, watch_interval=0.05).start()
    try:
        with socket.create_connection(("127.0.0.1", fwd.port), timeout=5) as conn:
            conn.sendall(b"a")
            assert conn.recv(100) == b"one:a"  # the session is open, on one
            master[0] = None if then == "none" else two.address
            ended = b""
            try:
                ended = conn.recv(100)
            except ConnectionResetError:
                pass
            assert ended == b""  # closed by the forwarder, not by the client or a timeout
        assert fwd.cut_off == 1
    finally:
        fwd.stop()

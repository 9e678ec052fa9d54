"""The stand-in's SQL listener: what a readwritesplit service does with a client's writes, reduced
to the one thing the lab's writer needs.

Each client connection is forwarded, byte for byte, to the server the stand-in's MaxScale calls
Master at the moment the client connects (``route()``: MaxScale's REST API in the stand-in). With no
Master the connection is closed at once, as MaxScale closes a session it has no master for; and a
session whose server stops being the Master (Down, or another promoted) is closed within
``watch_interval``, as readwritesplit's default ``master_failure_mode=fail_instantly`` ends it.
The MariaDB protocol passes through untouched, so the client logs in to the server itself (the
server's accounts, not MaxScale's service user) and the server's errors (read-only, a lost
connection) reach the client as they are.

It is not MaxScale: no reads are split off, no session is replayed or moved to a new master, no
query is parsed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mxha.lab.sql_forwarder")

Route = Callable[[], "tuple[str, int] | None"]
CHUNK = 64 * 1024


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then end ``sink``'s sending side (the other direction may go on)."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass  # either side went away: the session is over, as it would be through MaxScale
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _Session(socketserver.BaseRequestHandler):
    server: SqlForwarder

    def handle(self) -> None:
        client: socket.socket = self.request
        owner = self.server
        target = owner.route()  # None also when the route cannot be read: no master known, no session
        if target is None:
            owner.refused += 1
            return  # socketserver closes the client's socket: the client sees the connection lost
        try:
            upstream = socket.create_connection(target, timeout=owner.connect_timeout)
        except OSError as exc:
            owner.refused += 1
            log.info("cannot reach the master %s:%s: %s", target[0], target[1], exc)
            return
        upstream.settimeout(None)
        owner.forwarded += 1
        # one line per session, as MaxScale's info log has: which listener took a client, and where to
        log.info("session from %s:%s forwarded to the master %s:%s", *self.client_address[:2], *target)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        ahead = threading.Thread(target=_pump, args=(client, upstream), daemon=True)
        back.start()
        ahead.start()
        while ahead.is_alive():
            ahead.join(owner.watch_interval)
            if ahead.is_alive() and owner.route() != target:
                owner.cut_off += 1
                log.info("session from %s:%s closed: %s:%s is no longer the master", *self.client_address[:2], *target)
                for sock in (client, upstream):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                ahead.join()
        # The client has ended its side: what the server still sends comes through for a moment,
        # then the server's connection is closed, as MaxScale closes a session's backend with it
        # (a server whose packets are dropped would otherwise hold the session open indefinitely).
        back.join(owner.connect_timeout)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_RDWR)
        back.join()
        upstream.close()


class SqlForwarder(socketserver.ThreadingTCPServer):
    """Listens on ``(host, port)`` and forwards each connection to ``route()``'s server; a thread per
    connection (daemon threads: they end with the process, as a MaxScale's sessions end with it)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self, host: str, port: int, route: Route, connect_timeout: float = 3.0, watch_interval: float = 0.5
    ) -> None:
        self.route = route
        self.connect_timeout = connect_timeout
        self.watch_interval = watch_interval  # how often an open session's server is checked to still be the master
        self.forwarded = 0  # connections handed to a master
        self.refused = 0  # connections closed for want of one
        self.cut_off = 0  # sessions closed because their server stopped being the master
        super().__init__((host, port), _Session)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> SqlForwarder:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="sql", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def master_from_servers(servers: list[dict[str, Any]]) -> tuple[str, int] | None:
    """The address of the server ``/v1/servers`` calls ``Master, Running`` (None: no such server),
    read from its parameters as MaxScale shows them."""
    from mxha.maxscale import server_views

    for view, doc in zip(server_views(servers), servers, strict=True):
        if view.running and view.has("Master"):
            params = doc.get("attributes", {}).get("parameters", {})
            address, port = params.get("address"), params.get("port")
            if isinstance(address, str) and isinstance(port, int):
                return address, port
    return None

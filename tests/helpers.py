"""Small helpers the tests share: node config files pointing at emulators."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


def write_node_config(path: Path, maxscale_url: str, **sections: Any) -> Path:
    doc: dict[str, Any] = {
        "node": sections.pop("node", "node1"),
        "maxscale": {
            "url": maxscale_url,
            "user": "admin",
            "password": "mariadb",
            "connect_timeout": 0.5,
            "read_timeout": 1.0,
            **sections.pop("maxscale", {}),
        },
        "check": {"expected_servers": ["server1", "server2"], "timeout": 1.0, **sections.pop("check", {})},
        "notify": {"state_file": str(path.parent / "notify-state.json"), "timeout": 2.0, **sections.pop("notify", {})},
    }
    doc.update(sections)
    path.write_text(yaml.safe_dump(doc))
    return path


class StateServer:
    """Serves a node's ``/state`` built by the exporter's own Snapshot code, so the document is the
    real shape; tests change the VRRP/VIP/check picture, and inject faults, between requests.

    ``fault``: ``none``, ``error`` (HTTP 500), ``hang`` (no answer until cleared), ``drip`` (one
    byte every ``drip_delay`` seconds), ``garbage`` (200 with a body that is not JSON);
    ``refuse()``/``listen()`` close and reopen the port.
    """

    def __init__(self, node: str, host: str = "127.0.0.1") -> None:
        import threading

        self.node = node
        self.host = host
        self.claims = node  # the node name the document gives
        self.mode = "passive"  # its node config's `mode`
        self.vrrp = "BACKUP"
        self.priority = 100
        self.holds_vip = False
        self.check_ok = True
        self.maxscale_up = True
        self.passive = False  # the mode its exporter read from its MaxScale
        self.servers = [("server1", "Master, Running"), ("server2", "Slave, Running")]  # as its MaxScale sees them
        self.maxscale_error_kind: str | None = None
        self.locks_released_at: float | None = None  # its hook's last release-locks call, as its record says
        self.fault = "none"
        self.drip_delay = 0.5
        self.cleared = threading.Event()
        self.requests = 0
        self.server: Any = None
        self.port = 0
        self.listen()
        self.url = f"http://{host}:{self.port}/state"

    @property
    def fail(self) -> bool:
        return self.fault == "error"

    @fail.setter
    def fail(self, value: bool) -> None:
        self.set_fault("error" if value else "none")

    def set_fault(self, fault: str, drip_delay: float = 0.5) -> None:
        self.fault, self.drip_delay = fault, drip_delay
        if fault in ("hang", "drip"):
            self.cleared.clear()
        else:
            self.cleared.set()

    def listen(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler

        from mxha.lab.emulator.base import QuietHTTPServer

        if self.server is not None:
            return
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                import json
                import time

                owner.requests += 1
                fault = owner.fault
                if fault == "hang":
                    owner.cleared.wait(60)
                    self.close_connection = True
                    return
                if fault == "error":
                    body, status = b'{"error": "boom"}', 500
                elif fault == "garbage":
                    body, status = b"<html>not json", 200
                else:
                    body, status = json.dumps(owner.document()).encode(), 200
                head = (
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                data = head + body
                try:
                    if fault == "drip":
                        for i in range(len(data)):
                            if owner.cleared.is_set():
                                self.wfile.write(data[i:])
                                break
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(owner.drip_delay)
                    else:
                        self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True

        server = QuietHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self.port = server.server_address[1]
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def refuse(self) -> None:
        """Stop listening: connections are refused, as for a dead exporter."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def set(self, vrrp: str, holds_vip: bool, priority: int | None = None, check_ok: bool = True) -> None:
        self.vrrp, self.holds_vip, self.check_ok = vrrp, holds_vip, check_ok
        if priority is not None:
            self.priority = priority

    def document(self) -> dict[str, Any]:
        import time

        from mxha.exporter.keepalived import KeepalivedState, Vip, VrrpInstance
        from mxha.exporter.node import MaxScaleReading, Snapshot
        from mxha.healthcheck import CheckResult
        from mxha.model import NodeVip, NotifyView

        vip = "198.51.100.100"
        inst = VrrpInstance("VI_1", 51, "eth0", self.vrrp, self.priority, self.priority, time.time() - 5, (Vip(vip),))
        if self.maxscale_up:
            from mxha.maxscale import ServerView

            servers = tuple(ServerView(name, state) for name, state in self.servers)
            ms = MaxScaleReading(True, None, time.time(), 0.002, passive=self.passive, servers=servers)
        else:
            ms = MaxScaleReading(
                False, "GET /v1/maxscale: failed", time.time(), 0.002, error_kind=self.maxscale_error_kind
            )
        snap = Snapshot(
            node=self.claims,
            time=time.time(),
            keepalived=KeepalivedState((inst,), (), "json", time.time()),
            keepalived_error=None,
            keepalived_read_at=time.time(),
            keepalived_duration=0.001,
            governing_instance="VI_1",
            vips=(NodeVip(vip, "VI_1", True, self.holds_vip),),
            vip_error=None,
            check=CheckResult(self.check_ok, "2/2 expected servers listed", time.time(), 0.003),
            check_max_age=6,
            maxscale=ms,
            mode=self.mode,
            notify=None
            if self.locks_released_at is None
            else NotifyView(time.time(), "BACKUP", True, False, "locks released", None, self.locks_released_at),
        )
        return snap.to_state().to_json()

    def close(self) -> None:
        self.cleared.set()
        self.refuse()


def loopback_cluster(root: Path) -> Iterator[Any]:
    """Three real mariadbd on loopback with GTID replication from the first and the accounts
    MaxScale needs (``mxha.lab.database.ReplicatedCluster``): started, yielded, stopped (a fixture's
    body: ``yield from loopback_cluster(dir)``); skips without MariaDB."""
    import pytest

    from mxha.lab import database, mariadb

    why = mariadb.missing()
    if why:
        pytest.skip(why)
    addresses = [("127.0.0.1", free_port()) for _ in database.SERVER_NAMES]
    cluster = database.ReplicatedCluster(root, addresses, database.DatabaseAccounts.generate(), "lock-pw")
    started = cluster.start(mariadb.template(root))
    try:
        yield started
    finally:
        started.stop()


def cluster_addresses(cluster: Any) -> list[Any]:
    """A started cluster's servers as the lab names them (``ServerAddress``: server1-3)."""
    from mxha.lab import database

    return [
        database.ServerAddress(name, s.host, s.port)
        for name, s in zip(database.SERVER_NAMES, cluster.servers, strict=True)
    ]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MxhaServer:
    """A real ``mxha exporter``/``mxha remediator`` process on loopback, as users run it; started,
    waited for (``/healthz``), and stopped with SIGTERM, which must end it cleanly."""

    def __init__(
        self,
        command: str,
        config: Path,
        *,
        prefix: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        import os
        import subprocess
        import sys

        from mxha.lab.waiting import wait_for_url

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [*prefix, sys.executable, "-m", "mxha", command, "--config.file", str(config)]
        argv += ["--web.listen-address", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(
            argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for_url(self.url + "/healthz", f"mxha {command}", 15)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    def __enter__(self) -> MxhaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()

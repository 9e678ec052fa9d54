"""Small helpers the tests share: node config files pointing at emulators."""

from __future__ import annotations

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
    real shape; tests change the VRRP/VIP/check picture between requests."""

    def __init__(self, node: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.node = node
        self.vrrp = "BACKUP"
        self.priority = 100
        self.holds_vip = False
        self.check_ok = True
        self.fail = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if owner.fail:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                import json

                body = json.dumps(owner.document()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/state"

    def set(self, vrrp: str, holds_vip: bool, priority: int | None = None, check_ok: bool = True) -> None:
        self.vrrp, self.holds_vip, self.check_ok = vrrp, holds_vip, check_ok
        if priority is not None:
            self.priority = priority

    def document(self) -> dict[str, Any]:
        import time

        from mxha.exporter.keepalived import KeepalivedState, Vip, VrrpInstance
        from mxha.exporter.node import MaxScaleReading, Snapshot, VipReading

        from mxha.healthcheck import CheckResult

        vip = "198.51.100.100"
        inst = VrrpInstance("VI_1", 51, "eth0", self.vrrp, self.priority, self.priority, time.time() - 5, (Vip(vip),))
        snap = Snapshot(
            node=self.node,
            time=time.time(),
            keepalived=KeepalivedState((inst,), (), "json", time.time()),
            keepalived_error=None,
            keepalived_read_at=time.time(),
            keepalived_duration=0.001,
            governing_instance="VI_1",
            vips=(VipReading(vip, "VI_1", True, self.holds_vip),),
            vip_error=None,
            check=CheckResult(self.check_ok, "2/2 expected servers listed", time.time(), 0.003),
            check_max_age=6,
            maxscale=MaxScaleReading(True, None, time.time(), 0.002, passive=False),
        )
        return snap.to_state()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

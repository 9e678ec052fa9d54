"""The documents the emulator serves, shaped as MaxScale 24.02.4's recorded ones.

A document is the recorded template with the live values laid over it: only the objects on the
way to a live value are new, the rest is the template's own (shared, never written: a document is
only serialized). Copying the whole template per request was most of the emulator's time, and so
a visible share of the exporter's scrape in the lab.
"""

from __future__ import annotations

import time
from typing import Any

from mxha.lab.emulator.base import HandlerBase
from mxha.lab.emulator.model import (
    COMMIT,
    EmulatedServer,
    http_date,
)


class DocumentsMixin(HandlerBase):
    # -- documents -----------------------------------------------------------------------
    def _maxscale_doc(self) -> dict[str, Any]:
        st = self.st
        tpl = st.maxscale_template
        system = {**tpl["system"], "os": {**tpl["system"]["os"], "nodename": st.config.nodename}}
        started = http_date(st.started_wall)
        attrs = {
            # 24.02.4 leaves activated_at at started_at after a runtime passive true -> false.
            "activated_at": started,
            "commit": COMMIT,
            "config_sync": None
            if st.parameters.get("config_sync_cluster") is None
            else {"checksum": "0" * 40, "nodes": {}, "origin": st.config.nodename, "status": "OK", "version": 1},
            "parameters": dict(st.parameters),
            "process_datadir": tpl["process_datadir"],
            "started_at": started,
            "system": system,
            "uptime": int(time.monotonic() - st.started_mono),
            "version": st.config.version,
        }
        return {
            "data": {"attributes": attrs, "id": "maxscale", "type": "maxscale"},
            "links": {"self": f"{self._base()}/v1/maxscale/"},
        }

    def _server_doc(self, server: EmulatedServer, base: str | None = None) -> dict[str, Any]:
        base = base or self._base()
        tpl = self.server.server_template
        attrs = {
            **tpl["attributes"],
            "name": server.name,
            "state": self.st.server_state(server.name),
            "parameters": {**tpl["attributes"]["parameters"], "address": server.address, "port": server.port},
            "lock_held": self.st.lock_held(server.name),
        }
        doc: dict[str, Any] = {
            **tpl,
            "attributes": attrs,
            "id": server.name,
            "links": {"self": f"{base}/v1/servers/{server.name}/"},
        }
        mon = self.st.config.monitor
        doc["relationships"] = {
            "monitors": {
                "data": [{"id": mon, "type": "monitors"}],
                "links": {
                    "related": f"{base}/v1/monitors/",
                    "self": f"{base}/v1/servers/{server.name}/relationships/monitors/",
                },
            },
            "services": {
                "data": [{"id": "RW-Split-Router", "type": "services"}],
                "links": {
                    "related": f"{base}/v1/services/",
                    "self": f"{base}/v1/servers/{server.name}/relationships/services/",
                },
            },
        }
        return doc

    def _monitor_doc(self) -> dict[str, Any]:
        st = self.st
        base = self._base()
        name = st.config.monitor
        tpl = self.server.monitor_template
        locks_on = st.lock_mode() != "none"
        held = st.holds_locks()
        diag = {**tpl["attributes"]["monitor_diagnostics"]}
        attrs = {
            **tpl["attributes"],
            "monitor_diagnostics": diag,
            "parameters": dict(st.monitor_parameters),
            "ticks": int((time.monotonic() - st.started_mono) / 1.0),
        }
        doc: dict[str, Any] = {**tpl, "attributes": attrs}
        diag["master"] = st.current_master()
        diag["primary"] = held if locks_on else None
        diag["server_info"] = [
            {
                "gtid_binlog_pos": None,
                "gtid_current_pos": None,
                "lock_held": st.lock_held(s.name),
                "master_group": None,
                "name": s.name,
                "read_only": "Master" not in s.state,
                "server_id": i + 1,
                "slave_connections": [],
            }
            for i, s in enumerate(st.servers.values())
        ]
        doc["id"] = name
        doc["links"] = {"self": f"{base}/v1/monitors/{name}/"}
        doc["relationships"] = {
            "servers": {
                "data": [{"id": s, "type": "servers"} for s in st.servers],
                "links": {
                    "related": f"{base}/v1/servers/",
                    "self": f"{base}/v1/monitors/{name}/relationships/servers/",
                },
            },
            "services": {
                "data": [{"id": "RW-Split-Router", "type": "services"}],
                "links": {
                    "related": f"{base}/v1/services/",
                    "self": f"{base}/v1/monitors/{name}/relationships/services/",
                },
            },
        }
        return doc

    def _services_doc(self) -> dict[str, Any]:
        """``GET /v1/services``, shaped as MaxScale 24.02's REST API documents it (not recorded)."""
        svc, base = self.st.service, self._base()
        name = svc["name"]
        item = {
            "id": name,
            "type": "services",
            "attributes": {
                "router": svc["router"],
                "state": "Started",
                "parameters": {"user": "maxuser", "password": "*****", "version_string": svc["version_string"]},
            },
            "relationships": {
                "servers": {"data": [{"id": s, "type": "servers"} for s in svc["servers"]]},
                "listeners": {"data": [{"id": svc["listener"], "type": "listeners"}]},
            },
            "links": {"self": f"{base}/v1/services/{name}/"},
        }
        return {"data": [item], "links": {"self": f"{base}/v1/services/"}}

    def _listeners_doc(self) -> dict[str, Any]:
        """``GET /v1/listeners``, shaped as MaxScale 24.02's REST API documents it (not recorded)."""
        svc, base = self.st.service, self._base()
        item = {
            "id": svc["listener"],
            "type": "listeners",
            "attributes": {
                "state": "Running",
                "parameters": {
                    "address": "::",
                    "port": svc["port"],
                    "protocol": "MariaDBProtocol",
                    "service": svc["name"],
                },
            },
            "relationships": {"services": {"data": [{"id": svc["name"], "type": "services"}]}},
            "links": {"self": f"{base}/v1/listeners/{svc['listener']}/"},
        }
        return {"data": [item], "links": {"self": f"{base}/v1/listeners/"}}

"""The control API under /__emulator__/: a public testing interface (outside checks use it)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from mxha.lab.emulator.base import HandlerBase
from mxha.lab.emulator.model import (
    FAULT_MODES,
    LOCK_MODES,
    Fault,
    log,
)


class ControlMixin(HandlerBase):
    # -- control API ---------------------------------------------------------------------
    def _control(self, what: str) -> None:
        st = self.st
        body = self._read_body()
        payload: Any = {}
        if self.command == "POST":
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                self._send(400, {"error": "body must be JSON"})
                return
            if not isinstance(payload, dict):
                self._send(400, {"error": "body must be a JSON object"})
                return
        with st.lock:
            if what == "state" and self.command == "GET":
                fault = st.active_fault()
                self._send(
                    200,
                    {
                        "passive": st.passive,
                        "fault": fault.mode,
                        "lock_mode": st.lock_mode(),
                        "holds_locks": st.holds_locks(),
                        "servers": {s.name: s.state for s in st.servers.values()},
                        "counts": dict(st.counts),
                        "pid": os.getpid(),
                        "pair": st.pair_view,
                    },
                )
            elif what == "backend" and self.command == "GET":
                if st.pair is None:
                    self._send(409, {"error": "not in pair mode (start with --backend FILE)"})
                    return
                self._send(200, st.pair.read())
            elif what == "backend" and self.command == "POST":
                servers = payload.get("servers", {})
                if st.pair is None or not isinstance(servers, dict) or any(k not in st.servers for k in servers):
                    self._send(400, {"error": 'pair mode only; {"servers": {NAME: {"up": bool}}}'})
                    return
                st.pair.set_servers({k: v for k, v in servers.items() if isinstance(v, dict)})
                self._send(200, st.pair.read())
            elif what == "reach" and self.command == "POST":
                cut = payload.get("unreachable")
                if st.pair is None or not isinstance(cut, list) or any(k not in st.servers for k in cut):
                    self._send(400, {"error": 'pair mode only; {"unreachable": [SERVER, ...]}'})
                    return
                st.pair.set_unreachable(cut)
                self._send(200, {"unreachable": sorted(cut)})
            elif what == "modes" and self.command == "GET":
                self._send(200, {"mode_changes": list(st.mode_changes)})
            elif what == "requests" and self.command == "GET":
                self._send(200, {"requests": list(st.requests)})
            elif what == "requests" and self.command == "DELETE":
                st.requests.clear()
                self._send(204)
            elif what == "fault" and self.command == "POST":
                self._control_fault(payload)
            elif what == "servers" and self.command == "POST" and st.pair is not None:
                self._send(409, {"error": "pair mode: states follow the shared backend; use POST backend or reach"})
            elif what == "servers" and self.command == "POST":
                unknown = [k for k in payload if k not in st.servers]
                if unknown or not all(isinstance(v, str) for v in payload.values()):
                    self._send(400, {"error": f"unknown servers or non-string states: {unknown}"})
                    return
                for name, state in payload.items():
                    st.servers[name].state = state
                self._send(200, {"servers": {s.name: s.state for s in st.servers.values()}})
            elif what == "maxscale" and self.command == "POST":
                if "passive" in payload and not isinstance(payload["passive"], bool):
                    self._send(400, {"error": "passive must be a boolean"})
                    return
                if "passive" in payload:
                    st.set_passive(payload["passive"], "control")
                if "config_sync_cluster" in payload:  # as if configured statically
                    st.parameters["config_sync_cluster"] = payload["config_sync_cluster"]
                st.persist()
                self._send(200, {"passive": st.passive, "config_sync_cluster": st.parameters["config_sync_cluster"]})
            elif what == "monitor" and self.command == "POST":
                mode = payload.get("cooperative_monitoring_locks")
                if mode not in LOCK_MODES:
                    self._send(400, {"error": f"cooperative_monitoring_locks must be one of {LOCK_MODES}"})
                    return
                st.monitor_parameters["cooperative_monitoring_locks"] = mode
                if payload.get("reset_holdoff", True):
                    st.locks_holdoff_until = 0.0
                st.persist()
                self._send(200, {"cooperative_monitoring_locks": mode})
            else:
                self._send(404, {"error": f"no control route {self.command} {what}"})

    def _control_fault(self, payload: dict[str, Any]) -> None:
        st = self.st
        mode = payload.get("mode", "none")
        if mode not in FAULT_MODES:
            self._send(400, {"error": f"mode must be one of {FAULT_MODES}"})
            return
        try:
            delay = float(payload.get("delay", 0.0))
            duration = payload.get("duration")
            until = None if duration is None else time.monotonic() + float(duration)
            methods = tuple(str(m).upper() for m in payload.get("methods", []))
        except (TypeError, ValueError):
            self._send(400, {"error": "delay and duration must be numbers, methods a list"})
            return
        if mode == "refuse":
            self._send(200, {"fault": "refuse", "duration": duration})
            self.wfile.flush()
            self.server.owner.stop_listening(None if duration is None else float(duration))
            return
        st.fault = Fault(mode, delay, until, methods)
        if mode in ("hang", "drip"):
            st.unhang.clear()
        else:
            st.unhang.set()
        log.info("fault set to %s", mode)
        self._send(200, {"fault": mode, "delay": delay, "duration": duration})

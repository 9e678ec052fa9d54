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

# The monitor parameters `POST /__emulator__/monitor` sets (as if in maxscale.cnf), within what
# MaxScale's documentation allows: failcount a count >= 1; monitor_interval at least 100 ms; the
# backend timeouts whole seconds, at least 1 s (shown in ms, as 24.02 shows durations);
# auto_failover a boolean (24.02) or true/false/safe (25.01's string form)
MONITOR_FLAGS = ("enforce_read_only_servers", "enforce_writable_master")
MONITOR_TIMEOUTS = ("backend_connect_timeout", "backend_read_timeout", "backend_write_timeout")


def _duration_ms(value: Any, bare_ms: bool) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if bare_ms else value * 1000
    if isinstance(value, str) and value.endswith("ms") and value[:-2].isdigit():
        return int(value[:-2])
    if isinstance(value, str) and value.endswith("s") and value[:-1].isdigit():
        return int(value[:-1]) * 1000
    return None


def service_changes(payload: dict[str, Any], servers: set[str]) -> tuple[dict[str, Any], str | None]:
    """What clients would see changed (as if maxscale.cnf said so): ``version_string``, ``router``,
    the service's ``servers``, the listener's ``port``."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if key in ("version_string", "router") and isinstance(value, str):
            out[key] = value
        elif key == "port" and isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
            out[key] = value
        elif key == "servers" and isinstance(value, list) and all(v in servers for v in value):
            out[key] = list(value)
        else:
            return {}, f"{key}: give version_string, router (strings), port (1-65535) or servers (known names)"
    return out, None


def monitor_changes(payload: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The monitor parameters a control request sets, or the error naming the first bad one."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if key == "reset_holdoff":
            continue
        if key == "cooperative_monitoring_locks":
            if value not in LOCK_MODES:
                return {}, f"cooperative_monitoring_locks must be one of {LOCK_MODES}"
            out[key] = value
        elif key == "failcount":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                return {}, "failcount must be an integer >= 1"
            out[key] = value
        elif key == "monitor_interval":
            ms = _duration_ms(value, bare_ms=True)
            if ms is None or ms < 100:
                return {}, "monitor_interval must be a duration of at least 100ms (e.g. 1000ms, 2s)"
            out[key] = f"{ms}ms"
        elif key in MONITOR_TIMEOUTS:
            ms = _duration_ms(value, bare_ms=False)
            if ms is None or ms < 1000 or ms % 1000:
                return {}, f"{key} must be whole seconds, at least 1s (e.g. 3s, 3000ms)"
            out[key] = f"{ms}ms"
        elif key in MONITOR_FLAGS:
            if not isinstance(value, bool):
                return {}, f"{key} must be a boolean"
            out[key] = value
        elif key == "auto_failover":
            if not isinstance(value, bool) and value not in ("true", "false", "safe"):
                return {}, "auto_failover must be a boolean or one of true, false, safe"
            out[key] = value
        else:
            return {}, f"{key}: not a monitor parameter this emulator sets"
    if not out:
        return {}, "give at least one monitor parameter, e.g. cooperative_monitoring_locks"
    return out, None


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
                        "servers": {name: st.server_state(name) for name in st.servers},
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
                self._send(200, {"servers": {name: st.server_state(name) for name in st.servers}})
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
            elif what == "services" and self.command == "POST":
                changes, error = service_changes(payload, set(st.servers))
                if error is not None:
                    self._send(400, {"error": error})
                    return
                st.service.update(changes)
                self._send(200, dict(st.service))
            elif what == "monitor" and self.command == "POST":
                changes, error = monitor_changes(payload)
                if error is not None:
                    self._send(400, {"error": error})
                    return
                st.monitor_parameters.update(changes)
                if "cooperative_monitoring_locks" in changes and payload.get("reset_holdoff", True):
                    st.locks_holdoff_until = 0.0
                st.persist()
                self._send(200, {k: st.monitor_parameters[k] for k in sorted(changes)})
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

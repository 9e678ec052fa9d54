"""The emulator's HTTP handling: routing, faults, the REST resources, and the server that a
fault may close and reopen."""

from __future__ import annotations

import errno
import io
import json
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from mxha.hazards import auto_failover_on
from mxha.lab.emulator.base import QuietHTTPServer
from mxha.lab.emulator.control import ControlMixin
from mxha.lab.emulator.documents import DocumentsMixin
from mxha.lab.emulator.model import (
    LOCK_MODES,
    LOCKS_MISSING,
    PASSIVE_REFUSED,
    RELEASE_HOLDOFF_SECONDS,
    STATIC_PARAMETERS,
    EmulatorConfig,
    EmulatorState,
    Fault,
    fresh_copy,
    jansson_parse_error,
    json_type_name,
    load_template,
    log,
)


def _drip(out: Any, data: bytes, delay: float, cleared: threading.Event) -> None:
    """Write ``data`` one byte at a time, ``delay`` apart, until the fault is cleared."""
    try:
        for i in range(len(data)):
            if cleared.is_set():
                out.write(data[i:])
                break
            out.write(data[i : i + 1])
            out.flush()
            time.sleep(delay)
        out.flush()
    except OSError:
        pass  # the client gave up on us, as it should


class EmulatorHandler(DocumentsMixin, ControlMixin):
    # -- routing -------------------------------------------------------------------------
    def _route(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path.startswith("/__emulator__/"):
            self._control(path[len("/__emulator__/") :].strip("/"))
            return
        st = self.st
        fault = st.active_fault()
        if fault.methods and self.command not in fault.methods:
            fault = Fault()
        if fault.mode == "hang":
            st.unhang.wait(timeout=600)
            self.close_connection = True
            return
        if fault.mode == "slow":
            time.sleep(fault.delay)
        if fault.mode == "drip":  # answer, but one byte every `delay` seconds: alive and useless
            real, self.wfile = self.wfile, io.BytesIO()
            try:
                self._serve(fault)
            finally:
                answer, self.wfile = self.wfile.getvalue(), real
                _drip(real, answer, fault.delay or 0.5, st.unhang)  # outside the state lock
            return
        self._serve(fault)

    def _serve(self, fault: Fault) -> None:
        st = self.st
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if fault.mode == "error":
            self._errors(500, "Internal error (emulated fault)")
            return
        body = self._read_body()
        role = None if fault.mode == "reject_auth" else self._authorized()
        if role is None:
            self._errors(401, "Access denied", headers={"WWW-Authenticate": 'Basic realm="maxscale"'})
            return
        if self.command not in ("GET", "HEAD") and role != "rw":
            # a read-only user doing a write
            self._errors(403, "Administrative access required")
            return
        segments = [s for s in path.split("/") if s]
        if segments and segments[0] == "v1":
            segments = segments[1:]
        query = parts.query
        with st.lock:
            self._resource(segments, query, body)

    def _resource(self, seg: list[str], query: str, body: bytes | None) -> None:
        method = self.command
        if not seg:
            if method in ("GET", "HEAD"):
                self._send(200)
            else:
                self._send(404)
            return
        head = seg[0]
        if head == "maxscale" and len(seg) == 1:
            if method in ("GET", "HEAD"):
                self._send(200, self._maxscale_doc())
            elif method == "PATCH":
                self._patch_maxscale(body)
            else:
                self._send(404)
        elif head == "maxscale" and len(seg) >= 3 and seg[1] == "modules":
            self._modules(seg[2], seg[3] if len(seg) > 3 else None, query)
        elif head == "servers" and len(seg) <= 2 and method in ("GET", "HEAD"):
            if len(seg) == 1:
                base = self._base()
                self._send(
                    200,
                    {
                        "data": [self._server_doc(s, base) for s in self.st.servers.values()],
                        "links": {"self": f"{base}/v1/servers/"},
                    },
                )
            elif seg[1] in self.st.servers:
                doc = self._server_doc(self.st.servers[seg[1]])
                self._send(200, {"data": doc, "links": {"self": doc["links"]["self"]}})
            else:
                self._errors(404, f"{seg[1]} is not a server")
        elif head in ("services", "listeners") and len(seg) == 1 and method in ("GET", "HEAD"):
            self._send(200, self._services_doc() if head == "services" else self._listeners_doc())
        elif head == "monitors" and len(seg) <= 2:
            self._monitors(seg[1] if len(seg) == 2 else None, body)
        else:
            self._send(404)

    # -- PATCH /v1/maxscale --------------------------------------------------------------
    def _parse_json_body(self, body: bytes | None) -> tuple[bool, Any]:
        if body is None or not body.strip():
            self._errors(400, "Missing request body")
            return False, None
        text = body.decode("utf-8", errors="replace")
        try:
            return True, json.loads(text)
        except json.JSONDecodeError as exc:
            self._errors(400, f"Invalid JSON in request: {jansson_parse_error(text, exc)}")
            return False, None

    def _patch_parameters(self, body: bytes | None) -> dict[str, Any] | None:
        ok, doc = self._parse_json_body(body)
        if not ok:
            return None
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict):
            self._errors(400, "The '/data' field is not an object")
            return None
        attrs = data.get("attributes", {})
        if not isinstance(attrs, dict):
            self._errors(400, "The '/data/attributes' field is not an object")
            return None
        params = attrs.get("parameters", {})
        if not isinstance(params, dict):
            self._errors(400, "The '/data/attributes/parameters' field is not an object")
            return None
        return params

    def _patch_maxscale(self, body: bytes | None) -> None:
        params = self._patch_parameters(body)
        if params is None:
            return
        st = self.st
        errors: list[str] = []
        for key, value in params.items():
            if key not in st.parameters:
                errors.append(f"maxscale: The parameter '{key}' is unrecognized.")
            elif key in STATIC_PARAMETERS and value != st.parameters[key]:
                errors.append(f"maxscale: The parameter '{key}' cannot be modified at runtime.")
            elif key == "passive" and not isinstance(value, bool):
                errors.append(f"passive: Expected a json boolean, but got a json {json_type_name(value)}.")
        if errors:
            self._errors(400, *errors)
            return
        for key, value in params.items():
            if key == "passive":
                st.set_passive(value, "rest")
            else:
                st.parameters[key] = value
        if "passive" in params:
            log.info("passive set to %s over the REST API", params["passive"])
        st.persist()
        self._send(204, headers={"Mxs-Warning": self._persist_warning("maxscale")})

    @staticmethod
    def _persist_warning(name: str) -> str:
        return (
            f"Saving runtime modifications to '{name}' in '/var/lib/maxscale/maxscale.cnf.d/{name}.cnf'. "
            "The modified values will override the values found in the static configuration files."
        )

    # -- monitors ------------------------------------------------------------------------
    def _monitors(self, name: str | None, body: bytes | None) -> None:
        st = self.st
        method = self.command
        if name is None:
            if method in ("GET", "HEAD"):
                self._send(200, {"data": [self._monitor_doc()], "links": {"self": f"{self._base()}/v1/monitors/"}})
            else:
                self._send(404)
            return
        if name != st.config.monitor:
            self._errors(404, f"{name} is not a monitor")
            return
        if method in ("GET", "HEAD"):
            doc = self._monitor_doc()
            self._send(200, {"data": doc, "links": {"self": doc["links"]["self"]}})
        elif method == "PATCH":
            params = self._patch_parameters(body)
            if params is None:
                return
            errors = [f"{name}: The parameter '{k}' is unrecognized." for k in params if k not in st.monitor_parameters]
            mode = params.get("cooperative_monitoring_locks")
            if mode is not None and mode not in LOCK_MODES:
                errors.append(f"Invalid value for parameter 'cooperative_monitoring_locks': {mode}")
            if errors:
                self._errors(400, *errors)
                return
            st.monitor_parameters.update(params)
            st.persist()
            self._send(204, headers={"Mxs-Warning": self._persist_warning(name)})
        else:
            self._send(404)

    # -- module commands -----------------------------------------------------------------
    def _modules(self, module: str, command: str | None, query: str) -> None:
        base = self._base()
        tpl = self.server.module_template
        if module != "mariadbmon":
            self._errors(404, f"Module '{module}' not found")
            return
        if command is None:
            if self.command in ("GET", "HEAD"):
                doc = fresh_copy(tpl)
                doc["links"] = {"self": f"{base}/v1/modules/mariadbmon/"}
                for cmd in doc["attributes"]["commands"]:
                    cmd["links"] = {"self": f"{base}/v1/modules/mariadbmon/{cmd['id']}/"}
                self._send(200, {"data": doc, "links": {"self": f"{base}/v1/maxscale/modules/mariadbmon/"}})
            else:
                self._send(404)
            return
        spec = next((c for c in tpl["attributes"]["commands"] if c["id"] == command), None)
        if spec is None or self.command != spec["attributes"]["method"]:
            self._send(404)
            return
        args = [unquote(a) for a in query.split("&") if a] if query else []
        links = {"self": f"{base}/v1/maxscale/modules/mariadbmon/{command}/"}
        arg_min, arg_max = spec["attributes"]["arg_min"], spec["attributes"]["arg_max"]
        if not (arg_min <= len(args) <= arg_max):
            self._errors(
                400, f"Wrong number of arguments to '{command}': expected {arg_min} to {arg_max}, got {len(args)}."
            )
            return
        st = self.st
        if args[0] != st.config.monitor:
            self._errors(400, f"Argument 1, monitor not found: {args[0]}")
            return
        for i, arg in enumerate(args[1:], start=2):
            if arg not in st.servers:
                self._errors(400, f"Argument {i}, server not found: {arg}")
                return

        def meta_error(detail: str) -> None:
            self._send(400, {"links": links, "meta": {"errors": [{"detail": detail}]}})

        if command in ("release-locks", "async-release-locks"):
            if st.lock_mode() == "none":
                meta_error("Server locks are not in use, cannot release them.")
                return
            held = st.pair.release_locks() if st.pair is not None else st.holds_locks()
            st.locks_holdoff_until = time.monotonic() + RELEASE_HOLDOFF_SECONDS
            if not held:
                meta_error("Did not release any locks. Will not attempt to reacquire locks for 1 minute.")
                return
            log.info("released cooperative monitoring locks of %s", st.config.monitor)
            self._send(204)
            return
        if command in PASSIVE_REFUSED:
            if st.passive:
                detail = f"{PASSIVE_REFUSED[command]} requested but not performed, as MaxScale is in passive mode."
                self._send(
                    400, {"errors": [{"detail": detail}], "links": links, "meta": {"errors": [{"detail": detail}]}}
                )
                return
            if st.lock_mode() != "none" and not st.holds_locks():
                meta_error(LOCKS_MISSING)
                return
            error = self._cluster_operation(PASSIVE_REFUSED[command], args[1:])
            if error:
                self._send(
                    400, {"errors": [{"detail": error}], "links": links, "meta": {"errors": [{"detail": error}]}}
                )
                return
            log.info("performed %s %s", command, " ".join(args))
        self._send(204)

    def _cluster_operation(self, op: str, servers: list[str]) -> str | None:
        """Change emulated server roles as the operation would; return an error text or None."""
        st = self.st
        master = next((s for s in st.servers.values() if "Master" in s.state.split(", ")), None)
        replicas = [
            s for s in st.servers.values() if "Slave" in s.state.split(", ") and "Running" in s.state.split(", ")
        ]
        if op == "Rejoin":
            return None
        if op == "Switchover":
            if master is None or "Running" not in master.state:
                return "Switchover requested but not performed, as there is no running primary."
            target = st.servers[servers[0]] if servers else (replicas[0] if replicas else None)
            if target is None or target is master:
                return "No valid promotion candidate found."
            master.state, target.state = "Slave, Running", "Master, Running"
            return None
        # Failover
        if master is not None and "Running" in master.state.split(", "):
            return "Failover requested but not performed, as the primary is running."
        if not replicas:
            return "Failover requested but not performed, as no valid promotion candidate found."
        replicas[0].state = "Master, Running"
        if master is not None:
            master.state = "Down"
        return None


class EmulatorHTTPServer(QuietHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, owner: Emulator) -> None:
        self.owner = owner
        self.state = owner.state
        self.server_template = load_template("server.json")
        self.monitor_template = load_template("monitor.json")
        self.module_template = load_template("module-mariadbmon.json")
        family = socket.AF_INET6 if ":" in owner.config.host else socket.AF_INET
        self.address_family = family
        super().__init__((owner.config.host, owner.config.port), EmulatorHandler)
        if owner.config.tls_cert:
            # admin_ssl_cert/admin_ssl_key: the same port speaks HTTPS
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(owner.config.tls_cert, owner.config.tls_key)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.connections_lock:
            self.connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """A stopped MaxScale's kept-alive connections die with it."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Emulator:
    """Owns the state and the listening socket, which a fault may close and reopen."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.state = EmulatorState(config)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._resume_timer: threading.Timer | None = None

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{host}:{self.config.port}"

    def start(self, wait_for_port: bool = True) -> None:
        """Listen. ``wait_for_port``: a port in use is retried for 3 s, for a restart after
        ``stop_listening``; the first start of a process has no such socket, and says at once."""
        with self._guard:
            if self._server is not None:
                return
            deadline = time.monotonic() + (3.0 if wait_for_port else 0.0)
            while True:  # the socket we closed a moment ago may still be going away
                try:
                    server = EmulatorHTTPServer(self)
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)
            self.config.port = server.server_address[1]
            self.state.parameters["admin_port"] = self.config.port
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="emulator", daemon=True
            )
            self._thread.start()
        log.info("MaxScale emulator listening on %s", self.url)
        self._start_pair()

    def _start_pair(self) -> None:
        """Pair mode: join the shared backend and run the monitor's ticks (once per process)."""
        st, cfg = self.state, self.config
        if not cfg.backend or st.pair is not None:
            return
        from mxha.lab.emulator.backend import SharedBackend

        pair = SharedBackend(
            cfg.backend, cfg.member or cfg.nodename, list(st.servers), cfg.time_scale, cfg.relock_backoff
        )
        pair.on_tick(st.apply_pair_view)
        st.pair = pair

        def settings() -> tuple[str, bool, bool, bool]:
            p = st.monitor_parameters
            # auto_failover may be 25.01's string form, where "false" is off
            failover = auto_failover_on(p.get("auto_failover")) is True
            return st.lock_mode(), st.passive, failover, bool(p.get("auto_rejoin"))

        pair.start(settings)

    def _close(self) -> None:
        with self._guard:
            server, self._server = self._server, None
        if server is not None:
            threading.Thread(target=server.shutdown, daemon=True).start()
            server.socket.close()
            server.drop_connections()

    def stop_listening(self, seconds: float | None = None) -> None:
        """Close the listening socket: new connections are refused, like a stopped MaxScale."""
        self._close()
        log.info("stopped listening%s", f" for {seconds:g}s" if seconds else "")
        if seconds:
            self._resume_timer = threading.Timer(seconds, self.start)
            self._resume_timer.daemon = True
            self._resume_timer.start()

    def stop(self) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        self.state.unhang.set()
        self._close()
        if self.state.pair is not None:  # its connections close: the servers free its locks
            self.state.pair.stop()
            self.state.pair = None

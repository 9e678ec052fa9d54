"""A MaxScale 24.02 REST API emulator.

MaxScale cannot be installed here, so tests and the lab talk to this instead. It follows
the documents, status codes and error texts recorded from a real MaxScale 24.02.4
(``shared/fixtures/maxscale-24.02.4``) closely enough that the real ``maxctrl`` works
against it unchanged.

Besides ``/v1`` it serves a control API under ``/__emulator__/`` (no auth) so tests can
change server states, lock mode and inject faults at runtime without a restart:

- ``GET  /__emulator__/state``      internal state and request counters
- ``GET  /__emulator__/requests``   the last requests received (method, path, status)
- ``GET  /__emulator__/modes``      every change of ``passive``: time, value, via rest|control
- ``POST /__emulator__/fault``      ``{"mode": "none|slow|hang|error|reject_auth|refuse|drip",
                                       "delay": 2.0, "duration": 5.0}``
- ``POST /__emulator__/servers``    ``{"server1": "Down", "server2": "Master, Running"}``
- ``POST /__emulator__/maxscale``   ``{"passive": true}`` (as if changed behind our back,
                                       persisted like a runtime change)
- ``POST /__emulator__/monitor``    ``{"cooperative_monitoring_locks": "majority_of_all"}``

SIGUSR1 stops listening (connections are refused), SIGUSR2 listens again.
"""

from __future__ import annotations

import base64
import collections
import copy
import email.utils
import errno
import hmac
import io
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from mxha.files import atomic_write

log = logging.getLogger("mxha.emulator")

VERSION = "24.02.4"
COMMIT = "source-build"
LOCK_MODES = ("none", "majority_of_all", "majority_of_running")
FAULT_MODES = ("none", "slow", "hang", "error", "reject_auth", "refuse", "drip")
RELEASE_HOLDOFF_SECONDS = 60.0

# Parameters of the `maxscale` object that MaxScale refuses to change at runtime.
STATIC_PARAMETERS = frozenset(
    {
        "admin_enabled",
        "admin_gui",
        "admin_host",
        "admin_port",
        "admin_secure_gui",
        "admin_ssl_ca",
        "admin_ssl_cert",
        "admin_ssl_key",
        "admin_ssl_version",
        "admin_pam_readonly_service",
        "admin_pam_readwrite_service",
        "cachedir",
        "config_sync_cluster",
        "config_sync_db",
        "config_sync_user",
        "config_sync_password",
        "connector_plugindir",
        "core_file",
        "datadir",
        "debug",
        "execdir",
        "key_manager",
        "language",
        "libdir",
        "load_persisted_configs",
        "local_address",
        "logdir",
        "module_configdir",
        "persist_runtime_changes",
        "persistdir",
        "piddir",
        "query_classifier_cache_size",
        "secretsdir",
        "sql_mode",
        "syslog",
        "maxlog",
        "threads_max",
        "substitute_variables",
    }
)

# Module commands refused while passive, and the word MaxScale starts the refusal with.
PASSIVE_REFUSED = {
    "switchover": "Switchover",
    "switchover-force": "Switchover",
    "async-switchover": "Switchover",
    "failover": "Failover",
    "async-failover": "Failover",
    "rejoin": "Rejoin",
    "async-rejoin": "Rejoin",
}
LOCKS_MISSING = (
    "Cannot perform cluster operation because this MaxScale does not have exclusive locks "
    "on a majority of servers. Run \"SELECT IS_USED_LOCK('maxscale_mariadbmonitor');\" "
    "on the servers to find out which connection id has a lock."
)


def _load_template(name: str) -> Any:
    return json.loads(resources.files("mxha.lab").joinpath("data", name).read_text())


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def json_type_name(value: Any) -> str:
    """Jansson's names for JSON types, as MaxScale prints them in type errors."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def jansson_parse_error(text: str, exc: json.JSONDecodeError) -> str:
    """Approximate jansson's wording for the commonest error (a key that is not a string)."""
    if "property name enclosed in double quotes" in exc.msg:
        rest = text[exc.pos :]
        token = re.match(r"[A-Za-z0-9_]+|.", rest, re.S)
        near = token.group(0) if token else ""
        return f"string or '}}' expected near '{near}'"
    return f"{exc.msg} near position {exc.pos}"


@dataclass
class EmulatedServer:
    name: str
    address: str
    port: int
    state: str


@dataclass
class Fault:
    mode: str = "none"
    delay: float = 0.0
    until: float | None = None  # monotonic deadline; None = until cleared
    methods: tuple[str, ...] = ()  # only these HTTP methods; empty = all


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8989
    user: str = "admin"
    password: str = field(default="mariadb", repr=False)
    readonly_user: str | None = None
    readonly_password: str | None = field(default=None, repr=False)
    state_file: str | None = None
    passive: bool = False
    monitor: str = "MariaDB-Monitor"
    lock_mode: str = "none"
    servers: list[EmulatedServer] = field(
        default_factory=lambda: [
            EmulatedServer("server1", "127.0.0.1", 3306, "Master, Running"),
            EmulatedServer("server2", "127.0.0.1", 3307, "Slave, Running"),
        ]
    )
    version: str = VERSION
    nodename: str = "maxscale"
    tls_cert: str | None = None
    tls_key: str | None = None


class EmulatorState:
    """Everything the emulated MaxScale knows; guarded by one lock."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.started_wall = time.time()
        self.started_mono = time.monotonic()
        self.maxscale_template = _load_template("maxscale.json")
        self.parameters: dict[str, Any] = dict(self.maxscale_template["parameters"])
        self.parameters["admin_host"] = config.host
        self.parameters["admin_port"] = config.port
        self.parameters["passive"] = config.passive
        self.servers = {s.name: copy.copy(s) for s in config.servers}
        self.monitor_parameters: dict[str, Any] = dict(_load_template("monitor.json")["attributes"]["parameters"])
        self.monitor_parameters["cooperative_monitoring_locks"] = config.lock_mode
        self.locks_holdoff_until = 0.0  # monotonic; after release-locks, no re-locking for a minute
        self.fault = Fault()
        self.unhang = threading.Event()
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=2000)
        # every change of `passive`, with when and through what (rest: the REST API; control: behind
        # the tools' back), so a test can rebuild who was active when
        self.mode_changes: collections.deque[dict[str, Any]] = collections.deque(maxlen=10000)
        self.counts: collections.Counter[str] = collections.Counter()
        self._load_persisted()

    # -- persistence (MaxScale keeps runtime changes in maxscale.cnf.d and they win at restart)
    def _load_persisted(self) -> None:
        path = self.config.state_file
        if not path or not os.path.exists(path):
            return
        try:
            with open(path, encoding="utf-8") as fh:
                saved = json.load(fh)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable state file %s: %s", path, exc)
            return
        if isinstance(saved.get("maxscale"), dict):
            for key, value in saved["maxscale"].items():
                if key in self.parameters and key not in STATIC_PARAMETERS:
                    self.parameters[key] = value
        if isinstance(saved.get("monitor"), dict):
            for key, value in saved["monitor"].items():
                if key in self.monitor_parameters:
                    self.monitor_parameters[key] = value

    def persist(self) -> None:
        path = self.config.state_file
        if not path:
            return
        runtime = {
            k: v
            for k, v in self.parameters.items()
            if v != self.maxscale_template["parameters"].get(k) or k == "passive"
        }
        runtime.pop("admin_host", None)
        runtime.pop("admin_port", None)
        doc = {
            "maxscale": runtime,
            "monitor": {"cooperative_monitoring_locks": self.monitor_parameters["cooperative_monitoring_locks"]},
        }
        atomic_write(path, json.dumps(doc), mode=0o600)

    # -- derived state -------------------------------------------------------------------
    @property
    def passive(self) -> bool:
        return bool(self.parameters["passive"])

    def set_passive(self, passive: bool, via: str) -> None:
        """Change the mode and record it (call with ``lock`` held)."""
        self.parameters["passive"] = passive
        self.mode_changes.append({"time": time.time(), "passive": passive, "via": via})

    def lock_mode(self) -> str:
        return str(self.monitor_parameters.get("cooperative_monitoring_locks", "none"))

    def holds_locks(self) -> bool:
        """Standalone, this MaxScale gets every lock unless it released them within the last minute."""
        if self.lock_mode() == "none":
            return False
        return time.monotonic() >= self.locks_holdoff_until

    def current_master(self) -> str | None:
        for s in self.servers.values():
            if "Master" in s.state.split(", ") and "Running" in s.state.split(", "):
                return s.name
        return None

    def active_fault(self) -> Fault:
        f = self.fault
        if f.mode != "none" and f.until is not None and time.monotonic() >= f.until:
            self.fault = Fault()
            self.unhang.set()
        return self.fault


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


class EmulatorHandler(BaseHTTPRequestHandler):
    server_version = "MaxScale"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    # -- plumbing ------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    @property
    def st(self) -> EmulatorState:
        return self.server.state

    def _base(self) -> str:
        host = self.headers.get("Host") or f"{self.st.config.host}:{self.st.config.port}"
        return f"{'https' if self.st.config.tls_cert else 'http'}://{host}"

    def _send(self, status: int, document: Any = None, headers: dict[str, str] | None = None) -> None:
        # compact by default, indented with ?pretty=true, as MaxScale does
        indent = 4 if "pretty=true" in urlsplit(self.path).query else None
        body = b"" if document is None else json.dumps(document, indent=indent).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if document is not None:
            self.send_header("Content-Type", "application/json")
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _errors(self, status: int, *details: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"errors": [{"detail": d} for d in details]}, headers)

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return None
        n = int(length)
        if n > 10 * 1024 * 1024:
            raise ValueError("request body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _authorized(self) -> str | None:
        """Return 'rw', 'ro' or None for the request's basic-auth credentials."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        cfg = self.st.config
        if hmac.compare_digest(user, cfg.user) and hmac.compare_digest(password, cfg.password):
            return "rw"
        if (
            cfg.readonly_user is not None
            and cfg.readonly_password is not None
            and hmac.compare_digest(user, cfg.readonly_user)
            and hmac.compare_digest(password, cfg.readonly_password)
        ):
            return "ro"
        return None

    def _dispatch(self) -> None:
        self._status = 0
        started = time.monotonic()
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except ValueError as exc:  # malformed framing (bad Content-Length, chunking)
            self.close_connection = True
            self._errors(400, f"Malformed request: {exc}")
        finally:
            with self.st.lock:
                self.st.requests.append(
                    {
                        "time": time.time(),
                        "method": self.command,
                        "path": self.path,
                        "status": self._status,
                        "duration": round(time.monotonic() - started, 4),
                    }
                )
                self.st.counts[f"{self.command} {self._status}"] += 1

    do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    def handle_one_request(self) -> None:
        # Verbs MaxScale does not know at all get 405; BaseHTTPRequestHandler would say 501.
        try:
            super().handle_one_request()
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code == 501:
            self._send(405)
            return
        super().send_error(code, message, explain)

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
                self._send(
                    200,
                    {
                        "data": [self._server_doc(s) for s in self.st.servers.values()],
                        "links": {"self": f"{self._base()}/v1/servers/"},
                    },
                )
            elif seg[1] in self.st.servers:
                doc = self._server_doc(self.st.servers[seg[1]])
                self._send(200, {"data": doc, "links": {"self": doc["links"]["self"]}})
            else:
                self._errors(404, f"{seg[1]} is not a server")
        elif head == "monitors" and len(seg) <= 2:
            self._monitors(seg[1] if len(seg) == 2 else None, body)
        else:
            self._send(404)

    # -- documents -----------------------------------------------------------------------
    def _maxscale_doc(self) -> dict[str, Any]:
        st = self.st
        tpl = st.maxscale_template
        system = copy.deepcopy(tpl["system"])
        system["os"]["nodename"] = st.config.nodename
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

    def _server_doc(self, server: EmulatedServer) -> dict[str, Any]:
        base = self._base()
        doc: dict[str, Any] = copy.deepcopy(self.server.server_template)
        attrs = doc["attributes"]
        attrs["name"] = server.name
        attrs["state"] = server.state
        attrs["parameters"]["address"] = server.address
        attrs["parameters"]["port"] = server.port
        attrs["lock_held"] = self.st.holds_locks() if self.st.lock_mode() != "none" else None
        doc["id"] = server.name
        doc["links"] = {"self": f"{base}/v1/servers/{server.name}/"}
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
        doc: dict[str, Any] = copy.deepcopy(self.server.monitor_template)
        attrs = doc["attributes"]
        attrs["parameters"] = dict(st.monitor_parameters)
        attrs["ticks"] = int((time.monotonic() - st.started_mono) / 1.0)
        locks_on = st.lock_mode() != "none"
        held = st.holds_locks()
        diag = attrs["monitor_diagnostics"]
        diag["master"] = st.current_master()
        diag["primary"] = held if locks_on else None
        diag["server_info"] = [
            {
                "gtid_binlog_pos": None,
                "gtid_current_pos": None,
                "lock_held": held if locks_on else None,
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
                doc = copy.deepcopy(tpl)
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
            held = st.holds_locks()
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
                    },
                )
            elif what == "modes" and self.command == "GET":
                self._send(200, {"mode_changes": list(st.mode_changes)})
            elif what == "requests" and self.command == "GET":
                self._send(200, {"requests": list(st.requests)})
            elif what == "requests" and self.command == "DELETE":
                st.requests.clear()
                self._send(204)
            elif what == "fault" and self.command == "POST":
                self._control_fault(payload)
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


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, owner: Emulator) -> None:
        self.owner = owner
        self.state = owner.state
        self.server_template = _load_template("server.json")
        self.monitor_template = _load_template("monitor.json")
        self.module_template = _load_template("module-mariadbmon.json")
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

    def start(self) -> None:
        with self._guard:
            if self._server is not None:
                return
            deadline = time.monotonic() + 3.0
            while True:  # the socket we closed a moment ago may still be going away
                try:
                    server = EmulatorHTTPServer(self)
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
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


def parse_server_spec(spec: str) -> EmulatedServer:
    """``NAME=ADDRESS:PORT[=STATE]``, e.g. ``server1=127.0.0.1:3306=Master, Running``."""
    try:
        name, rest = spec.split("=", 1)
        addr, _, state = rest.partition("=")
        host, _, port = addr.rpartition(":")
        if not name or not host:
            raise ValueError
        return EmulatedServer(name, host, int(port), state or "Running")
    except ValueError as exc:
        raise ValueError(f"--server expects NAME=ADDRESS:PORT[=STATE], got {spec!r}") from exc

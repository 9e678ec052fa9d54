"""The emulator's model: its configuration, what a MaxScale remembers (parameters, servers,
locks, faults), and the recorded constants it answers with."""

from __future__ import annotations

import collections
import copy
import email.utils
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

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


def fresh_copy(doc: Any) -> Any:
    """A deep copy of a JSON document, several times faster than copy.deepcopy (which dominated
    the emulator's answer time, and so the exporter's scrape time in the lab)."""
    if isinstance(doc, dict):
        return {k: fresh_copy(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [fresh_copy(v) for v in doc]
    return doc


def load_template(name: str) -> Any:
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
    # pair mode: several emulators over one simulated database (mxha.lab.emulator.backend)
    backend: str | None = None  # the shared file
    member: str | None = None  # this MaxScale's name in it (default: nodename)
    time_scale: float = 1.0  # recorded durations (1 s ticks, the 60 s back-off) times this
    relock_backoff: float | None = None  # release-locks' back-off in seconds (None: 60 s x time_scale)


class EmulatorState:
    """Everything the emulated MaxScale knows; guarded by one lock."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.started_wall = time.time()
        self.started_mono = time.monotonic()
        self.maxscale_template = load_template("maxscale.json")
        self.parameters: dict[str, Any] = dict(self.maxscale_template["parameters"])
        self.parameters["admin_host"] = config.host
        self.parameters["admin_port"] = config.port
        self.parameters["passive"] = config.passive
        self.servers = {s.name: copy.copy(s) for s in config.servers}
        # servers this MaxScale's monitor could not connect to at its last tick (``probe.ServerProbe``,
        # the lab's stand-in over real servers): Down here whatever their role; empty otherwise
        self.unreachable: set[str] = set()
        self.monitor_template_parameters: dict[str, Any] = load_template("monitor.json")["attributes"]["parameters"]
        self.monitor_parameters: dict[str, Any] = dict(self.monitor_template_parameters)
        self.monitor_parameters["cooperative_monitoring_locks"] = config.lock_mode
        # what clients see (as in maxscale.cnf: static): one readwritesplit service and its listener,
        # named as in the recorded pair; POST /__emulator__/services changes them
        self.service: dict[str, Any] = {
            "name": "RW-Split-Router",
            "router": "readwritesplit",
            "version_string": "",
            "servers": list(self.servers),
            "listener": "RW-Split-Listener",
            "port": 4006,
        }
        self.locks_holdoff_until = 0.0  # monotonic; after release-locks, no re-locking for a minute
        self.fault = Fault()
        self.unhang = threading.Event()
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=2000)
        # every change of `passive`, with when and through what (rest: the REST API; control: behind
        # the tools' back), so a test can rebuild who was active when
        self.mode_changes: collections.deque[dict[str, Any]] = collections.deque(maxlen=10000)
        self.counts: collections.Counter[str] = collections.Counter()
        self.pair: Any = None  # SharedBackend in pair mode
        self.pair_view: dict[str, Any] | None = None
        if config.backend:
            tick_ms = int(1000 * config.time_scale)
            # as the recorded pair was configured, plus the read_only enforcement MariaDB advises for
            # failover without locks (the shared backend has no writes, so it changes no behaviour)
            self.monitor_parameters.update(
                auto_failover=True,
                auto_rejoin=True,
                monitor_interval=f"{tick_ms}ms",
                enforce_read_only_servers=True,
                enforce_writable_master=True,
            )
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
        if not isinstance(saved, dict):
            log.warning("ignoring state file %s: not a JSON object", path)
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
            "monitor": {
                k: v
                for k, v in self.monitor_parameters.items()
                if k == "cooperative_monitoring_locks" or v != self.monitor_template_parameters.get(k)
            },
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
        """Standalone, this MaxScale gets every lock unless it released them within the last minute;
        in pair mode, it is the lock primary of the shared backend."""
        if self.lock_mode() == "none":
            return False
        if self.pair_view is not None:
            return self.pair_view["primary"] is True
        return time.monotonic() >= self.locks_holdoff_until

    def lock_held(self, server: str) -> bool | None:
        """``lock_held`` of one server: None when locks are off (or, in pair mode, it is unreachable)."""
        if self.lock_mode() == "none":
            return None
        if self.pair_view is not None:
            value = self.pair_view["locks"].get(server)
            return value if isinstance(value, bool) else None
        return self.holds_locks()

    def apply_pair_view(self, view: dict[str, Any]) -> None:
        """One monitor tick's result: the servers' states as this MaxScale now sees them."""
        with self.lock:
            self.pair_view = view
            for name, state in view["states"].items():
                if name in self.servers:
                    self.servers[name].state = state

    def server_state(self, name: str) -> str:
        """The state MaxScale shows for a server: Down while its monitor cannot reach it."""
        return "Down" if name in self.unreachable else self.servers[name].state

    def current_master(self) -> str | None:
        """The server the monitor names master (``monitor_diagnostics.master``): one it cannot reach
        stays named, as a real MaxScale keeps naming the primary it lost until a failover."""
        if self.pair_view is not None:
            master = self.pair_view["master"]
            return master if isinstance(master, str) else None
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

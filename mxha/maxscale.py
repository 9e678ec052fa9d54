"""MaxScale REST API client shared by the exporter, the keepalived hooks and the remediator.

On ``mxha.transport`` (standard-library sockets) on purpose: ``mxha check`` runs this in a fresh
process every check interval, and importing ``requests`` alone costs more CPU than the whole check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mxha.transport import HttpJsonError, JsonHttpClient, Response, error_details

__all__ = ["MaxScaleClient", "MaxScaleError", "Response", "error_details"]

# How a pair keeps one MaxScale in charge: `passive` on all but one, or cooperative monitoring locks.
# Here, not in mxha.model: the node config checks it, and mxha check need not load the /state model.
MODES = ("passive", "locks")

DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_READ_TIMEOUT = 2.0


class MaxScaleError(HttpJsonError):
    """Any failure talking to MaxScale: transport, HTTP status or unexpected document.

    ``status`` is the HTTP status (None when no response arrived), ``details`` the
    ``detail`` strings MaxScale put in ``errors[]`` and ``meta.errors[]``, ``error_kind``
    whether MaxScale answered at all (see ``mxha.transport``).
    """


def passive_patch(passive: bool) -> dict[str, Any]:
    """The body of ``PATCH /v1/maxscale`` that sets the mode: a JSON boolean (what ``maxctrl alter
    maxscale passive`` sends)."""
    return {"data": {"attributes": {"parameters": {"passive": bool(passive)}}}}


@dataclass
class MaxScaleClient(JsonHttpClient):
    """One MaxScale's REST API. Every call has a connect and a read timeout, and may have a deadline.

    Long-lived users (exporter, remediator) pass ``keep_alive=True`` to reuse idle
    connections; a one-shot ``mxha check`` does not need to.
    """

    user: str | None = "admin"
    password: str | None = field(default="mariadb", repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    default_port: int = 8989
    error_class: type[HttpJsonError] = field(default=MaxScaleError, repr=False)

    def _get_data(self, path: str, deadline: float | None = None) -> Any:
        return _data(path, self.request("GET", path, expect=(200,), deadline=deadline).document)

    # -- API -----------------------------------------------------------------------------
    def ping(self, deadline: float | None = None) -> None:
        """``GET /v1/`` answers 200 with an empty body: the cheapest liveness probe (no auth needed)."""
        self.request("GET", "/v1/", expect=(200,), deadline=deadline)

    def get_maxscale(self, deadline: float | None = None) -> dict[str, Any]:
        return maxscale_attributes(self._get_data("/v1/maxscale", deadline))

    def get_servers(self, deadline: float | None = None) -> list[dict[str, Any]]:
        return _objects("/v1/servers", self._get_data("/v1/servers", deadline))

    def get_monitors(self, deadline: float | None = None) -> list[dict[str, Any]]:
        return _objects("/v1/monitors", self._get_data("/v1/monitors", deadline))

    def set_passive(self, passive: bool, deadline: float | None = None) -> None:
        """PATCH /v1/maxscale with ``passive_patch``."""
        self.request("PATCH", "/v1/maxscale", passive_patch(passive), expect=(200, 204), deadline=deadline)

    def call_module_command(
        self, module: str, command: str, args: list[str], deadline: float | None = None
    ) -> Response:
        query = "&".join(quote(a, safe="") for a in args)
        path = f"/v1/maxscale/modules/{quote(module, safe='')}/{quote(command, safe='')}"
        if query:
            path += f"?{query}"
        return self.request("POST", path, expect=(200, 204), deadline=deadline)

    def release_locks(self, monitor: str, deadline: float | None = None) -> str:
        """Release cooperative monitoring locks held by ``monitor``.

        Returns ``"released"``, ``"none-held"`` (locks on, nothing held) or ``"locks-off"``
        (the monitor does not use locks); raises MaxScaleError otherwise.
        """
        try:
            self.call_module_command("mariadbmon", "release-locks", [monitor], deadline)
        except MaxScaleError as exc:
            outcome = release_outcome(" ".join(exc.details)) if exc.status == 400 else None
            if outcome is not None:
                return outcome
            raise
        return "released"


def _data(path: str, doc: Any) -> Any:
    if not isinstance(doc, dict) or "data" not in doc:
        raise MaxScaleError(f"GET {path}: answer has no 'data'", status=200, kind="document")
    return doc["data"]


def maxscale_attributes(data: Any) -> dict[str, Any]:
    """``/v1/maxscale``'s ``data.attributes`` (with its ``parameters``), or a document error."""
    attrs = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attrs, dict) or not isinstance(attrs.get("parameters"), dict):
        raise MaxScaleError("GET /v1/maxscale: no attributes.parameters", status=200, kind="document")
    return attrs


def _objects(path: str, data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise MaxScaleError(f"GET {path}: 'data' is not a list", status=200, kind="document")
    return [item for item in data if isinstance(item, dict)]


def release_outcome(text: str) -> str | None:
    """What MaxScale's refusal of ``release-locks`` means (REST ``errors[]`` or maxctrl's output):
    ``locks-off``, ``none-held``, or None for a real failure. The one place its wording is read."""
    if "locks are not in use" in text:
        return "locks-off"
    if "Did not release any locks" in text:
        return "none-held"
    return None


# The parts of a server's state string the database view exports, one flag each
SERVER_STATE_FLAGS = ("Master", "Slave", "Running", "Down", "Maintenance")


@dataclass(frozen=True)
class ServerLock:
    """One monitored server's cooperative lock, as this MaxScale's monitor reports it."""

    server: str
    held: bool | None  # monitor_diagnostics.server_info[].lock_held: None when locks are off or unreachable


@dataclass(frozen=True)
class MonitorView:
    """What one MariaDB Monitor of this MaxScale says about itself."""

    name: str
    module: str
    lock_mode: str  # "none" or its cooperative_monitoring_locks mode
    primary: bool | None  # monitor_diagnostics.primary: holds the locks (None when locks are off)
    master: str | None = None  # monitor_diagnostics.master: the server this monitor calls the primary
    locks: tuple[ServerLock, ...] = ()  # per monitored server, in MaxScale's order

    @property
    def uses_locks(self) -> bool:
        return self.module == "mariadbmon" and self.lock_mode != "none"


@dataclass(frozen=True)
class ServerView:
    """One server as this MaxScale sees it."""

    name: str
    state: str  # as MaxScale gives it: "Master, Running", "Slave, Running", "Down", ...

    @property
    def running(self) -> bool:
        return state_has_running(self.state)

    def has(self, flag: str) -> bool:
        """``Down`` also when the state says neither Running nor Down (MaxScale's own reading)."""
        parts = self.state.split(", ")
        if flag == "Down":
            return "Down" in parts or "Running" not in parts
        return flag in parts


@dataclass(frozen=True)
class MaxScaleStatus:
    """One MaxScale as every component reads it: ONE reading of MaxScale's documents."""

    passive: bool | None
    config_sync: bool
    version: str
    commit: str
    activated_at: str | None
    monitors: tuple[MonitorView, ...]
    servers: tuple[ServerView, ...] = ()

    @property
    def lock_mode(self) -> str:
        """The cooperative-locks mode in use: the first mariadbmon monitor with locks, by name."""
        return next((m.lock_mode for m in sorted(self.monitors, key=lambda m: m.name) if m.uses_locks), "none")

    @property
    def monitors_with_locks(self) -> tuple[str, ...]:
        """The mariadbmon monitors that use cooperative locks (release-locks applies to these)."""
        return tuple(m.name for m in self.monitors if m.uses_locks)

    @property
    def facts(self) -> DatabaseFacts:
        return database_facts(self.servers, self.monitors)


@dataclass(frozen=True)
class DatabaseFacts:
    """What the policies ask of one MaxScale's database view (``/state`` or a direct read)."""

    lock_primary: bool | None  # holds the cooperative locks; None when locks are off or it cannot say
    sees_primary: bool | None  # the server its monitor names primary is Running here; None: names none
    reaches_majority: bool | None  # more than half of its servers Running; None when it lists none


def reaches_majority(servers: tuple[ServerView, ...]) -> bool | None:
    if not servers:
        return None
    return sum(1 for s in servers if s.running) * 2 > len(servers)


def database_facts(servers: tuple[ServerView, ...], monitors: tuple[MonitorView, ...]) -> DatabaseFacts:
    """ONE reading of a MaxScale's database view for every decision (remediator, hooks, check)."""
    locking = [m for m in monitors if m.uses_locks]
    if not locking or any(m.primary is None for m in locking):
        lock_primary = None
    else:
        lock_primary = any(m.primary for m in locking)
    named = next((m.master for m in sorted(monitors, key=lambda m: m.name) if m.master), None)
    state = {s.name: s for s in servers}
    sees = None if named is None or named not in state else state[named].running
    return DatabaseFacts(lock_primary, sees, reaches_majority(servers))


def status_from_documents(
    maxscale: dict[str, Any], monitors: list[dict[str, Any]], servers: list[dict[str, Any]] | None = None
) -> MaxScaleStatus:
    params = maxscale.get("parameters", {})
    passive = params.get("passive") if isinstance(params, dict) else None
    activated = maxscale.get("activated_at")
    return MaxScaleStatus(
        passive=passive if isinstance(passive, bool) else None,
        config_sync=maxscale.get("config_sync") is not None,
        version=str(maxscale.get("version", "")),
        commit=str(maxscale.get("commit", "")),
        activated_at=activated if isinstance(activated, str) else None,
        monitors=monitor_views(monitors),
        servers=server_views(servers or []),
    )


def server_views(servers: list[dict[str, Any]]) -> tuple[ServerView, ...]:
    """``/v1/servers``' objects as every component reads them."""
    return tuple(ServerView(str(s.get("id")), str(_attributes(s).get("state", ""))) for s in servers)


def _attributes(obj: dict[str, Any]) -> dict[str, Any]:
    attrs = obj.get("attributes")
    return attrs if isinstance(attrs, dict) else {}


def monitor_views(monitors: list[dict[str, Any]]) -> tuple[MonitorView, ...]:
    """``/v1/monitors``' objects as every component reads them."""
    return tuple(
        MonitorView(
            str(m.get("id")),
            str(_attributes(m).get("module", "")),
            monitor_lock_mode(m),
            monitor_primary(m),
            monitor_master(m),
            monitor_locks(m),
        )
        for m in monitors
    )


def begin_status(client: MaxScaleClient, deadline: float, *, servers: bool = False) -> Callable[[], MaxScaleStatus]:
    """Send the requests for MaxScale's documents now, each on a connection of its own; the call
    returned reads the answers (side by side: the caller waits for the slowest, not the sum; one
    thread, no hand-offs), all under ``deadline``. It raises the first MaxScaleError in the order
    /v1/maxscale, /v1/monitors, /v1/servers (the first says most about the node); the answers not
    read then are dropped with their connections."""
    paths = ["/v1/maxscale", "/v1/monitors"] + (["/v1/servers"] if servers else [])
    pending = []
    for path in paths:
        pending.append(client.begin("GET", path, expect=(200,), deadline=deadline))
        if pending[-1].error is not None:
            # its error (or an earlier answer's) is what finish() raises: the rest need not be
            # sent, and a MaxScale that does not accept connections costs one connect, not three
            break

    def answer(i: int) -> Any:
        return _data(paths[i], pending[i].result().document)

    def finish() -> MaxScaleStatus:
        try:
            attrs = maxscale_attributes(answer(0))
            monitors = _objects(paths[1], answer(1))
            server_docs = _objects(paths[2], answer(2)) if servers else None
        finally:
            for p in pending:
                p.abandon()
        return status_from_documents(attrs, monitors, server_docs)

    return finish


def read_status(client: MaxScaleClient, deadline: float, *, servers: bool = False) -> MaxScaleStatus:
    """``begin_status``, answers and all."""
    return begin_status(client, deadline, servers=servers)()


def state_has_running(state: str) -> bool:
    """A server's ``state`` is parts joined by ', '; Running (vs Down) is one of them."""
    return "Running" in state.split(", ")


def server_is_running(server: dict[str, Any]) -> bool:
    state = server.get("attributes", {}).get("state", "")
    return isinstance(state, str) and state_has_running(state)


def monitor_lock_mode(monitor: dict[str, Any]) -> str:
    params = monitor.get("attributes", {}).get("parameters", {})
    mode = params.get("cooperative_monitoring_locks") if isinstance(params, dict) else None
    return mode if isinstance(mode, str) else "none"


def _diagnostics(monitor: dict[str, Any]) -> dict[str, Any]:
    attrs = monitor.get("attributes", {})
    diag = attrs.get("monitor_diagnostics", {}) if isinstance(attrs, dict) else {}
    return diag if isinstance(diag, dict) else {}


def monitor_master(monitor: dict[str, Any]) -> str | None:
    value = _diagnostics(monitor).get("master")
    return value if isinstance(value, str) and value else None


def monitor_locks(monitor: dict[str, Any]) -> tuple[ServerLock, ...]:
    info = _diagnostics(monitor).get("server_info", [])
    out = []
    for item in info if isinstance(info, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            held = item.get("lock_held")
            out.append(ServerLock(item["name"], held if isinstance(held, bool) else None))
    return tuple(out)


def monitor_primary(monitor: dict[str, Any]) -> bool | None:
    diag = monitor.get("attributes", {}).get("monitor_diagnostics", {})
    value = diag.get("primary") if isinstance(diag, dict) else None
    return value if isinstance(value, bool) else None

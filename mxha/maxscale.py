"""MaxScale REST API client shared by the exporter, the keepalived hooks and the remediator.

Built on ``http.client`` on purpose: ``mxha check`` runs this in a fresh process every
check interval, and importing ``requests`` alone costs more CPU than the whole check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mxha.transport import HttpJsonError, JsonHttpClient, Response, error_details

__all__ = ["MaxScaleClient", "MaxScaleError", "Response", "error_details"]

DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_READ_TIMEOUT = 2.0


class MaxScaleError(HttpJsonError):
    """Any failure talking to MaxScale: transport, HTTP status or unexpected document.

    ``status`` is the HTTP status (None when no response arrived), ``details`` the
    ``detail`` strings MaxScale put in ``errors[]`` and ``meta.errors[]``, ``error_kind``
    whether MaxScale answered at all (see ``mxha.transport``).
    """


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
        doc = self.request("GET", path, expect=(200,), deadline=deadline).document
        if not isinstance(doc, dict) or "data" not in doc:
            raise MaxScaleError(f"GET {path}: answer has no 'data'", status=200, kind="document")
        return doc["data"]

    # -- API -----------------------------------------------------------------------------
    def ping(self, deadline: float | None = None) -> None:
        """``GET /v1/`` answers 200 with an empty body: the cheapest liveness probe (no auth needed)."""
        self.request("GET", "/v1/", expect=(200,), deadline=deadline)

    def get_maxscale(self, deadline: float | None = None) -> dict[str, Any]:
        data = self._get_data("/v1/maxscale", deadline)
        attrs = data.get("attributes") if isinstance(data, dict) else None
        if not isinstance(attrs, dict) or not isinstance(attrs.get("parameters"), dict):
            raise MaxScaleError("GET /v1/maxscale: no attributes.parameters", status=200, kind="document")
        return attrs

    def get_servers(self, deadline: float | None = None) -> list[dict[str, Any]]:
        data = self._get_data("/v1/servers", deadline)
        if not isinstance(data, list):
            raise MaxScaleError("GET /v1/servers: 'data' is not a list", status=200, kind="document")
        return [s for s in data if isinstance(s, dict)]

    def get_monitors(self, deadline: float | None = None) -> list[dict[str, Any]]:
        data = self._get_data("/v1/monitors", deadline)
        if not isinstance(data, list):
            raise MaxScaleError("GET /v1/monitors: 'data' is not a list", status=200, kind="document")
        return [m for m in data if isinstance(m, dict)]

    def set_passive(self, passive: bool, deadline: float | None = None) -> None:
        """PATCH /v1/maxscale with a JSON boolean (what ``maxctrl alter maxscale passive`` sends)."""
        body = {"data": {"attributes": {"parameters": {"passive": bool(passive)}}}}
        self.request("PATCH", "/v1/maxscale", body, expect=(200, 204), deadline=deadline)

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
            text = " ".join(exc.details)
            if exc.status == 400 and "locks are not in use" in text:
                return "locks-off"
            if exc.status == 400 and "Did not release any locks" in text:
                return "none-held"
            raise
        return "released"


def server_is_running(server: dict[str, Any]) -> bool:
    """A server's ``state`` is parts joined by ', '; Running (vs Down) is one of them."""
    state = server.get("attributes", {}).get("state", "")
    return isinstance(state, str) and "Running" in state.split(", ")


def monitor_lock_mode(monitor: dict[str, Any]) -> str:
    params = monitor.get("attributes", {}).get("parameters", {})
    mode = params.get("cooperative_monitoring_locks") if isinstance(params, dict) else None
    return mode if isinstance(mode, str) else "none"


def monitor_primary(monitor: dict[str, Any]) -> bool | None:
    diag = monitor.get("attributes", {}).get("monitor_diagnostics", {})
    value = diag.get("primary") if isinstance(diag, dict) else None
    return value if isinstance(value, bool) else None

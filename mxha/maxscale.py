"""MaxScale REST API client shared by the exporter, the keepalived hooks and the remediator.

Built on ``http.client`` on purpose: ``mxha check`` runs this in a fresh process every
check interval, and importing ``requests`` alone costs more CPU than the whole check.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:  # ssl costs several ms to import: only HTTPS URLs load it
    import ssl

DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_READ_TIMEOUT = 2.0


class MaxScaleError(Exception):
    """Any failure talking to MaxScale: transport, HTTP status or unexpected document.

    ``status`` is the HTTP status (None when no response arrived), ``details`` the
    ``detail`` strings MaxScale put in ``errors[]`` and ``meta.errors[]``.
    """

    def __init__(
        self, message: str, *, status: int | None = None, details: tuple[str, ...] = (), kind: str = "http"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.details = details
        # kind: "connect" (nothing answered), "timeout", "auth" (401/403), "http", "protocol"
        self.kind = kind

    def __str__(self) -> str:
        base = super().__str__()
        if self.details:
            return f"{base}: {'; '.join(self.details)}"
        return base


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    document: Any  # parsed JSON body, or None for an empty body


def error_details(document: Any) -> tuple[str, ...]:
    """Collect ``detail`` strings from ``errors[]`` and ``meta.errors[]``, in order, deduplicated.

    MaxScale puts some module-command errors only in ``meta.errors`` (release-locks when
    locks are off), and others in both places.
    """
    found: list[str] = []
    if not isinstance(document, dict):
        return ()
    sources: list[Any] = [document.get("errors")]
    meta = document.get("meta")
    if isinstance(meta, dict):
        sources.append(meta.get("errors"))
    for errors in sources:
        if not isinstance(errors, list):
            continue
        for item in errors:
            if isinstance(item, dict) and isinstance(item.get("detail"), str):
                if item["detail"] not in found:
                    found.append(item["detail"])
    return tuple(found)


class _TimedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(host, port, timeout=read_timeout)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout

    def connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), self._connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(self._read_timeout)


class _TimedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int | None, connect_timeout: float, read_timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=read_timeout, context=context)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ctx = context

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self._connect_timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._ctx.wrap_socket(raw, server_hostname=self.host)
        self.sock.settimeout(self._read_timeout)


class _StaleConnection(Exception):
    """A reused connection turned out closed; the request is sent again on a fresh one."""


@dataclass
class MaxScaleClient:
    """One MaxScale's REST API. Every call has a connect and a read timeout."""

    url: str
    user: str = "admin"
    password: str = field(default="mariadb", repr=False)
    ca_file: str | None = None
    insecure: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    # Long-lived users (exporter, remediator) reuse idle connections; a one-shot `mxha check`
    # does not need to.
    keep_alive: bool = False

    def __post_init__(self) -> None:
        self._idle: list[http.client.HTTPConnection] = []
        self._idle_lock = threading.Lock()
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"MaxScale URL must be http(s)://HOST[:PORT], got {self.url!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or 8989
        self._prefix = parts.path.rstrip("/")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        self._auth = f"Basic {token}"
        self._ssl: ssl.SSLContext | None = None
        if self._scheme == "https":
            import ssl

            ctx = ssl.create_default_context(cafile=self.ca_file)
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx

    def __repr__(self) -> str:  # never show the password or the auth header
        return f"MaxScaleClient(url={self.url!r}, user={self.user!r})"

    # -- transport -----------------------------------------------------------------------
    def _connection(self, connect_timeout: float, read_timeout: float) -> http.client.HTTPConnection:
        if self._ssl is not None:
            return _TimedHTTPSConnection(self._host, self._port, connect_timeout, read_timeout, self._ssl)
        return _TimedHTTPConnection(self._host, self._port, connect_timeout, read_timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: tuple[int, ...] = (200, 204),
        deadline: float | None = None,
    ) -> Response:
        """Send one request; raise MaxScaleError unless the status is in ``expect``.

        ``deadline`` (a ``time.monotonic()`` value) caps the whole call, whatever the
        per-socket timeouts say.
        """
        connect_timeout, read_timeout = self.connect_timeout, self.read_timeout
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MaxScaleError(f"{method} {path}: deadline passed before sending", kind="timeout")
            connect_timeout, read_timeout = min(connect_timeout, remaining), min(read_timeout, remaining)
        headers = {
            "Authorization": self._auth,
            "Accept": "application/json",
            "Connection": "keep-alive" if self.keep_alive else "close",
        }
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        target = f"{self._prefix}{path}"
        conn, reused = self._take(connect_timeout, read_timeout)
        while True:
            try:
                status, resp_headers, raw, will_close = self._exchange(
                    conn, method, path, target, payload, headers, read_timeout, deadline
                )
                break
            except _StaleConnection as exc:
                conn.close()
                if not reused:  # a fresh connection that drops us is a real failure
                    raise MaxScaleError(
                        f"{method} {path}: connection closed by MaxScale", kind="protocol"
                    ) from exc.__cause__
                conn, reused = self._connection(connect_timeout, read_timeout), False
            except BaseException:
                conn.close()
                raise
        self._give_back(conn, will_close)
        document: Any = None
        if raw.strip():
            try:
                document = json.loads(raw)
            except ValueError as exc:
                raise MaxScaleError(
                    f"{method} {path}: HTTP {status} with a body that is not JSON",
                    status=status,
                    kind="protocol",
                ) from exc
        if status not in expect:
            kind = "auth" if status in (401, 403) else "http"
            raise MaxScaleError(
                f"{method} {path}: HTTP {status}", status=status, details=error_details(document), kind=kind
            )
        return Response(status, resp_headers, document)

    def _take(self, connect_timeout: float, read_timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        if self.keep_alive:
            with self._idle_lock:
                while self._idle:
                    conn = self._idle.pop()
                    if conn.sock is not None:
                        conn.sock.settimeout(read_timeout)
                        return conn, True
        return self._connection(connect_timeout, read_timeout), False

    def _give_back(self, conn: http.client.HTTPConnection, will_close: bool) -> None:
        if self.keep_alive and not will_close and conn.sock is not None:
            with self._idle_lock:
                if len(self._idle) < 4:
                    self._idle.append(conn)
                    return
        conn.close()

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        target: str,
        payload: bytes | None,
        headers: dict[str, str],
        read_timeout: float,
        deadline: float | None,
    ) -> tuple[int, dict[str, str], bytes, bool]:
        sent = False
        try:
            try:
                conn.request(method, target, body=payload, headers=headers)
                sent = True
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                raise _StaleConnection() from exc
            except OSError as exc:
                if isinstance(exc, TimeoutError):
                    raise MaxScaleError(f"{method} {path}: connect timed out", kind="timeout") from exc
                raise MaxScaleError(f"{method} {path}: cannot connect to {self.url}: {exc}", kind="connect") from exc
            if deadline is not None and conn.sock is not None:
                conn.sock.settimeout(max(0.001, min(read_timeout, deadline - time.monotonic())))
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, {k: v for k, v in resp.getheaders()}, raw, resp.will_close
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            # an idle keep-alive connection the server closed: nothing was answered
            if sent:
                raise _StaleConnection() from exc
            raise MaxScaleError(f"{method} {path}: {type(exc).__name__}: {exc}", kind="protocol") from exc
        except TimeoutError as exc:  # MaxScaleError and _StaleConnection pass through untouched
            raise MaxScaleError(f"{method} {path}: no answer within {read_timeout:g}s", kind="timeout") from exc
        except (http.client.HTTPException, OSError) as exc:  # ssl.SSLError is an OSError
            raise MaxScaleError(f"{method} {path}: {type(exc).__name__}: {exc}", kind="protocol") from exc

    def _get_data(self, path: str, deadline: float | None = None) -> Any:
        doc = self.request("GET", path, expect=(200,), deadline=deadline).document
        if not isinstance(doc, dict) or "data" not in doc:
            raise MaxScaleError(f"GET {path}: answer has no 'data'", status=200, kind="protocol")
        return doc["data"]

    # -- API -----------------------------------------------------------------------------
    def ping(self, deadline: float | None = None) -> None:
        """``GET /v1/`` answers 200 with an empty body: the cheapest liveness probe (no auth needed)."""
        self.request("GET", "/v1/", expect=(200,), deadline=deadline)

    def get_maxscale(self, deadline: float | None = None) -> dict[str, Any]:
        data = self._get_data("/v1/maxscale", deadline)
        attrs = data.get("attributes") if isinstance(data, dict) else None
        if not isinstance(attrs, dict) or not isinstance(attrs.get("parameters"), dict):
            raise MaxScaleError("GET /v1/maxscale: no attributes.parameters", status=200, kind="protocol")
        return attrs

    def get_servers(self, deadline: float | None = None) -> list[dict[str, Any]]:
        data = self._get_data("/v1/servers", deadline)
        if not isinstance(data, list):
            raise MaxScaleError("GET /v1/servers: 'data' is not a list", status=200, kind="protocol")
        return [s for s in data if isinstance(s, dict)]

    def get_monitors(self, deadline: float | None = None) -> list[dict[str, Any]]:
        data = self._get_data("/v1/monitors", deadline)
        if not isinstance(data, list):
            raise MaxScaleError("GET /v1/monitors: 'data' is not a list", status=200, kind="protocol")
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

"""JSON over HTTP(S) with a deadline that holds whatever the peer does.

One transport for every HTTP read the project makes of a peer (a MaxScale REST API, an
exporter's ``/state``). Built on ``http.client`` on purpose: ``mxha check`` runs in a fresh
process every check interval, and importing ``requests`` alone costs more CPU than the check.

Why not per-socket timeouts alone: a peer that drips one byte every half second never trips a
read timeout, and would hold a reconcile (and its cluster's lock) for as long as it likes.
Here every receive gets only the time left until the call's deadline, so a call ends by its
deadline by itself; nothing relies on abandoning a stuck thread.

Errors say whether the peer ANSWERED: only "no answer" (nothing came back: refused, reset,
or silence until the deadline) may ever count toward "that node is down". A peer that
answered with something we cannot use (refused credentials, an HTTP error, a bad or cut-off
document, a TLS failure) is alive, and what it is doing is unknown.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # ssl costs several ms to import: only HTTPS URLs load it
    import ssl

# What a failed call amounts to, for "is that node down?": the ONE place this is decided.
NO_ANSWER = "no_answer"
ERROR_KINDS = (NO_ANSWER, "auth", "http", "document", "tls")


def redact_url(url: str) -> str:
    """The URL without ``user:password@``: the form every log line, error and record uses."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class HttpJsonError(Exception):
    """A call that did not give a usable answer.

    ``kind`` says what happened: ``connect`` (refused or unreachable), ``timeout``, ``closed``
    (the peer hung up), ``auth`` (401/403), ``http`` (another unexpected status), ``document``
    (not the JSON expected), ``tls``. ``answered`` says whether any byte of an answer arrived;
    ``error_kind`` is the category published in ``/state``. ``sent`` says whether the whole request
    left us: a write that was sent and got no complete answer may have been applied, or may still be.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        details: tuple[str, ...] = (),
        kind: str = "http",
        answered: bool | None = None,
        sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.details = details
        self.kind = kind
        self.sent = sent
        if answered is None:
            answered = kind not in ("connect", "timeout", "closed")
        self.answered = answered

    @property
    def error_kind(self) -> str:
        if not self.answered:
            return NO_ANSWER
        if self.kind in ("auth", "http", "tls"):
            return self.kind
        return "document"

    def __str__(self) -> str:
        base = super().__str__()
        if self.details:
            return f"{base}: {'; '.join(self.details)}"
        return base


def error_details(document: Any) -> tuple[str, ...]:
    """``detail`` strings from ``errors[]`` and ``meta.errors[]``, in order, deduplicated.

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


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    document: Any  # parsed JSON body, or None for an empty body


class _DeadlineRaw(io.RawIOBase):
    """The receive side of a socket where each receive waits at most until the deadline."""

    def __init__(self, owner: _DeadlineSocket) -> None:
        self._owner = owner
        self._released = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        sock, clock = self._owner.sock, self._owner.clock
        sock.settimeout(clock.wait_limit())
        n = sock.recv_into(buffer)
        if n:
            clock.received = True
        return n

    def close(self) -> None:
        if not self._released:
            self._released = True
            self._owner.reader_closed()
        super().close()


class _Clock:
    """The limits of the call in progress on one connection."""

    def __init__(self, read_timeout: float) -> None:
        self.read_timeout = read_timeout
        self.deadline: float | None = None
        self.received = False

    def wait_limit(self) -> float:
        limit = self.read_timeout
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline reached")
            limit = min(limit, remaining)
        return limit


class _DeadlineSocket:
    """A socket whose ``makefile`` reads under the connection's clock; everything else passes through.

    Like a real socket, it stays open while a reader made by ``makefile`` is open: http.client
    closes the connection as soon as it has read the headers of a ``Connection: close`` answer and
    reads the body through the response's reader afterwards."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self.sock = sock
        self.clock = clock
        self._readers = 0
        self._close_wanted = False

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_DeadlineRaw(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._close_wanted and self._readers <= 0:
            self.sock.close()

    def close(self) -> None:
        self._close_wanted = True
        if self._readers <= 0:
            self.sock.close()

    def sendall(self, data: Any) -> None:
        self.sock.settimeout(self.clock.wait_limit())
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, connect_timeout: float, clock: _Clock) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self.clock = clock
        self._connect_timeout = connect_timeout

    def connect(self) -> None:
        self.sock = _DeadlineSocket(_connect(self.host, self.port, self._connect_timeout), self.clock)


class _TLSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, connect_timeout: float, clock: _Clock, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=connect_timeout, context=context)
        self.clock = clock
        self._connect_timeout = connect_timeout
        self._ctx = context

    def connect(self) -> None:
        raw = _connect(self.host, self.port, self._connect_timeout)
        raw.settimeout(self.clock.wait_limit())
        self.sock = _DeadlineSocket(self._ctx.wrap_socket(raw, server_hostname=self.host), self.clock)


AnyConnection = _Connection | _TLSConnection


class _StaleConnection(Exception):
    """A reused connection turned out closed; the request is sent again on a fresh one."""

    def __init__(self, sent: bool = False) -> None:
        super().__init__()
        self.sent = sent


@dataclass
class JsonHttpClient:
    """JSON over HTTP(S) to one peer: basic auth, connect/read timeouts and a per-call deadline."""

    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    insecure: bool = False
    connect_timeout: float = 1.0
    read_timeout: float = 2.0
    keep_alive: bool = False
    default_port: int = 80
    authorization: str | None = field(default=None, repr=False)  # a whole Authorization header (e.g. Bearer)

    error_class: type[HttpJsonError] = field(default=HttpJsonError, repr=False)

    def __post_init__(self) -> None:
        self._idle: list[AnyConnection] = []
        self._idle_lock = threading.Lock()
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"URL must be http(s)://HOST[:PORT][/PATH], got {redact_url(self.url)!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" and self.default_port == 80 else self.default_port)
        self._path = parts.path
        self._query = parts.query
        if parts.username is not None and self.user is None:  # credentials in the URL: basic auth
            from urllib.parse import unquote

            self.user, self.password = unquote(parts.username), unquote(parts.password or "")
        self.shown_url = redact_url(self.url)
        self._auth: str | None = None
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode("ascii")
            self._auth = f"Basic {token}"
        if self.authorization is not None:
            self._auth = self.authorization
        self._ssl: ssl.SSLContext | None = None
        if self._scheme == "https":
            import ssl

            ctx = ssl.create_default_context(cafile=self.ca_file)
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx

    def __repr__(self) -> str:  # never the password or the auth header
        return f"{type(self).__name__}(url={self.shown_url!r}, user={self.user!r})"

    def _error(self, message: str, **kw: Any) -> HttpJsonError:
        return self.error_class(message, **kw)

    def _new_connection(self, connect_timeout: float) -> AnyConnection:
        clock = _Clock(self.read_timeout)
        if self._ssl is not None:
            return _TLSConnection(self._host, self._port, connect_timeout, clock, self._ssl)
        return _Connection(self._host, self._port, connect_timeout, clock)

    def request(
        self,
        method: str,
        path: str | None = None,
        body: Any = None,
        *,
        expect: tuple[int, ...] = (200, 204),
        deadline: float | None = None,
    ) -> Response:
        """Send one request; raise ``error_class`` unless the status is in ``expect``.

        ``path`` is appended to the URL's own path (None: the URL as configured, query and all).
        ``deadline`` (a ``time.monotonic()`` value) ends the whole call, whatever the peer does.
        """
        if path is None:
            target = self._path or "/"
            shown = target  # never the query: it may carry a token
            if self._query:
                target += "?" + self._query
        else:
            target = f"{self._path.rstrip('/')}{path}"
            shown = path
        what = f"{method} {shown}"
        connect_timeout = self.connect_timeout
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error(f"{what}: deadline passed before sending", kind="timeout")
            connect_timeout = min(connect_timeout, remaining)
        headers = {
            "Accept": "application/json",
            "Connection": "keep-alive" if self.keep_alive else "close",
        }
        if self._auth is not None:
            headers["Authorization"] = self._auth
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn, reused = self._take()
        while True:
            conn.clock.deadline, conn.clock.received = deadline, False
            try:
                status, resp_headers, raw, will_close = self._exchange(conn, what, target, payload, headers)
                break
            except _StaleConnection as exc:
                conn.close()
                if not reused:  # a fresh connection that drops us is a real failure
                    raise self._error(
                        f"{what}: connection closed by the peer", kind="closed", sent=exc.sent
                    ) from exc.__cause__
                conn, reused = self._new_connection(connect_timeout), False
            except BaseException:
                conn.close()
                raise
        self._give_back(conn, will_close)
        document: Any = None
        if raw.strip():
            try:
                document = json.loads(raw)
            except ValueError as exc:
                raise self._error(
                    f"{what}: HTTP {status} with a body that is not JSON", status=status, kind="document"
                ) from exc
        if status not in expect:
            kind = "auth" if status in (401, 403) else "http"
            raise self._error(f"{what}: HTTP {status}", status=status, details=error_details(document), kind=kind)
        return Response(status, resp_headers, document)

    def get_json(self, path: str | None = None, deadline: float | None = None) -> Any:
        """GET a JSON document (200 only)."""
        return self.request("GET", path, expect=(200,), deadline=deadline).document

    def _take(self) -> tuple[AnyConnection, bool]:
        if self.keep_alive:
            with self._idle_lock:
                while self._idle:
                    conn = self._idle.pop()
                    if conn.sock is not None:
                        return conn, True
        return self._new_connection(self.connect_timeout), False

    def _give_back(self, conn: AnyConnection, will_close: bool) -> None:
        if self.keep_alive and not will_close and conn.sock is not None:
            with self._idle_lock:
                if len(self._idle) < 4:
                    self._idle.append(conn)
                    return
        conn.close()

    def _exchange(
        self, conn: AnyConnection, what: str, target: str, payload: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes, bool]:
        sent = False
        try:
            try:
                conn.request(what.split(" ", 1)[0], target, body=payload, headers=headers)
                sent = True
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                raise _StaleConnection() from exc
            except OSError as exc:
                if isinstance(exc, TimeoutError):
                    raise self._error(f"{what}: connect timed out", kind="timeout") from exc
                if _is_tls_error(exc):
                    raise self._error(f"{what}: TLS: {exc}", kind="tls", answered=True) from exc
                raise self._error(f"{what}: cannot connect to {self.shown_url}: {exc}", kind="connect") from exc
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, {k: v for k, v in resp.getheaders()}, raw, resp.will_close
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            # an idle keep-alive connection the server closed: nothing was answered
            if sent and not conn.clock.received:
                raise _StaleConnection(sent=True) from exc
            raise self._error(
                f"{what}: {type(exc).__name__}: {exc}", kind="closed", answered=conn.clock.received, sent=sent
            ) from exc
        except TimeoutError as exc:  # HttpJsonError and _StaleConnection pass through untouched
            if conn.clock.received:
                raise self._error(
                    f"{what}: answer not complete by the deadline", kind="timeout", answered=True, sent=True
                ) from exc
            raise self._error(
                f"{what}: no answer within the read timeout or deadline", kind="timeout", sent=True
            ) from exc
        except (http.client.HTTPException, OSError) as exc:  # ssl.SSLError is an OSError
            if _is_tls_error(exc):
                raise self._error(f"{what}: TLS: {exc}", kind="tls", answered=True, sent=sent) from exc
            raise self._error(
                f"{what}: {type(exc).__name__}: {exc}",
                kind="document" if conn.clock.received else "closed",
                answered=conn.clock.received,
                sent=sent,
            ) from exc


def _is_tls_error(exc: BaseException) -> bool:
    return type(exc).__module__ == "ssl" or "SSL" in type(exc).__name__

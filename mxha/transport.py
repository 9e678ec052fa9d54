"""JSON over HTTP(S) with a deadline that holds whatever the peer does.

One transport for every HTTP read the project makes of a peer (a MaxScale REST API, an
exporter's ``/state``). Built on the standard library's sockets on purpose: ``mxha check`` runs in
a fresh process every check interval, and importing ``requests`` alone costs more CPU than the check;
the exporter's scrape reads three documents, and ``http.client``'s header parsing was a third of each.

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


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Malformed(Exception):
    """The peer's answer is not HTTP/1.x as we can read it."""


class _Closed(Exception):
    """The peer closed the connection before its answer was complete."""


MAX_HEAD_BYTES = 64 * 1024  # status line and headers; MaxScale's are a few hundred bytes


class _Connection:
    """One HTTP/1.1 connection to the peer (TLS for https), every send and receive bounded by the
    connection's clock: the time left until the call's deadline, at most the read timeout.

    HTTP/1.1 as the peers we talk to speak it (MaxScale's REST API, our own exporters and replicas):
    Content-Length, chunked or read-to-close bodies, 1xx answers skipped, keep-alive. Written here
    rather than on ``http.client``, whose header parsing (the ``email`` package) was a third of
    each request's CPU in the exporter's scrape."""

    def __init__(
        self, host: str, port: int, connect_timeout: float, clock: _Clock, context: ssl.SSLContext | None
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.context = context
        self.sock: socket.socket | None = None
        self._buf = b""
        hostport = f"[{host}]" if ":" in host else host
        default = 443 if context is not None else 80
        self.host_header = hostport if port == default else f"{hostport}:{port}"

    def connect(self) -> None:
        raw = _connect(self.host, self.port, self.connect_timeout)
        if self.context is not None:
            try:
                raw.settimeout(self.clock.wait_limit())
                raw = self.context.wrap_socket(raw, server_hostname=self.host)
            except BaseException:
                raw.close()
                raise
        self.sock = raw
        self._buf = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._buf = b""

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.settimeout(self.clock.wait_limit())
        self.sock.sendall(data)

    def _fill(self) -> None:
        assert self.sock is not None
        self.sock.settimeout(self.clock.wait_limit())
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed()
        self.clock.received = True
        self._buf += chunk

    def read_until(self, marker: bytes, limit: int) -> bytes:
        start = 0
        while True:
            at = self._buf.find(marker, start)
            if at >= 0:
                out, self._buf = self._buf[:at], self._buf[at + len(marker) :]
                return out
            if len(self._buf) > limit:
                raise _Malformed(f"no end of {marker!r} within {limit} bytes")
            start = max(0, len(self._buf) - len(marker) + 1)
            self._fill()

    def read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def read_to_close(self) -> bytes:
        while True:
            try:
                self._fill()
            except _Closed:
                out, self._buf = self._buf, b""
                return out

    def response(self, method: str) -> tuple[int, dict[str, str], bytes, bool]:
        """Read one answer: (status, headers as sent, body, whether the connection must close)."""
        while True:
            lines = self.read_until(b"\r\n\r\n", MAX_HEAD_BYTES).decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise _Malformed(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
            status = int(code)
            headers: dict[str, str] = {}
            lower: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                    raise _Malformed(f"bad header line {line[:80]!r}")
                value = value.strip()
                key = name.lower()
                lower[key] = f"{lower[key]}, {value}" if key in lower else value
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            if 100 <= status < 200:
                continue  # an interim answer (100 Continue): the real one follows
            break
        tokens = {t.strip().lower() for t in lower.get("connection", "").split(",")}
        will_close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
        if method == "HEAD" or status in (204, 304):
            return status, headers, b"", will_close
        if "chunked" in lower.get("transfer-encoding", "").lower():
            return status, headers, self._chunked(), will_close
        length = lower.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise _Malformed(f"bad Content-Length {length[:40]!r}")
            return status, headers, self.read_exactly(int(length)), will_close
        return status, headers, self.read_to_close(), True

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self.read_until(b"\r\n", 1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError as exc:
                raise _Malformed(f"bad chunk size {size_line[:40]!r}") from exc
            if size == 0:
                while self.read_until(b"\r\n", MAX_HEAD_BYTES):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self.read_exactly(size))
            if self.read_exactly(2) != b"\r\n":
                raise _Malformed("a chunk does not end with CRLF")


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
        self._idle: list[_Connection] = []
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

    def _new_connection(self, connect_timeout: float) -> _Connection:
        return _Connection(self._host, self._port, connect_timeout, _Clock(self.read_timeout), self._ssl)

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

    def _take(self) -> tuple[_Connection, bool]:
        if self.keep_alive:
            with self._idle_lock:
                while self._idle:
                    conn = self._idle.pop()
                    if conn.sock is not None:
                        return conn, True
        return self._new_connection(self.connect_timeout), False

    def _give_back(self, conn: _Connection, will_close: bool) -> None:
        if self.keep_alive and not will_close and conn.sock is not None:
            with self._idle_lock:
                if len(self._idle) < 4:
                    self._idle.append(conn)
                    return
        conn.close()

    def _exchange(
        self, conn: _Connection, what: str, target: str, payload: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes, bool]:
        method = what.split(" ", 1)[0]
        head = [f"{method} {target} HTTP/1.1", f"Host: {conn.host_header}", "Accept-Encoding: identity"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if payload is not None:
            head.append(f"Content-Length: {len(payload)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (payload or b"")
        sent = False
        try:
            try:
                if conn.sock is None:
                    conn.connect()
                conn.send(request)
                sent = True
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise _StaleConnection() from exc
            except OSError as exc:
                if isinstance(exc, TimeoutError):
                    raise self._error(f"{what}: connect timed out", kind="timeout") from exc
                if _is_tls_error(exc):
                    raise self._error(f"{what}: TLS: {exc}", kind="tls", answered=True) from exc
                raise self._error(f"{what}: cannot connect to {self.shown_url}: {exc}", kind="connect") from exc
            return conn.response(method)
        except (_Closed, ConnectionResetError, BrokenPipeError) as exc:
            # an idle keep-alive connection the server closed: nothing was answered
            if sent and not conn.clock.received:
                raise _StaleConnection(sent=True) from exc
            why = "connection closed mid-answer" if isinstance(exc, _Closed) else f"{type(exc).__name__}: {exc}"
            raise self._error(f"{what}: {why}", kind="closed", answered=conn.clock.received, sent=sent) from exc
        except TimeoutError as exc:  # HttpJsonError and _StaleConnection pass through untouched
            if conn.clock.received:
                raise self._error(
                    f"{what}: answer not complete by the deadline", kind="timeout", answered=True, sent=True
                ) from exc
            raise self._error(
                f"{what}: no answer within the read timeout or deadline", kind="timeout", sent=True
            ) from exc
        except _Malformed as exc:
            raise self._error(f"{what}: {exc}", kind="document", answered=True, sent=True) from exc
        except OSError as exc:  # ssl.SSLError is an OSError
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

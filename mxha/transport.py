"""JSON over HTTP(S) with a deadline that holds whatever the peer does.

One transport for every HTTP read the project makes of a peer (a MaxScale REST API, an
exporter's ``/state``). The standard library speaks HTTP: ``http.client`` parses every answer.
What is ours is what no library gives:

- One deadline for the whole call. Per-socket timeouts alone let a peer that drips one byte
  every half second hold a reconcile (and its cluster's lock) for as long as it likes; here
  every receive gets only the time left until the call's deadline, so a call ends by its
  deadline by itself; nothing relies on abandoning a stuck thread.
- Errors that say whether the peer ANSWERED: only "no answer" (nothing came back: refused,
  reset, or silence until the deadline) may ever count toward "that node is down". A peer that
  answered with something we cannot use (refused credentials, an HTTP error, a bad, cut-off or
  oversized document, a TLS failure) is alive, and what it is doing is unknown.
- Whether a request was sent whole: a write sent and not answered may still land.
- The one check of a URL a user gives (``check_http_url``) and its redacted form (``redact_url``).
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

if TYPE_CHECKING:  # ssl costs several ms to import: only HTTPS URLs load it
    import ssl

# What a failed call amounts to, for "is that node down?": the ONE place this is decided.
NO_ANSWER = "no_answer"
ERROR_KINDS = (NO_ANSWER, "auth", "http", "document", "tls")


URL_KINDS = ("any", "maxscale", "state", "base")
_HOST_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


class BadUrl(ValueError):
    """What is wrong with a URL, in words that never repeat the URL (it may hold a password, or be
    a secret pasted into the wrong key): the caller names the key."""


def check_http_url(url: str, kind: str = "any") -> SplitResult:
    """The ONE check of an HTTP(S) URL a user gives (every URL key, ``--via``): scheme, a host (a
    name, an IPv4 address, or an IPv6 address in brackets), a port from 1 to 65535 if given.

    ``kind`` adds what a URL of that use must look like, refused at start-up rather than failing
    every call later: ``maxscale`` (the REST API's root: mxha adds ``/v1/...``, so a path is only a
    reverse proxy's prefix; no credentials, which ``user``/``password`` replace; no query, never
    sent), ``state`` (an exporter's ``/state``: a path is required), ``base`` (a server's root,
    e.g. another remediator replica: no path, no query).
    """
    if not isinstance(url, str) or not url:
        raise BadUrl("must be an http(s) URL")
    if any(ch.isspace() for ch in url):
        raise BadUrl("must not contain spaces or line breaks")
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise BadUrl("must start with http:// or https://")
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    netloc = parts.netloc if parts is not None else url[len(scheme) + 3 :].split("/", 1)[0]
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        hostport = netloc
    check_host_port(hostport)
    if parts is None:  # urlsplit refused what _check_host_port let through: say so plainly
        raise BadUrl("is not a valid URL")
    path = parts.path
    if kind == "maxscale":
        if at:
            raise BadUrl("must not hold credentials: give them as user and password(_file/_env)")
        if parts.query or parts.fragment:
            raise BadUrl("must not have a ?query or #fragment (they are never sent)")
        segments = [s for s in path.split("/") if s]
        if "v1" in segments:
            prefix = "".join(f"/{s}" for s in segments[: segments.index("v1")])
            root = f"{parts.scheme}://{hostport}{prefix}"
            raise BadUrl(
                f"give the REST API's root without /v1 (mxha adds /v1/...), e.g. {root}; a path is only "
                "for a prefix in front of a MaxScale behind a reverse proxy, e.g. http://proxy/maxscale"
            )
    elif kind == "state":
        if path in ("", "/"):
            raise BadUrl("needs the path of the exporter's /state, e.g. http://HOST:9843/state")
    elif kind == "base":
        if path not in ("", "/") or parts.query or parts.fragment:
            raise BadUrl("must be the server's root URL without a path, e.g. http://HOST:9844")
    return parts


def check_host_port(hostport: str) -> None:
    """``HOST[:PORT]`` as in a URL (the IPv6 address in brackets); ``BadUrl`` says what is wrong."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise BadUrl("has an unbalanced [ (an IPv6 address goes in brackets: [::1]:PORT)")
        host, rest = hostport[1:end], hostport[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadUrl("has no IPv6 address in its [brackets]") from None
        if rest and not rest.startswith(":"):
            raise BadUrl("has something between ] and the :PORT")
        port = rest[1:] if rest else None
    elif "]" in hostport:
        raise BadUrl("has an unbalanced ] (an IPv6 address goes in brackets: [::1]:PORT)")
    elif hostport.count(":") > 1:
        raise BadUrl("has an IPv6 address without brackets (write [::1]:PORT)")
    else:
        host, colon, port_text = hostport.partition(":")
        port = port_text if colon else None
        if not host:
            raise BadUrl("has no host")
        if not _HOST_NAME.match(host):
            raise BadUrl("has a host that is not a name or an IP address")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise BadUrl("has a host that looks like an IPv4 address but is not one") from None
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise BadUrl("has a port that is not a number from 1 to 65535")


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
    """An HTTP answer whose body was JSON (or empty)."""

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
    # getaddrinfo encodes a str host with the idna codec, which loads encodings.idna, stringprep and
    # unicodedata (3.8 ms of each `mxha check`); an ASCII name or address needs none of it
    sock = socket.create_connection((host.encode("ascii") if host.isascii() else host, port), timeout)  # type: ignore[arg-type]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Malformed(Exception):
    """The peer's answer is not HTTP/1.x as we can read it."""


class _Closed(Exception):
    """The peer closed the connection before its answer was complete."""


MAX_BODY_BYTES = 8 * 1024 * 1024  # MaxScale's largest document (servers, monitors) is a few hundred KiB


class _DeadlineStream(io.RawIOBase):
    """What http.client reads an answer from: the connection's socket, each receive given only the
    time left until the call's deadline (at most the read timeout), so a peer dripping bytes cannot
    stretch the call. Closing it leaves the socket open: the connection may be kept alive."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        super().__init__()
        self._sock = sock
        self._clock = clock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._clock.wait_limit())
        count = self._sock.recv_into(buffer)
        if count:
            self._clock.received = True
        return count


class _AnswerSource:
    """The socket-like object http.client's HTTPResponse takes: all it asks of it is ``makefile``."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self._sock = sock
        self._clock = clock

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineStream(self._sock, self._clock))


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, kind):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class _Connection:
    """One HTTP/1.1 connection to the peer (TLS for https), every send and receive bounded by the
    connection's clock: the time left until the call's deadline, at most the read timeout.
    http.client parses each answer (status line, headers, 1xx skipped, Content-Length, chunked or
    read-to-close bodies, whether the connection stays open)."""

    def __init__(
        self, host: str, port: int, connect_timeout: float, clock: _Clock, context: ssl.SSLContext | None
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.context = context
        self.sock: socket.socket | None = None

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

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.settimeout(self.clock.wait_limit())
        self.sock.sendall(data)

    def response(self, method: str) -> tuple[int, dict[str, str], bytes, bool]:
        """Read one answer: (status, headers as sent, body, whether the connection must close)."""
        # imported here: config checks import this module for check_http_url, and http.client loads
        # the ssl and email packages (tens of ms of a hook's start-up) that only a request needs
        import http.client

        assert self.sock is not None
        answer = http.client.HTTPResponse(_AnswerSource(self.sock, self.clock), method=method)  # type: ignore[arg-type]
        try:
            try:
                answer.begin()
            except ConnectionResetError as exc:  # http.client's RemoteDisconnected: closed, nothing said
                raise _Closed() from exc
            if answer.msg.defects:  # e.g. a header line without a colon: the rest was not read as headers
                raise _Malformed(f"bad header block ({type(answer.msg.defects[0]).__name__})")
            length = answer.getheader("Content-Length")
            if length is not None and not answer.chunked and not length.strip().isdigit():
                raise _Malformed(f"bad Content-Length {length[:40]!r}")  # http.client would read to close
            if answer.length is not None:
                if answer.length > MAX_BODY_BYTES:
                    raise _Malformed(f"a body of {answer.length} bytes, above the {MAX_BODY_BYTES} we read")
                body = answer.read()  # IncompleteRead if the peer closes before the end
            else:  # chunked, or to the close
                body = answer.read(MAX_BODY_BYTES + 1)
                if len(body) > MAX_BODY_BYTES:
                    raise _Malformed(f"a body above the {MAX_BODY_BYTES} bytes we read")
            headers: dict[str, str] = {}
            for name, value in answer.getheaders():
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            return answer.status, headers, body, bool(answer.will_close)
        except http.client.IncompleteRead as exc:
            if _caused_by(exc, ValueError):  # how http.client reports a bad chunk size
                raise _Malformed("bad chunk size") from exc
            raise _Closed() from exc
        except (http.client.HTTPException, ValueError) as exc:  # a bad status line, header or chunk size
            raise _Malformed(f"{type(exc).__name__}: {str(exc)[:80]}") from exc
        finally:
            answer.close()  # its reader only: the socket stays with the connection


def load_http_client_without_ssl() -> None:
    """Import http.client without the ssl module, in a short-lived process (``mxha check``) whose
    HTTP goes through this module. http.client imports ssl (several ms of start-up, each check
    interval) only to define ``HTTPSConnection``, which mxha never uses: an https peer's socket is
    wrapped here, and ``JsonHttpClient`` imports ssl itself for an https URL. For the rest of the
    process http.client has no ``HTTPSConnection`` (urllib.request then refuses https URLs), so
    nothing long-lived calls this. A no-op once http.client or ssl is loaded."""
    import sys

    if "http.client" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # http.client's `import ssl` fails; it allows that
    try:
        import http.client  # noqa: F401
    finally:
        del sys.modules["ssl"]


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
        try:
            parts = check_http_url(self.url)
        except BadUrl as exc:  # configured URLs were checked at load: this is a caller's mistake
            raise ValueError(f"URL {redact_url(self.url)!r} {exc}") from None
        self._scheme = parts.scheme
        self._host = parts.hostname or ""  # never empty: check_http_url requires a host
        self._port = parts.port or (443 if parts.scheme == "https" and self.default_port == 80 else self.default_port)
        self._path = parts.path
        self._query = parts.query
        if parts.username is not None and self.user is None:  # credentials in the URL: basic auth
            from urllib.parse import unquote

            self.user, self.password = unquote(parts.username), unquote(parts.password or "")
        self.shown_url = redact_url(self.url)
        hostport = f"[{self._host}]" if ":" in self._host else self._host
        default = 443 if self._scheme == "https" else 80
        self._host_header = hostport if self._port == default else f"{hostport}:{self._port}"
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

    def _prepare(self, method: str, path: str | None, body: Any, deadline: float | None) -> tuple[str, bytes, float]:
        """(what the call is called in errors, the request's bytes, the connect timeout)."""
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
        head = [
            f"{method} {target} HTTP/1.1",
            f"Host: {self._host_header}",
            "Accept-Encoding: identity",
            "Accept: application/json",
            f"Connection: {'keep-alive' if self.keep_alive else 'close'}",
        ]
        if self._auth is not None:
            head.append(f"Authorization: {self._auth}")
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        return what, ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload, connect_timeout

    def begin(
        self,
        method: str,
        path: str | None = None,
        body: Any = None,
        *,
        expect: tuple[int, ...] = (200, 204),
        deadline: float | None = None,
    ) -> PendingRequest:
        """Send one request now, on a connection of its own; ``result()`` of what is returned reads
        the answer. Several begun before any is read are answered side by side, in ONE thread: the
        caller waits for the slowest, not the sum. A failure to send is kept and raised by ``result()``.
        """
        try:
            what, request, connect_timeout = self._prepare(method, path, body, deadline)
        except HttpJsonError as exc:
            return PendingRequest.failed(exc)
        pending = PendingRequest(self, what, request, expect, deadline, connect_timeout)
        try:
            pending.advance(until_sent=True)
        except HttpJsonError as exc:
            pending.error = exc
        return pending

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
        return self.begin(method, path, body, expect=expect, deadline=deadline).result()

    def get_json(self, path: str | None = None, deadline: float | None = None) -> Any:
        """GET a JSON document (200 only)."""
        return self.request("GET", path, expect=(200,), deadline=deadline).document

    def _take(self, connect_timeout: float) -> tuple[_Connection, bool]:
        if self.keep_alive:
            with self._idle_lock:
                while self._idle:
                    conn = self._idle.pop()
                    if conn.sock is not None:
                        return conn, True
        return self._new_connection(connect_timeout), False

    def _give_back(self, conn: _Connection, will_close: bool) -> None:
        if self.keep_alive and not will_close and conn.sock is not None:
            with self._idle_lock:
                if len(self._idle) < MAX_IDLE_CONNECTIONS:
                    self._idle.append(conn)
                    return
        conn.close()

    def _send(self, conn: _Connection, what: str, request: bytes) -> None:
        try:
            if conn.sock is None:
                conn.connect()
            conn.send(request)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _StaleConnection() from exc
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise self._error(f"{what}: connect timed out", kind="timeout") from exc
            if _is_tls_error(exc):
                raise self._error(f"{what}: TLS: {exc}", kind="tls", answered=True) from exc
            raise self._error(f"{what}: cannot connect to {self.shown_url}: {exc}", kind="connect") from exc

    def _receive(self, conn: _Connection, what: str) -> tuple[int, dict[str, str], bytes, bool]:
        """The answer to a request sent whole on ``conn``."""
        try:
            return conn.response(what.split(" ", 1)[0])
        except (_Closed, ConnectionResetError, BrokenPipeError) as exc:
            # an idle keep-alive connection the server closed: nothing was answered
            if not conn.clock.received:
                raise _StaleConnection(sent=True) from exc
            why = "connection closed mid-answer" if isinstance(exc, _Closed) else f"{type(exc).__name__}: {exc}"
            raise self._error(f"{what}: {why}", kind="closed", answered=True, sent=True) from exc
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
                raise self._error(f"{what}: TLS: {exc}", kind="tls", answered=True, sent=True) from exc
            raise self._error(
                f"{what}: {type(exc).__name__}: {exc}",
                kind="document" if conn.clock.received else "closed",
                answered=conn.clock.received,
                sent=True,
            ) from exc


MAX_IDLE_CONNECTIONS = 4  # kept per peer: the three documents read side by side, and one spare


class PendingRequest:
    """One request on its own connection: sent by ``JsonHttpClient.begin``, answered by ``result()``.

    A reused keep-alive connection the peer had closed is replaced once, transparently (the
    request is sent again on a new one), in either half. ``abandon()`` closes the connection of a
    request whose answer will not be read (another one failed first): never handed back mid-answer.
    """

    def __init__(
        self,
        client: JsonHttpClient,
        what: str,
        request: bytes,
        expect: tuple[int, ...],
        deadline: float | None,
        connect_timeout: float,
    ) -> None:
        self.client = client
        self.what = what
        self.request = request
        self.expect = expect
        self.deadline = deadline
        self.connect_timeout = connect_timeout
        self.error: HttpJsonError | None = None
        self._conn: _Connection | None = None
        self._use(*client._take(connect_timeout))  # a new one connects within the deadline

    @classmethod
    def failed(cls, error: HttpJsonError) -> PendingRequest:
        pending = cls.__new__(cls)
        pending.error, pending._conn = error, None
        return pending

    def _use(self, conn: _Connection, reused: bool) -> _Connection:
        """Carry the request on ``conn`` from now on: nothing of it sent there yet, under its deadline."""
        conn.clock.deadline, conn.clock.received = self.deadline, False
        self._conn, self._reused, self._on_wire = conn, reused, False
        return conn

    def advance(self, *, until_sent: bool) -> tuple[int, dict[str, str], bytes, bool] | None:
        """Send the request (if not yet), then (unless ``until_sent``) read its answer."""
        conn = self._conn
        assert conn is not None
        while True:
            try:
                if not self._on_wire:
                    self.client._send(conn, self.what, self.request)
                    self._on_wire = True
                if until_sent:
                    return None
                return self.client._receive(conn, self.what)
            except _StaleConnection as exc:
                conn.close()
                if not self._reused:  # a fresh connection that drops us is a real failure
                    self._conn = None
                    raise self.client._error(
                        f"{self.what}: connection closed by the peer", kind="closed", sent=exc.sent
                    ) from exc.__cause__
                conn = self._use(self.client._new_connection(self.connect_timeout), reused=False)
            except BaseException:
                conn.close()
                self._conn = None
                raise

    def result(self) -> Response:
        """The answer; raises the client's error class unless its status is expected."""
        if self.error is not None:
            raise self.error
        answer = self.advance(until_sent=False)
        assert answer is not None and self._conn is not None
        status, resp_headers, raw, will_close = answer
        self.client._give_back(self._conn, will_close)
        self._conn = None
        document: Any = None
        if raw.strip():
            try:
                document = json.loads(raw)
            except ValueError as exc:
                raise self.client._error(
                    f"{self.what}: HTTP {status} with a body that is not JSON", status=status, kind="document"
                ) from exc
        if status not in self.expect:
            kind = "auth" if status in (401, 403) else "http"
            raise self.client._error(
                f"{self.what}: HTTP {status}", status=status, details=error_details(document), kind=kind
            )
        return Response(status, resp_headers, document)

    def abandon(self) -> None:
        """Close the connection if the answer was not read (no-op once ``result()`` has run)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _is_tls_error(exc: BaseException) -> bool:
    return type(exc).__module__ == "ssl" or "SSL" in type(exc).__name__

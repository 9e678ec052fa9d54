"""The emulator's HTTP plumbing, shared by its routes, its documents and its control API."""

from __future__ import annotations

import base64
import email.utils
import hmac
import json
import logging
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import urlsplit

from mxha.lab.emulator.model import (
    EmulatorState,
    log,
)

if TYPE_CHECKING:
    from mxha.lab.emulator.server import EmulatorHTTPServer


MAX_HEADER_LINE = 65536  # bytes, as http.server allows
MAX_HEADERS = 100


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback for a client that went away before
    its answer was written (a scraper's timeout, a hang or drip fault): not the server's error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        gone = sys.exc_info()[1]
        if isinstance(gone, ConnectionError):
            log.debug("client %s went away: %s", client_address, gone)
            return
        super().handle_error(request, client_address)


class RequestHeaders:
    """A request's header fields, looked up by name in any case; the first of repeated fields wins
    (as with http.server's email-based message, which cost a third of the emulator's time per request)."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}  # lower-case name -> index of its first field in _items
        self._items: list[tuple[str, str]] = []

    def add(self, name: str, value: str) -> None:
        self._first.setdefault(name.lower(), len(self._items))
        self._items.append((name, value))

    def extend_last(self, more: str) -> None:
        """An obsolete folded line continues the previous field's value."""
        name, value = self._items[-1]
        self._items[-1] = (name, f"{value} {more}".strip())

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        index = self._first.get(name.lower())
        return default if index is None else self._items[index][1]

    def __len__(self) -> int:
        return len(self._items)


class HandlerBase(BaseHTTPRequestHandler):
    """Plumbing every part of the handler uses: the state, the base URL, sending documents and errors,
    reading bodies, and who is asking."""

    server_version = "MaxScale"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    protocol_version = "HTTP/1.1"
    # An unreadable request line is answered with an HTTP/1.x status line and headers;
    # http.server's default (0.9) would send a bare HTML body.
    default_request_version = "HTTP/1.0"
    disable_nagle_algorithm = True
    # A response's head and body leave in one write (handle_one_request flushes after each request):
    # two writes were two segments and two wake-ups of the client for every document.
    wbufsize = 64 * 1024
    server: EmulatorHTTPServer
    raw_requestline: bytes
    headers: RequestHeaders  # type: ignore[assignment]  # parse_request's own, not an email message

    def _route(self) -> None:
        """Serve the request (the handler defines it)."""
        raise NotImplementedError

    # -- plumbing ------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if log.isEnabledFor(logging.DEBUG):  # every request is logged: format it only when it is kept
            log.debug("%s %s", self.address_string(), format % args)

    @property
    def st(self) -> EmulatorState:
        return self.server.state

    def _base(self) -> str:
        host = self.headers.get("Host") or f"{self.st.config.host}:{self.st.config.port}"
        return f"{'https' if self.st.config.tls_cert else 'http'}://{host}"

    def _send(self, status: int, document: Any = None, headers: dict[str, str] | None = None) -> None:
        """The answer, head and body in one write: the head http.server's send_response and send_header
        would write (status line, Server, Date, then the fields), built here in one string (through
        them it was a third of the time spent answering a document)."""
        # compact by default, indented with ?pretty=true, as MaxScale does
        indent = 4 if "pretty=true" in urlsplit(self.path).query else None
        body = b"" if document is None else json.dumps(document, indent=indent).encode()
        self.log_request(status)
        reason = self.responses[status][0] if status in self.responses else ""
        head = [
            f"{self.protocol_version} {status} {reason}",
            f"Server: {self.version_string()}",
            f"Date: {_http_now()}",
        ]
        for key, value in (headers or {}).items():
            head.append(f"{key}: {value}")
            if key.lower() == "connection":  # as send_header does
                if value.lower() == "close":
                    self.close_connection = True
                elif value.lower() == "keep-alive":
                    self.close_connection = False
        if document is not None:
            head.append("Content-Type: application/json")
        if status != 204:
            head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(data + body if body and self.command != "HEAD" else data)
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

    # -- the request's head ----------------------------------------------------------------
    def parse_request(self) -> bool:
        """Read the request line and the header fields, with http.server's limits and answers."""
        self.command = None  # type: ignore[assignment]  # http.server's own marker for "no request yet"
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if not words:
            return False
        if len(words) != 3:
            self.send_error(400, f"Bad request syntax ({self.requestline!r})")
            return False
        command, path, version = words
        number = _version_number(version)
        if number is None:
            self.send_error(400, f"Bad request version ({version!r})")
            return False
        if number >= (2, 0):
            self.send_error(505, f"Invalid HTTP version ({version})")
            return False
        self.request_version = version
        self.close_connection = number < (1, 1)
        self.command = command
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        headers = RequestHeaders()
        for count in range(MAX_HEADERS + 1):
            line = self.rfile.readline(MAX_HEADER_LINE + 1)
            if len(line) > MAX_HEADER_LINE:
                self.send_error(431, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            if count == MAX_HEADERS:
                self.send_error(431, "Too many headers")
                return False
            text = str(line, "iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and headers:
                headers.extend_last(text.strip())
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                self.send_error(400, f"Bad header line ({text[:80]!r})")
                return False
            headers.add(name, value.strip())
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if headers.get("Expect", "").lower() == "100-continue" and number >= (1, 1):
            return self.handle_expect_100()
        return True

    def handle_expect_100(self) -> bool:
        super().handle_expect_100()
        self.wfile.flush()  # the client waits for it before sending the body
        return True

    do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    def handle_one_request(self) -> None:
        # Verbs MaxScale does not know at all get 405; BaseHTTPRequestHandler would say 501.
        try:
            super().handle_one_request()
            self.wfile.flush()  # http.server returns without flushing after an error it answered
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code == 501:
            self._send(405)
            return
        super().send_error(code, message, explain)


_date_cache: tuple[int, str] = (0, "")


def _http_now() -> str:
    """The Date field's value for now (an HTTP date has whole seconds: made once per second)."""
    global _date_cache
    now = int(time.time())
    second, text = _date_cache
    if second != now:
        text = email.utils.formatdate(now, usegmt=True)
        _date_cache = (now, text)
    return text


def _version_number(version: str) -> tuple[int, int] | None:
    """``HTTP/1.1`` -> (1, 1); None when it is not an HTTP version."""
    if not version.startswith("HTTP/"):
        return None
    major, dot, minor = version[5:].partition(".")
    if not dot or not major.isdigit() or not minor.isdigit() or not major.isascii() or not minor.isascii():
        return None
    return int(major), int(minor)

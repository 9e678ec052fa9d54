"""The emulator's HTTP plumbing, shared by its routes, its documents and its control API."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mxha.lab.emulator.model import (
    EmulatorState,
    log,
)

if TYPE_CHECKING:
    from mxha.lab.emulator.server import EmulatorHTTPServer


_FOLD = re.compile(r"\r?\n[ \t]+")  # an obsolete folded header line: one space (RFC 9112 5.2)


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback for a client that went away before
    its answer was written (a scraper's timeout, a hang or drip fault): not the server's error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        gone = sys.exc_info()[1]
        if isinstance(gone, ConnectionError):
            log.debug("client %s went away: %s", client_address, gone)
            return
        super().handle_error(request, client_address)


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
    # A response's head and body leave in one write (handle_one_request flushes after each request),
    # as MaxScale's do: one segment per answer.
    wbufsize = 64 * 1024
    server: EmulatorHTTPServer

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

    def _header(self, name: str) -> str:
        """A request header's value ("" when absent), a folded line unfolded."""
        return _FOLD.sub(" ", self.headers.get(name, "")).strip()

    def _base(self) -> str:
        host = self._header("Host") or f"{self.st.config.host}:{self.st.config.port}"
        return f"{'https' if self.st.config.tls_cert else 'http'}://{host}"

    def _send(self, status: int, document: Any = None, headers: dict[str, str] | None = None) -> None:
        """The answer: status line, Server, Date, the given fields, then the JSON body."""
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
        length = self._header("Content-Length") or None
        if length is None:
            if self._header("Transfer-Encoding").lower() == "chunked":
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
        header = self._header("Authorization")
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
        """http.server's parsing, and a 400 for what it would let through: a request line without a
        version (HTTP/0.9, which no REST client sends) and a header block it reads with defects (a
        line without a colon, or a continuation line first), which it would pass on cut short."""
        if not super().parse_request():
            return False
        if len(self.requestline.split()) == 2:
            self.close_connection = True
            self.send_error(400, f"Bad request syntax ({self.requestline!r})")
            return False
        if self.headers.defects:
            self.close_connection = True
            self.send_error(400, f"Bad header block ({type(self.headers.defects[0]).__name__})")
            return False
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

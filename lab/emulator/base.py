"""The emulator's HTTP plumbing, shared by its routes, its documents and its control API."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mxha.lab.emulator.model import (
    EmulatorState,
    log,
)

if TYPE_CHECKING:
    from mxha.lab.emulator.server import EmulatorHTTPServer


class HandlerBase(BaseHTTPRequestHandler):
    """Plumbing every part of the handler uses: the state, the base URL, sending documents and errors,
    reading bodies, and who is asking."""

    server_version = "MaxScale"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
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

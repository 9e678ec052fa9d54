"""The crash watch: tell keepalived the moment MaxScale's process is gone, through a ``track_file``.

keepalived's ``vrrp_script`` learns of a crash only at its next runs (``interval`` x ``fall``, 2 s
and more); a process that exits closes its sockets at once. The exporter holds one idle TCP
connection to MaxScale's REST port: when the peer side closes it (the process exited, or MaxScale
dropped an idle connection), it connects again at once. Connection refused means nobody listens
any more: the watch writes ``1`` into the track file, and keepalived (``track_file`` with
``weight 0``, read by inotify the moment it changes) puts the instance in FAULT and sends a
priority-0 advert, so the backup takes over after its skew time instead of after the check's falls.

It only ever says "gone": a hung MaxScale still accepts connections (the kernel does) and is the
check's to see. ``0`` is written back once MaxScale listens again AND the exporter's own health check
has passed since (``healthy_since``): a MaxScale still starting does not count as back, so a
returning holder does not take the VIP back early through this file (the ``vrrp_script``'s ``rise``
holds it too, once the check has fallen). On a clean stop the watch writes ``0``: the file no
longer speaks, the ``vrrp_script`` decides alone, as without the watch.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

log = logging.getLogger("mxha.exporter")

GONE = 1
THERE = 0
RETRY_SECONDS = 0.1  # while MaxScale is gone (or not yet healthy): look again this often
CONNECT_TIMEOUT = 1.0  # a connect that takes longer says nothing either way (the check judges)
IDLE_WAKE = 1.0  # how often the idle wait looks at the stop event


def rest_endpoint(url: str) -> tuple[str, int]:
    """MaxScale's REST host and port from ``maxscale.url`` (the port its scheme implies when none)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "127.0.0.1", port


class TrackFile:
    """keepalived's track file: one number, replaced atomically (keepalived reads a rename at once)
    and only when it changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.value: int | None = None

    def write(self, value: int) -> bool:
        if value == self.value:
            return False
        folder = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".track-", dir=folder)
        try:
            os.write(fd, f"{value}\n".encode())
            os.fchmod(fd, 0o644)  # keepalived reads it, whoever runs the exporter
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.value = value
        return True


def probe(address: tuple[str, int], timeout: float = CONNECT_TIMEOUT) -> socket.socket | None | bool:
    """A connection to MaxScale's REST port; False when refused (nobody listens: gone); None when
    the connect said nothing certain (a timeout, an unreachable address)."""
    try:
        return socket.create_connection(address, timeout=timeout)
    except ConnectionRefusedError:
        return False
    except OSError as exc:
        return False if exc.errno == errno.ECONNREFUSED else None


def wait_closed(sock: socket.socket, stop: threading.Event) -> None:
    """Until the other side closes (or resets) ``sock``, or ``stop``. Nothing is ever sent: MaxScale
    sees an idle client, and answers nothing."""
    with sock:
        while not stop.is_set():
            readable, _, _ = select.select([sock], [], [], IDLE_WAKE)
            if not readable:
                continue
            try:
                if sock.recv(64) == b"":
                    return
            except OSError:
                return


class CrashWatch:
    def __init__(
        self,
        url: str,
        track_file: str,
        healthy_since: Callable[[float], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = rest_endpoint(url)
        self.track = TrackFile(track_file)
        self.healthy_since = healthy_since  # has the health check passed since this (Unix) time?
        self.clock = clock
        self.gone_at: float | None = None

    def step(self, stop: threading.Event) -> None:
        """One look: connect; refused -> gone; connected and (back and healthy, or never gone) ->
        there, then wait on the idle connection until it closes."""
        conn = probe(self.address)
        if conn is False:
            if self.gone_at is None:
                self.gone_at = self.clock()
                log.warning("MaxScale %s:%d refuses connections: track file %s = 1", *self.address, self.track.path)
            self.track.write(GONE)
            stop.wait(RETRY_SECONDS)
            return
        if conn is None:
            stop.wait(RETRY_SECONDS)
            return
        assert isinstance(conn, socket.socket)
        if self.gone_at is not None and not self.healthy_since(self.gone_at):
            conn.close()  # listening again, not yet healthy: keep saying gone
            stop.wait(RETRY_SECONDS)
            return
        if self.gone_at is not None:
            log.warning("MaxScale %s:%d back and healthy: track file %s = 0", *self.address, self.track.path)
        self.gone_at = None
        self.track.write(THERE)
        wait_closed(conn, stop)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step(stop)
            except OSError as exc:  # the track file could not be written: say so, try again
                log.error("crash watch: %s", exc)
                stop.wait(1.0)
        try:
            self.track.value = None
            self.track.write(THERE)  # the watch stops speaking: the vrrp_script decides alone
        except OSError as exc:
            log.error("crash watch: could not hand back %s: %s", self.track.path, exc)

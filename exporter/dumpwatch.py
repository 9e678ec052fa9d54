"""Wake up when keepalived writes a dump, instead of sleeping between stats: Linux inotify,
through libc (no dependency). keepalived writes its dump in about a millisecond; polling with
back-off sleeps adds that much again on average, on every fresh scrape.

The watcher only says "something in the dump folder was written or renamed": the reader still
checks the file itself (new inode or mtime, and a complete parse), and still polls at a short
interval as a safety net, so a missed or coalesced event costs a few milliseconds, never a
wrong answer.
"""

from __future__ import annotations

import ctypes
import os
import select

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000


class DumpWatch:
    """An inotify watch on one folder; ``None``-safe: ``DumpWatch.open`` returns None where
    inotify is unavailable (the reader then polls as before)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @staticmethod
    def open(folder: str) -> DumpWatch | None:
        try:
            # the process's own symbols, libc's among them: ctypes.util.find_library would run
            # ldconfig in a subprocess and keep its module (a third of a MiB) for one lookup
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd < 0:
                return None
            if libc.inotify_add_watch(fd, os.fsencode(folder), IN_CLOSE_WRITE | IN_MOVED_TO) < 0:
                os.close(fd)
                return None
        except (OSError, AttributeError):
            return None
        return DumpWatch(fd)

    def drain(self) -> None:
        """Forget events so far (call before signalling keepalived)."""
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a write or rename in the folder; True if one came."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if ready:
            self.drain()
            return True
        return False

    def close(self) -> None:
        os.close(self.fd)

"""The audit trail: one JSON line per reconcile, flushed and fsynced before the webhook answers."""

from __future__ import annotations

import os
import threading

from mxha.config import ConfigError, shown_path
from mxha.remediator_model import AuditRecord


class AuditLog:
    """Append-only JSON lines, flushed and fsynced before the webhook answers."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path:
            # Found unwritable at start (one line naming the key), not at the first webhook: a
            # container's non-root user meets a /var/lib/mxha it cannot create
            try:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
            except OSError as exc:
                raise ConfigError(f"audit_log: cannot write {shown_path(path)}: {exc.strerror}") from None

    def write(self, record: AuditRecord) -> None:
        if not self.path:
            return
        line = record.to_line()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

"""One log line when a source starts failing, one when it answers again: never one per read.

A rotated MaxScale password used to leave nothing in any log: only ``mxha_maxscale_up 0``. A
line per scrape would bury the journal instead. The exporter and the remediator each keep one
``FailureEdges``, keyed by source (a MaxScale, a node's ``/state``, keepalived), and report every
read to it; it logs only the edges: the first failure (with its kind), a change of kind while
failing, and the recovery.

Callers name a source by what it is and its URL without credentials (``redact_url``), and give
the error's text as the transport made it (which never holds a password or a token).
"""

from __future__ import annotations

import logging
import threading
import time

# mxha.transport.ERROR_KINDS in words, for the log; any other kind (keepalived's) is shown as given
KIND_WORDS = {
    "no_answer": "no answer",
    "auth": "credentials refused",
    "http": "HTTP error",
    "document": "bad document",
    "tls": "TLS failure",
}


class FailureEdges:
    """Per source: failing (since when, which kind) or not; logs the changes only. Thread-safe: the
    remediator reads nodes from a pool, and a peer's read may run beside a reconcile's."""

    def __init__(self, logger: logging.Logger) -> None:
        self.log = logger
        self._lock = threading.Lock()
        self._failing: dict[str, tuple[str, float]] = {}  # source -> (kind, monotonic time it began)

    def failed(self, source: str, kind: str, detail: str) -> None:
        """A read of ``source`` failed with ``kind`` (an ``mxha.transport`` error kind, or the caller's)."""
        with self._lock:
            before = self._failing.get(source)
            if before is not None and before[0] == kind:
                return
            began = before[1] if before is not None else time.monotonic()
            self._failing[source] = (kind, began)
        words = KIND_WORDS.get(kind, kind)
        if before is None:
            self.log.warning("%s: failing (%s): %s", source, words, detail)
        else:
            self.log.warning(
                "%s: still failing, now %s (was %s): %s", source, words, KIND_WORDS.get(before[0], before[0]), detail
            )

    def ok(self, source: str) -> None:
        """A read of ``source`` succeeded."""
        with self._lock:
            before = self._failing.pop(source, None)
        if before is not None:
            self.log.info(  # good news: not at WARNING, where a journal filter would page on it
                "%s: recovered after %.1fs failing (%s)",
                source,
                time.monotonic() - before[1],
                KIND_WORDS.get(before[0], before[0]),
            )

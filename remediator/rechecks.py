"""Rechecks: one delayed work queue keyed by cluster (controller-runtime's ``RequeueAfter``).

A reconcile asks to look at its cluster again after a delay, without waiting for Alertmanager (an
alert that keeps firing is only re-sent at its repeat_interval). One request per cluster is kept:
asking for an earlier time moves it earlier, a later one changes nothing. One thread waits for the
earliest; a due recheck runs on a small pool, so a slow one does not hold back another cluster's.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("mxha.remediator")


class RecheckQueue:
    def __init__(self, run: Callable[[str], None], workers: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._run = run
        self._clock = clock
        self._due: dict[str, float] = {}  # the one pending recheck of each cluster
        self._heap: list[tuple[float, str]] = []  # may hold superseded entries: _due decides
        self._cond = threading.Condition()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recheck")
        self._thread: threading.Thread | None = None  # started by the first request

    def add_after(self, cluster: str, delay: float) -> None:
        """Look at ``cluster`` again in ``delay`` seconds, unless a recheck is already due sooner."""
        if delay <= 0:
            return
        due = self._clock() + delay
        with self._cond:
            if self._closed or self._due.get(cluster, float("inf")) <= due:
                return
            self._due[cluster] = due
            heapq.heappush(self._heap, (due, cluster))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="rechecks", daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self, cluster: str) -> float | None:
        """When the cluster's recheck is due (the queue's clock), or None."""
        with self._cond:
            return self._due.get(cluster)

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                due, cluster = self._heap[0]
                if self._due.get(cluster) != due:  # superseded by an earlier request, or already run
                    heapq.heappop(self._heap)
                    continue
                wait = due - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                del self._due[cluster]
                self._pool.submit(self._safely, cluster)

    def _safely(self, cluster: str) -> None:
        try:
            self._run(cluster)
        except Exception:  # noqa: BLE001 - a worker must not die silently
            log.exception("cluster %s: recheck failed", cluster)

    def close(self) -> None:
        """No recheck runs after this (one already running finishes)."""
        with self._cond:
            self._closed = True
            self._due.clear()
            self._heap.clear()
            self._cond.notify()
        self._pool.shutdown(wait=False, cancel_futures=True)

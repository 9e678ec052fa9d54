"""The remediator's rechecks: one delayed work queue keyed by cluster (``remediator.rechecks``)."""

from __future__ import annotations

import threading
import time
from collections import Counter

from mxha.remediator.rechecks import RecheckQueue


class Runs:
    def __init__(self, fail: str | None = None) -> None:
        self.count: Counter[str] = Counter()
        self.ran = {name: threading.Event() for name in ("a", "b", "bad", "good")}
        self.fail = fail

    def __call__(self, cluster: str) -> None:
        self.count[cluster] += 1
        self.ran[cluster].set()
        if cluster == self.fail:
            raise RuntimeError("boom")


def test_an_earlier_request_moves_the_recheck_earlier_and_a_later_one_does_not_postpone_it() -> None:
    runs = Runs()
    queue = RecheckQueue(runs, workers=2)
    try:
        queue.add_after("a", 600)
        queue.add_after("a", 0.05)  # earlier: wins
        queue.add_after("b", 0.05)
        queue.add_after("b", 600)  # later: changes nothing
        assert runs.ran["a"].wait(5) and runs.ran["b"].wait(5)
        time.sleep(0.2)
        assert runs.count == Counter({"a": 1, "b": 1})  # one recheck per cluster
        assert queue.pending("a") is None and queue.pending("b") is None
    finally:
        queue.close()


def test_a_failing_recheck_does_not_stop_the_queue() -> None:
    runs = Runs(fail="bad")
    queue = RecheckQueue(runs, workers=1)
    try:
        queue.add_after("bad", 0.01)
        assert runs.ran["bad"].wait(5)
        queue.add_after("good", 0.01)
        assert runs.ran["good"].wait(5)
    finally:
        queue.close()


def test_nothing_runs_after_close() -> None:
    runs = Runs()
    queue = RecheckQueue(runs, workers=1)
    queue.add_after("a", 0.1)
    queue.close()
    queue.add_after("b", 0.01)
    assert not runs.ran["a"].wait(0.4) and not runs.ran["b"].is_set()

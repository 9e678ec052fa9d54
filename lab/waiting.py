"""Waiting for things the lab, the tests and the bench start: ONE way to poll."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests


class WaitTimeout(RuntimeError):
    """What was waited for did not happen in time (the message says what, and the last thing seen)."""


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); raise WaitTimeout after ``timeout``.
    A request or parse error while polling is "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except (requests.RequestException, ValueError, KeyError, OSError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout:g}s (last: {last!r})")
        time.sleep(interval)


def wait_for_url(url: str, what: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> None:
    """Wait until ``url`` answers with anything below 500."""

    def answers() -> bool:
        return requests.get(url, timeout=1, headers=headers).status_code < 500

    wait_for(answers, timeout, f"{what} did not answer at {url}")

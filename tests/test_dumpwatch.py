"""The inotify watch that wakes a fresh scrape when keepalived writes its dump (Linux)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from mxha.exporter.dumpwatch import DumpWatch

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")


def test_wakes_on_a_write_or_a_rename_in_the_folder_and_only_then(tmp_path: Path) -> None:
    watch = DumpWatch.open(str(tmp_path))
    assert watch is not None, "inotify through libc is available on Linux: without it every scrape polls"
    try:
        assert watch.wait(0.05) is False  # nothing written yet
        (tmp_path / "keepalived.json").write_text("{}")  # a write, closed
        assert watch.wait(1.0) is True
        assert watch.wait(0.05) is False  # the event was taken
        (tmp_path / ".tmp").write_text("[]")
        watch.drain()  # before a signal: writes so far do not count
        assert watch.wait(0.05) is False
        timer = threading.Timer(0.1, os.rename, (tmp_path / ".tmp", tmp_path / "keepalived.data"))
        timer.start()  # keepalived writing while the scrape waits
        assert watch.wait(2.0) is True
        timer.join()
    finally:
        watch.close()


def test_a_folder_that_cannot_be_watched_gives_none(tmp_path: Path) -> None:
    assert DumpWatch.open(str(tmp_path / "missing")) is None

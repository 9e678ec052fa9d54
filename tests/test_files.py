"""mxha.files.atomic_write: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from mxha import files


@pytest.mark.parametrize("durable", [True, False])
def test_a_concurrent_reader_never_sees_half_a_file(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "shared.json"
    versions = ["a" * 300_000, "b" * 200_000]  # larger than one write() and one page
    files.atomic_write(str(path), versions[0], durable=durable)
    seen: set[str] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(60):
            files.atomic_write(str(path), versions[i % 2], mode=0o600, durable=durable)
    finally:
        stop.set()
        reader.join()
    assert seen <= set(versions) and seen
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temporary file left


def test_only_a_durable_write_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    files.atomic_write(str(tmp_path / "f"), "x", durable=False)
    assert synced == []
    files.atomic_write(str(tmp_path / "f"), "y")
    assert len(synced) == 2  # the file, then the folder that names it
    assert (tmp_path / "f").read_text() == "y"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "f"
    files.atomic_write(str(path), "old")
    with pytest.raises(UnicodeEncodeError):
        files.atomic_write(str(path), "\udcff", durable=False)  # a lone surrogate cannot be UTF-8
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]

"""Files other processes read while we write them."""

from __future__ import annotations

import os
import threading


def atomic_write(path: str, text: str, mode: int = 0o644, durable: bool = True) -> None:
    """Write-to-temp, fsync, rename, fsync the folder: a reader sees the old file or the new one,
    never half of one, and a crash right after leaves one of the two. ``durable=False`` skips both
    fsyncs (still never half a file to a reader) for files nobody needs after a crash, written
    often: an fsync can stall for seconds while the disk flushes other writes."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not durable:
        return
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass

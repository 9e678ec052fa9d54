"""The hooks' state directory: who may write in it, and the files the hooks keep there.

``mxha notify`` keeps its record, its lock and its ticket counter in the directory of
``notify.state_file`` (default ``/var/lib/mxha``), and ``mxha check --follow-up`` marks there
that it ran. keepalived runs both as its ``script_user``, which must own that directory; the
exporter (another user) reads the record. One rule keeps a person's hand-run command from
breaking the next run by keepalived: **only the directory's owner writes in it**. A run by
anyone else (root debugging, say) writes nothing there: a look still answers, going passive is
still applied from live state, and anything else says which user to run it as.

Standard library only: the hooks run in a fresh process per event.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass

# keepalived's vrrp_script runs every few seconds (2 s in the examples): a follow-up marker older
# than this means the check that keepalived runs has no --follow-up (or keepalived is not running it)
FOLLOW_UP_STALE_SECONDS = 30.0


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"uid {uid}"


@dataclass(frozen=True)
class StateDir:
    """The directory of the hooks' files as this process finds it."""

    path: str
    owner_uid: int | None  # None: the directory does not exist (or cannot be looked at)
    my_uid: int
    error: str | None = None

    @classmethod
    def of(cls, state_file: str) -> StateDir:
        path = os.path.dirname(os.path.abspath(state_file))
        try:
            return cls(path, os.stat(path).st_uid, os.geteuid())
        except OSError as exc:
            return cls(path, None, os.geteuid(), exc.strerror or str(exc))

    @property
    def exists(self) -> bool:
        return self.owner_uid is not None

    @property
    def mine(self) -> bool:
        """May this process write there? Only the directory's owner does."""
        return self.owner_uid is not None and self.owner_uid == self.my_uid

    @property
    def owner(self) -> str:
        return _user_name(self.owner_uid) if self.owner_uid is not None else "?"

    def why_not_mine(self) -> str:
        """One line: why this run writes nothing there, and what to do instead."""
        if self.owner_uid is None:
            return (
                f"state directory {self.path} is missing ({self.error}): create it owned by keepalived's "
                f"script_user, e.g. install -d -o keepalived_script -g mxha -m 0750 {self.path}"
            )
        return (
            f"{self.path} belongs to {self.owner}, not to {_user_name(self.my_uid)}: only its owner writes "
            f"there; run this as {self.owner} (e.g. sudo -u {self.owner} ...), the user keepalived runs the hooks as"
        )


def lock_path(state_file: str, lock_file: str | None) -> str:
    """notify.lock_file, by default beside the state file."""
    return lock_file or f"{state_file}.lock"


def write_problem(state_file: str, lock_file: str | None) -> str | None:
    """Why this process may not write the hooks' files (only the owner of their directory does;
    ``notify.lock_file`` elsewhere must be in a directory the same user owns), or None."""
    for where in (StateDir.of(state_file), StateDir.of(lock_path(state_file, lock_file))):
        if not where.mine:
            return where.why_not_mine()
    return None


def open_for_update(path: str) -> int:
    """Open (creating) one of the hooks' small files read-write, in a directory this process owns.

    A file the owner cannot open for writing (left 0644 root by an older version's root run) is
    replaced by a fresh one: the owner of a directory may rename over any file in it, and a lock or
    counter no one can open would stop every later hook. The replacement is made while holding the
    old file's lock (a read-only open can be locked too), so two calls replacing it at once cannot
    each end up locking a file of their own."""
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:
            pass
        old = os.open(path, os.O_RDONLY)  # unreadable too: the caller's OSError
        try:
            fcntl.flock(old, fcntl.LOCK_EX)
            if still_there(old, path):  # else another call replaced it meanwhile: open that one
                tmp = f"{path}.new.{os.getpid()}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, os.pread(old, 64, 0))  # a counter's value: tickets only grow
                finally:
                    os.close(fd)
                os.replace(tmp, path)
        finally:
            os.close(old)


def still_there(fd: int, path: str) -> bool:
    """Is the open file ``fd`` still the one at ``path``? A lock taken on a file that another call
    has since replaced (``open_for_update``) orders nothing: take it again on the file now there."""
    try:
        mine, now = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def follow_up_marker(state_file: str) -> str:
    """The file whose modification time says when ``mxha check --follow-up`` last ran."""
    return f"{state_file}.follow-up"


def mark_follow_up(state_file: str) -> None:
    """Touch the marker (no data, no fsync: its mtime is the news)."""
    path = follow_up_marker(state_file)
    try:
        os.utime(path)
    except FileNotFoundError:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    except PermissionError:  # an unusable leftover of a root run: replace it
        os.close(open_for_update(path))
        os.utime(path)


def follow_up_age(state_file: str, now: float | None = None) -> float | None:
    """Seconds since the last ``mxha check --follow-up``; None when none ever ran. Raises OSError
    when the marker cannot be looked at (the directory is not readable by this user)."""
    try:
        mtime = os.stat(follow_up_marker(state_file)).st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)

"""``mxha notify``: keepalived's notify hook, setting this node's MaxScale active or passive.

keepalived runs ``notify`` with ``TYPE NAME STATE [PRIORITY]`` and does not wait for it,
so two calls can overlap and finish out of order. Calls are serialized with a lock and
each carries the time it started: a call that finds a newer transition already recorded
does nothing, so an older transition never overwrites a newer one.

Every transition is recorded, with its result, in an atomically written JSON state file
(the exporter can read it as an event source) and logged in one line.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from mxha.maxscale import MaxScaleClient, MaxScaleError, read_status
from mxha.model import governing_instance
from mxha.notify_record import NotifyEntry, NotifyRecord

ACTIVE_STATES = frozenset({"MASTER"})
PASSIVE_STATES = frozenset({"BACKUP", "FAULT", "STOP", "DELETED"})


@dataclass(frozen=True)
class Transition:
    type: str
    name: str
    state: str
    priority: int | None
    started_ns: int

    @property
    def wants_passive(self) -> bool:
        return self.state in PASSIVE_STATES


def acquire_lock(path: str, deadline: float) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)


def apply_mode(client: MaxScaleClient, passive: bool, release_locks: bool, deadline: float) -> str:
    """Set MaxScale's mode, retrying briefly until ``deadline``; returns a one-line result."""
    attempt = 0
    delay = 0.1
    last_error = "no attempt made"
    while time.monotonic() < deadline:
        attempt += 1
        try:
            client.set_passive(passive, deadline=deadline)
            result = f"passive={str(passive).lower()} set"
            if passive and release_locks:
                result += release_all_locks(client, deadline)
            return result + (f" (attempt {attempt})" if attempt > 1 else "")
        except MaxScaleError as exc:
            last_error = str(exc)
            if exc.kind == "auth" or (exc.status is not None and 400 <= exc.status < 500):
                break  # retrying will not change a refusal
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)
    raise MaxScaleError(f"gave up after {attempt} attempt(s): {last_error}", kind="timeout")


def release_all_locks(client: MaxScaleClient, deadline: float) -> str:
    """With cooperative monitoring locks, a passive MaxScale must not keep them (it still takes
    them, and the newly active node then cannot get a majority)."""
    notes = []
    for monitor in read_status(client, deadline).monitors_with_locks:
        notes.append(f"{monitor}: {client.release_locks(monitor, deadline=deadline)}")
    return f"; locks {', '.join(notes)}" if notes else ""


def log_line(path: str | None, line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = f"{stamp} mxha notify: {line}\n"
    if path:
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text)
            return
        except OSError:
            pass
    sys.stderr.write(text)


def main(config_file: str, type_: str, name: str, state: str, priority: str | None) -> int:
    started_ns = time.time_ns()  # first thing: orders overlapping calls as keepalived forked them
    from mxha.config import ConfigError, load_node_config

    try:
        cfg = load_node_config(config_file)
    except ConfigError as exc:
        print(f"mxha notify: config error: {exc}", file=sys.stderr)
        return 2
    settings = cfg.notify
    state = state.upper()
    type_ = type_.upper()
    if state not in ACTIVE_STATES | PASSIVE_STATES:
        log_line(settings.log_file, f"{type_} {name} {state}: unknown state, nothing done")
        print(
            f"mxha notify: unknown state {state!r} (expected MASTER, BACKUP, FAULT, STOP or DELETED)", file=sys.stderr
        )
        return 1
    prio: int | None = int(priority) if priority is not None and priority.lstrip("-").isdigit() else None
    transition = Transition(type_, name, state, prio, started_ns)
    deadline = time.monotonic() + settings.timeout

    def expire(signum: int, frame: object) -> None:
        log_line(settings.log_file, f"{type_} {name} {state}: hard timeout, exiting")
        raise SystemExit(1)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout + 1.0)

    lock_path = settings.lock_file or f"{settings.state_file}.lock"
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    fd = acquire_lock(lock_path, deadline)
    if fd is None:
        log_line(settings.log_file, f"{type_} {name} {state}: another notify held the lock too long")
        return 1
    try:
        return _handle(cfg, transition, deadline)
    finally:
        os.close(fd)


def _handle(cfg: Any, t: Transition, deadline: float) -> int:
    settings = cfg.notify
    record = NotifyRecord.read(settings.state_file)
    entry = NotifyEntry(t.started_ns / 1e9, t.type, t.name, t.state, t.priority, t.started_ns)
    known = record.known_instances() | ({t.name} if t.type == "INSTANCE" else set())
    governing = governing_instance(cfg.keepalived.governing_instance, frozenset(known))
    code = 0
    if t.type == "GROUP" and not settings.group_events:
        entry.result = "recorded; GROUP events ignored (notify.group_events: false)"
    elif t.type == "INSTANCE" and governing is None:
        entry.result = (
            f"recorded; acting on none: {len(known)} VRRP instances seen ({', '.join(sorted(known))}) "
            "and keepalived.governing_instance is not set"
        )
        code = 1
    elif t.type == "INSTANCE" and t.name != governing:
        entry.result = "recorded; not the governing instance"
    elif record.governing_seq > t.started_ns:
        entry.result = "superseded by a newer transition; nothing done"
    else:
        passive = t.wants_passive
        try:
            entry.result = apply_mode(cfg.maxscale.client(), passive, settings.release_locks, deadline)
            entry.ok = True
        except MaxScaleError as exc:
            entry.result = f"FAILED: {exc}"
            entry.ok = False
            code = 1
        record.governing_seq = t.started_ns
        record.desired_passive = passive
        record.governing_instance = t.name
        record.governing_state = t.state
    record.node = cfg.node
    record.add(entry)
    record.updated_at = time.time()
    record.write(settings.state_file)
    prio = f" {t.priority}" if t.priority is not None else ""
    log_line(settings.log_file, f"{t.type} {t.name} {t.state}{prio}: {entry.result}")
    return code

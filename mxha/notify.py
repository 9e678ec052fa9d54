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
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from mxha.maxscale import MaxScaleClient, MaxScaleError, monitor_lock_mode

ACTIVE_STATES = frozenset({"MASTER"})
PASSIVE_STATES = frozenset({"BACKUP", "FAULT", "STOP", "DELETED"})
HISTORY_LIMIT = 50


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


def read_state_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def write_state_file(path: str, doc: dict[str, Any]) -> None:
    """Write-to-temp, fsync, rename: readers see the old file or the new one, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


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
    for monitor in client.get_monitors(deadline=deadline):
        if monitor.get("attributes", {}).get("module") != "mariadbmon" or monitor_lock_mode(monitor) == "none":
            continue
        outcome = client.release_locks(str(monitor["id"]), deadline=deadline)
        notes.append(f"{monitor['id']}: {outcome}")
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
    doc = read_state_file(settings.state_file)
    governing = cfg.keepalived.governing_instance
    relevant = (t.type == "INSTANCE" and (governing is None or t.name == governing)) or (
        t.type == "GROUP" and settings.group_events
    )
    record: dict[str, Any] = {
        "time": t.started_ns / 1e9,
        "type": t.type,
        "name": t.name,
        "state": t.state,
        "priority": t.priority,
        "seq": t.started_ns,
    }
    instances = doc.setdefault("instances", {})
    key = f"{t.type} {t.name}"
    previous = instances.get(key)
    newest_governing = doc.get("governing_seq", 0)
    code = 0
    if not relevant:
        record["result"] = (
            "recorded; not the governing instance"
            if t.type == "INSTANCE"
            else "recorded; GROUP events ignored (notify.group_events: false)"
        )
    elif newest_governing > t.started_ns:
        record["result"] = "superseded by a newer transition; nothing done"
    else:
        passive = t.wants_passive
        try:
            record["result"] = apply_mode(cfg.maxscale.client(), passive, settings.release_locks, deadline)
            record["ok"] = True
        except MaxScaleError as exc:
            record["result"] = f"FAILED: {exc}"
            record["ok"] = False
            code = 1
        doc["governing_seq"] = t.started_ns
        doc["desired_passive"] = passive
        doc["governing_instance"] = t.name
        doc["governing_state"] = t.state
    if previous is None or previous.get("seq", 0) <= t.started_ns:
        instances[key] = {k: record[k] for k in ("time", "state", "priority", "seq")}
    doc["node"] = cfg.node
    history = doc.setdefault("history", [])
    history.append(record)
    del history[:-HISTORY_LIMIT]
    doc["updated_at"] = time.time()
    write_state_file(settings.state_file, doc)
    prio = f" {t.priority}" if t.priority is not None else ""
    log_line(settings.log_file, f"{t.type} {t.name} {t.state}{prio}: {record['result']}")
    return code

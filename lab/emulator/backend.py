"""Pair mode: several emulated MaxScales monitoring ONE simulated set of database servers.

The servers, their replication roles, who holds each server's cooperative lock (MariaDB's
``GET_LOCK``, held per connection), and per MaxScale which servers it cannot reach, live in one
JSON file under ``flock`` that every emulator of the pair reads and updates at each monitor tick.
What each MaxScale then shows follows the recorded pair (``shared/fixtures/maxscale-24.02.4-pair``):

- **Locks.** A MaxScale that is not in its release back-off takes the free locks of the servers it
  reaches, and keeps them only if they are a majority (``majority_of_all``: of all servers;
  ``majority_of_running``: of the servers it sees running); otherwise it gives them back, so the
  secondary holds none (recorded: F/F/F). A lock on a server it cannot reach is lost (the server
  drops the connection: ``lock_held`` null). ``release-locks`` frees them and keeps the releaser
  from locking for 60 s (recorded: the other took them 1 s later; the releaser had not locked
  again at 65 s). A stopped MaxScale's locks are freed at once (its connections close) and, if it
  vanished without stopping, after two and a half ticks (at least 1 s).
- **Who decides.** The lock primary (or, with locks off, every MaxScale for itself) marks the
  master it reaches ``Master, Running``, replicas ``Slave, Running``, a standalone server
  ``Running``, and any server it cannot reach ``Down``. A secondary marks Master only the server the
  primary marks Master; otherwise a reachable replica or ex-master shows ``Slave, Running``
  (recorded: all three "Slave, Running" while the primary had lost the master).
  ``monitor_diagnostics.master`` keeps naming the old primary until a failover or the lock primary
  names another.
- **Failover.** An active (not passive) deciding MaxScale that cannot reach the master for 6 ticks
  (failcount 5 plus verify_master_failure's delay: 6.5 s recorded with a 1 s interval) promotes a
  replica it reaches; the old master becomes standalone and writable (recorded). ``auto_rejoin``:
  a standalone server the decider reaches again is made a replica of the master.
- ``majority_of_all`` was NOT recorded: it follows MariaDB's documentation (a majority of all
  configured servers) and has not been checked against a real MaxScale.

Time scale: every recorded duration (the 1 s monitor tick, the 60 s back-off) is multiplied by
``time_scale`` so tests and the lab need not wait real minutes; 1.0 is the recording.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from typing import Any

from mxha.files import atomic_write

RECORDED_TICK = 1.0  # monitor_interval=1000ms in the recording
RECORDED_BACKOFF = 60.0  # release-locks: "Will not attempt to reacquire locks for 1 minute"
FAILOVER_TICKS = 6  # failcount 5 + verify_master_failure's delay: 6.5 s recorded at 1 s ticks
LOST_AFTER_TICKS = 2.5  # a MaxScale that stopped ticking without leaving: its connections time out
# ... but never sooner than this (seconds): at a small time_scale (0.05 s ticks) a member whose
# monitor thread is merely late (a busy CPU, a slow disk) would otherwise be judged gone and lose
# its locks, which a real MaxScale, whose connections stay open while it is slow, does not
LOST_AFTER_MIN = 1.0


class SharedBackend:
    """One member's handle on the shared file (``path``), ticking in a thread."""

    def __init__(
        self,
        path: str,
        member: str,
        servers: list[str],
        time_scale: float = 1.0,
        relock_backoff: float | None = None,
    ) -> None:
        self.path = path
        self.member = member
        self.time_scale = time_scale
        self.tick_seconds = RECORDED_TICK * time_scale
        # release-locks' back-off alone, when given (the test suite's locks lab: a quarter of it)
        self.relock_backoff = RECORDED_BACKOFF * time_scale if relock_backoff is None else relock_backoff
        self.lost_after = max(LOST_AFTER_TICKS * self.tick_seconds, LOST_AFTER_MIN)
        self._servers = servers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.view: dict[str, Any] = {"primary": None, "master": None, "states": {}, "locks": {}}
        self._on_tick: list[Any] = []
        with self._locked() as doc:
            doc["members"].setdefault(member, {})
            doc["members"][member].update(seen=time.time(), left=False)

    # -- the file ------------------------------------------------------------------------
    def _initial(self) -> dict[str, Any]:
        first, *rest = self._servers
        return {
            "servers": {s: {"up": True, "role": "master" if s == first else "slave"} for s in [first, *rest]},
            "locks": {s: None for s in self._servers},
            "members": {},
        }

    class _Locked:
        def __init__(self, owner: SharedBackend) -> None:
            self.owner = owner

        def __enter__(self) -> dict[str, Any]:
            o = self.owner
            self.fd = os.open(o.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                with open(o.path, encoding="utf-8") as fh:
                    self.doc = json.load(fh)
            except (OSError, ValueError):
                self.doc = o._initial()
            doc: dict[str, Any] = self.doc
            return doc

        def __exit__(self, exc_type: object, *rest: object) -> None:
            try:
                if exc_type is None:
                    # every member writes it at every tick (20 times a second each in tests): an fsync
                    # here stalled ticks behind other disk writes until members were judged vanished
                    atomic_write(self.owner.path, json.dumps(self.doc, sort_keys=True), durable=False)
            finally:
                os.close(self.fd)

    def _locked(self) -> SharedBackend._Locked:
        return SharedBackend._Locked(self)

    def read(self) -> dict[str, Any]:
        with self._locked() as doc:
            copy: dict[str, Any] = json.loads(json.dumps(doc))
            return copy

    # -- control -------------------------------------------------------------------------
    def set_unreachable(self, servers: list[str]) -> None:
        with self._locked() as doc:
            doc["members"][self.member]["unreachable"] = sorted(servers)

    def set_servers(self, changes: dict[str, dict[str, Any]]) -> None:
        with self._locked() as doc:
            for name, change in changes.items():
                doc["servers"][name].update({k: v for k, v in change.items() if k in ("up", "role")})

    def release_locks(self) -> bool:
        """Free this member's locks and start its back-off; True if it held any."""
        with self._locked() as doc:
            held = [s for s, holder in doc["locks"].items() if holder == self.member]
            for s in held:
                doc["locks"][s] = None
            doc["members"][self.member]["backoff_until"] = time.time() + self.relock_backoff
        return bool(held)

    def leave(self) -> None:
        """A stopping MaxScale closes its connections: the servers free its locks at once."""
        self._stop.set()
        with self._locked() as doc:
            for s, holder in doc["locks"].items():
                if holder == self.member:
                    doc["locks"][s] = None
            doc["members"][self.member]["left"] = True

    # -- the monitor tick ------------------------------------------------------------------
    def start(self, settings: Any) -> None:
        """``settings()`` gives (lock_mode, passive, auto_failover, auto_rejoin) at each tick."""

        def loop() -> None:
            while not self._stop.is_set():
                self.tick(*settings())
                self._stop.wait(self.tick_seconds)

        self.tick(*settings())
        self._thread = threading.Thread(target=loop, name=f"monitor-{self.member}", daemon=True)
        self._thread.start()

    def tick(self, lock_mode: str, passive: bool, auto_failover: bool = True, auto_rejoin: bool = True) -> None:
        now = time.time()
        me = self.member
        with self._locked() as doc:
            members, servers, locks = doc["members"], doc["servers"], doc["locks"]
            mine = members.setdefault(me, {})
            mine.update(seen=now, left=False)
            for name, info in members.items():  # vanished members' connections time out
                if name != me and (info.get("left") or now - info.get("seen", 0) > self.lost_after):
                    for s, holder in locks.items():
                        if holder == name:
                            locks[s] = None
            reach = {s for s, info in servers.items() if info["up"] and s not in mine.get("unreachable", [])}
            for s, holder in locks.items():  # a lock on a server it cannot reach is gone with the connection
                if holder == me and s not in reach:
                    locks[s] = None
            primary: bool | None = None
            if lock_mode != "none":
                if now < mine.get("backoff_until", 0):
                    for s, holder in locks.items():
                        if holder == me:
                            locks[s] = None
                else:
                    for s in sorted(reach):
                        if locks.get(s) is None:
                            locks[s] = me
                held = [s for s, holder in locks.items() if holder == me]
                base = len(servers) if lock_mode == "majority_of_all" else len(reach)
                primary = base > 0 and len(held) * 2 > base
                if not primary:
                    for s in held:
                        locks[s] = None
            decides = lock_mode == "none" or primary is True
            master = next((s for s, info in servers.items() if info["role"] == "master"), None)
            view_master = mine.get("master", master)
            if decides:
                view_master = master
                if master is not None and master not in reach:
                    mine["failcount"] = mine.get("failcount", 0) + 1
                    candidates = sorted(s for s in reach if servers[s]["role"] == "slave")
                    if auto_failover and not passive and mine["failcount"] >= FAILOVER_TICKS and candidates:
                        servers[master]["role"] = "standalone"
                        servers[candidates[0]]["role"] = "master"
                        master = view_master = candidates[0]
                        mine["failcount"] = 0
                else:
                    mine["failcount"] = 0
                if auto_rejoin and not passive and master in reach:
                    for s in reach:
                        if servers[s]["role"] == "standalone":
                            servers[s]["role"] = "slave"
                states = {}
                for s, info in servers.items():
                    if s not in reach:
                        states[s] = "Down"
                    elif info["role"] == "master":
                        states[s] = "Master, Running"
                    elif info["role"] == "slave":
                        states[s] = "Slave, Running"
                    else:
                        states[s] = "Running"
                mine["marks_master"] = next((s for s, v in states.items() if v.startswith("Master")), None)
            else:  # a secondary follows the lock primary's word on who is Master
                leader = next(
                    (
                        info
                        for name, info in members.items()
                        if name != me and info.get("primary") and not info.get("left")
                    ),
                    None,
                )
                marked = leader.get("marks_master") if leader else None
                if marked is not None:
                    view_master = marked
                states = {}
                for s, info in servers.items():
                    if s not in reach:
                        states[s] = "Down"
                    elif s == marked:
                        states[s] = "Master, Running"
                    elif info["role"] == "standalone":
                        states[s] = "Running"
                    else:
                        states[s] = "Slave, Running"
                mine["marks_master"] = None
            mine["primary"] = primary is True
            mine["master"] = view_master
            self.view = {
                "primary": primary,
                "master": view_master,
                "states": states,
                "locks": {s: (None if lock_mode == "none" or s not in reach else locks.get(s) == me) for s in servers},
            }
        for callback in self._on_tick:
            callback(self.view)

    def on_tick(self, callback: Any) -> None:
        self._on_tick.append(callback)

    def stop(self) -> None:
        self.leave()
        if self._thread is not None:
            self._thread.join(2)

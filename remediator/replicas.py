"""Remediator replicas: one correction per cluster at a time, whichever replica Alertmanager asks.

The mutual exclusion is MariaDB's own named locks (``GET_LOCK``), the mechanism MaxScale's
cooperative monitoring uses, taken on a MAJORITY of the configured lock servers (usually the
cluster's own database servers): two replicas cannot both hold a majority. Nothing here is a
consensus of our own: a server grants a name to one connection, and frees it when that connection
ends. So that a dead, frozen or cut-off replica's connection ends soon, every lock connection sets
``wait_timeout`` to ``session_timeout`` seconds (MaxScale sets its own lock sessions to a few
seconds for the same reason; the server default is 8 hours) and the holder pings within a third
of it.

Holding is re-checked (``IS_USED_LOCK(name) = CONNECTION_ID()`` on a majority, over the same
connections) right before every write to a MaxScale, so a replica that was frozen or cut off
while holding the lock finds out before it acts, not after. What cannot be fenced: a pause
between that re-check and the write itself (MaxScale's REST API takes no fencing token); the
re-check is one round trip, so that window is milliseconds, not a lease's length.

The guardrails (cooldown, circuit breaker) are shared by reading: a replica that holds a cluster's
lock reads every peer replica's own recent actions (``GET /guardrails``) before it decides, and
counts them with its own. A peer it cannot read counts with what was last read from it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pymysql

from mxha.remediator_model import DocumentFormatError, Guardrails
from mxha.transport import HttpJsonError, JsonHttpClient

if TYPE_CHECKING:
    from mxha.remediator.config import AuthSettings

log = logging.getLogger("mxha.remediator.replicas")


@dataclass(frozen=True)
class LockServer:
    host: str
    port: int = 3306

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class LockSettings:
    servers: tuple[LockServer, ...]
    user: str
    password: str = field(repr=False)
    session_timeout: int = 7  # seconds the server keeps an idle lock connection (its wait_timeout)
    connect_timeout: float = 1.0
    probe_seconds: float = 15.0  # how often the lock servers are checked without a correction

    @property
    def majority(self) -> int:
        return majority(len(self.servers))


@dataclass(frozen=True)
class PeerReplica:
    url: str  # base URL of another replica, e.g. http://rem2:9844


@dataclass(frozen=True)
class ReplicaSettings:
    id: str
    lock: LockSettings
    peers: tuple[PeerReplica, ...] = ()
    cluster_servers: dict[str, tuple[LockServer, ...]] = field(default_factory=dict)  # per-cluster override

    def servers_for(self, cluster: str) -> tuple[LockServer, ...]:
        return self.cluster_servers.get(cluster, self.lock.servers)


def majority(count: int) -> int:
    """How many of ``count`` lock servers make a majority."""
    return count // 2 + 1


def lock_name(cluster: str) -> str:
    """MariaDB lock names are at most 64 characters; a longer cluster name is hashed."""
    name = f"mxha-remediator:{cluster}"
    return name if len(name) <= 64 else "mxha-remediator:" + hashlib.sha256(cluster.encode()).hexdigest()[:40]


class LeaseLost(RuntimeError):
    """The lock is no longer held on a majority: the replica must not act."""


class _Held:
    """One lock server's connection that holds the name."""

    def __init__(self, server: LockServer, conn: Any) -> None:
        self.server = server
        self.conn = conn
        self.mutex = threading.Lock()  # a pymysql connection serves one query at a time
        self.lost: str | None = None

    def query(self, sql: str, args: tuple[Any, ...]) -> Any:
        """One value; a failure marks the session lost (and is raised)."""
        with self.mutex:
            if self.lost is not None:
                raise pymysql.err.OperationalError(0, self.lost)
            try:
                with self.conn.cursor() as cur:
                    cur.execute(sql, args)
                    row = cur.fetchone()
            except pymysql.MySQLError as exc:
                self.lost = f"{self.server}: {_short(exc)}"
                raise
            return row[0] if row else None

    def close(self, release: str | None) -> None:
        with self.mutex:
            try:
                if release is not None and self.lost is None:
                    with self.conn.cursor() as cur:
                        cur.execute("SELECT RELEASE_LOCK(%s)", (release,))
            except pymysql.MySQLError:
                pass  # closing the connection frees the lock anyway
            finally:
                _close_quietly(self.conn)
                self.lost = self.lost or "closed"


class Lease:
    """A cluster's lock, held on a majority of its lock servers until ``release``."""

    def __init__(self, coordinator: Coordinator, cluster: str, held: list[_Held], total: int) -> None:
        self.coordinator = coordinator
        self.cluster = cluster
        self.name = lock_name(cluster)
        self.held = held
        self.total = total
        self._stop = threading.Event()
        interval = max(0.2, coordinator.settings.lock.session_timeout / 3)
        self._pinger = threading.Thread(target=self._ping_loop, args=(interval,), daemon=True, name="lock-ping")
        self._pinger.start()

    def describe(self) -> str:
        live = [str(h.server) for h in self.held if h.lost is None]
        return f"held on {len(live)}/{self.total} lock servers ({', '.join(live)})"

    def _ping_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for h in self.held:
                try:
                    h.query("SELECT 1", ())
                except pymysql.MySQLError:
                    pass  # the session is marked lost; the next check counts it out

    def check(self, deadline: float) -> None:
        """Raise LeaseLost unless the lock is still ours on a majority, asked NOW."""
        needed = self.coordinator.majority(self.cluster)
        if deadline - time.monotonic() <= 0:
            raise LeaseLost("the request budget was spent before the lock could be re-checked")

        def ask(h: _Held) -> bool:
            try:
                return bool(h.query("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self.name,)))
            except pymysql.MySQLError:
                return False  # marked lost, with why

        answers = list(self.coordinator.pool.map(ask, self.held))
        ours = sum(answers)
        if ours < needed:
            lost = [
                h.lost or f"{h.server}: the lock belongs to another session"
                for h, a in zip(self.held, answers, strict=True)
                if not a
            ]
            raise LeaseLost(
                f"the lock is ours on {ours} of {self.total} servers, fewer than {needed}: {'; '.join(lost)}"
            )

    def release(self) -> None:
        self._stop.set()
        for h in self.held:
            h.close(self.name)


@dataclass
class Refusal:
    reason: str  # lock_busy | lock_unavailable
    detail: str


@dataclass
class PeerFacts:
    """What the peer replicas said of one cluster (wall-clock times)."""

    actions: list[tuple[str, float]] = field(default_factory=list)  # (node, when)
    circuit_open_until: float = float("-inf")
    answered: dict[str, tuple[float, str]] = field(default_factory=dict)  # node -> (last answer, replica)
    # node -> (until, replica): a promotion a peer sent without an answer, which may still land
    unsettled_promotions: dict[str, tuple[float, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _PeerView:
    ok: bool = False
    error: str | None = None
    doc: Guardrails | None = None  # the last document read
    read_at: float | None = None


class Coordinator:
    def __init__(self, settings: ReplicaSettings, clusters: list[str], auth: AuthSettings, timeout: float) -> None:
        """``auth``: this replica's own webhook credentials; replicas share one config, so the peers
        accept them on ``/guardrails`` (a bearer token as sent, basic auth by the client itself)."""
        self.settings = settings
        self.clusters = clusters
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lock")
        # per cluster: (majority reachable?, servers answering, servers configured), when last asked
        self.quorum: dict[str, tuple[bool, int, int]] = {}
        self._quorum_lock = threading.Lock()
        self.peer_clients = {
            p.url: JsonHttpClient(
                p.url.rstrip("/") + "/guardrails",
                user=auth.basic_user if not auth.bearer_tokens else None,
                password=auth.basic_password if not auth.bearer_tokens else None,
                connect_timeout=timeout,
                read_timeout=timeout,
                authorization=f"Bearer {auth.bearer_tokens[0]}" if auth.bearer_tokens else None,
            )
            for p in settings.peers
        }
        self.peer_views: dict[str, _PeerView] = {p.url: _PeerView() for p in settings.peers}
        self._closed = threading.Event()
        self._prober = threading.Thread(target=self._probe_loop, daemon=True, name="lock-probe")
        self._prober.start()

    # -- the lock --------------------------------------------------------------------------
    def majority(self, cluster: str) -> int:
        return majority(len(self.settings.servers_for(cluster)))

    def _connect(self, server: LockServer, deadline: float) -> Any:
        lock = self.settings.lock
        timeout = max(0.05, min(lock.connect_timeout, deadline - time.monotonic()))
        conn = pymysql.connect(
            host=server.host,
            port=server.port,
            user=lock.user,
            password=lock.password,
            connect_timeout=timeout,
            read_timeout=max(1.0, lock.connect_timeout),
            write_timeout=max(1.0, lock.connect_timeout),
            autocommit=True,
        )
        with conn.cursor() as cur:
            cur.execute("SET SESSION wait_timeout = %s", (lock.session_timeout,))
        return conn

    def _try_one(self, server: LockServer, name: str, deadline: float, conn: Any) -> tuple[str, Any, str]:
        """GET_LOCK on ``server``, over ``conn`` (None: a new session): ("got"|"busy"|"error", the session
        or None, detail)."""
        try:
            conn = conn or self._connect(server, deadline)
        except (pymysql.MySQLError, OSError) as exc:
            return "error", None, f"{server}: {_short(exc)}"
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
                row = cur.fetchone()
        except (pymysql.MySQLError, OSError) as exc:
            _close_quietly(conn)
            return "error", None, f"{server}: {_short(exc)}"
        if row and row[0] == 1:
            return "got", conn, str(server)
        return "busy", conn, f"{server}: held by another session"

    def acquire(self, cluster: str, deadline: float) -> Lease | Refusal:
        """Take the cluster's lock on a majority, waiting (within ``deadline``) while another replica
        holds it; a store that a majority cannot be reached on refuses at once. The sessions of one
        call are kept across its attempts, and closed unless they hold the lease."""
        servers = self.settings.servers_for(cluster)
        needed = self.majority(cluster)
        name = lock_name(cluster)
        sessions: dict[LockServer, Any] = {}
        try:
            while True:
                tries = list(self.pool.map(lambda s: self._try_one(s, name, deadline, sessions.pop(s, None)), servers))
                for server, (_, conn, _) in zip(servers, tries, strict=True):
                    if conn is not None:
                        sessions[server] = conn
                got = [s for s, (kind, _, _) in zip(servers, tries, strict=True) if kind == "got"]
                answering = sum(1 for kind, _, _ in tries if kind != "error")
                self._set_quorum(cluster, answering >= needed, answering, len(servers))
                if len(got) >= needed:
                    return Lease(self, cluster, [_Held(s, sessions.pop(s)) for s in got], len(servers))
                for s in got:  # a minority is worth nothing: give it back at once
                    try:
                        with sessions[s].cursor() as cur:
                            cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
                    except (pymysql.MySQLError, OSError):
                        _close_quietly(sessions.pop(s))
                details = "; ".join(d for kind, _, d in tries if kind != "got")
                if answering < needed:
                    return Refusal(
                        "lock_unavailable",
                        f"lock store unreachable: {answering} of {len(servers)} lock servers answered, "
                        f"{needed} needed ({details})",
                    )
                if time.monotonic() + 0.25 >= deadline:
                    return Refusal("lock_busy", f"another replica holds the cluster's lock ({details})")
                time.sleep(random.uniform(0.05, 0.2))  # noqa: S311 - jitter, so two waiters do not collide in step
        finally:
            for conn in sessions.values():  # every session not handed to the lease
                _close_quietly(conn)

    def _set_quorum(self, cluster: str, ok: bool, answering: int, total: int) -> None:
        with self._quorum_lock:
            self.quorum[cluster] = (ok, answering, total)

    def _probe_loop(self) -> None:
        """Check the lock servers now and then, so a store that is down is known (and alerted on)
        before a correction needs it."""
        sets: dict[tuple[LockServer, ...], list[str]] = {}
        for c in self.clusters:
            sets.setdefault(self.settings.servers_for(c), []).append(c)
        while not self._closed.is_set():
            for servers, members in sets.items():
                limit = time.monotonic() + self.settings.lock.connect_timeout + 1.0
                try:
                    answering = sum(self.pool.map(lambda s, t=limit: self._answers(s, t), servers))
                except RuntimeError:  # the pool was shut down: the remediator is stopping
                    return
                for c in members:
                    self._set_quorum(c, answering >= majority(len(servers)), answering, len(servers))
            self._closed.wait(self.settings.lock.probe_seconds)

    def _answers(self, server: LockServer, deadline: float) -> bool:
        try:
            self._connect(server, deadline).close()
            return True
        except (pymysql.MySQLError, OSError):
            return False

    # -- what the peer replicas know ---------------------------------------------------------
    def peer_facts(self, cluster: str, deadline: float, observe: bool = False) -> PeerFacts:
        """Every peer replica's own recent actions on ``cluster``, its breaker, and when it last got an
        answer from each node's MaxScale (all wall-clock), read now (``observe``: each peer first reads
        the cluster's nodes itself); a peer that cannot be read counts with what was last read from it,
        and a note says so."""
        path = f"?observe={quote(cluster, safe='')}" if observe else None

        def read(url: str) -> None:
            view = self.peer_views[url]
            try:
                doc = Guardrails.from_json(self.peer_clients[url].get_json(path, deadline))
                view.ok, view.error, view.doc, view.read_at = True, None, doc, time.time()
            except HttpJsonError as exc:
                view.ok, view.error = False, str(exc)[:200]
            except DocumentFormatError as exc:
                view.ok, view.error = False, str(HttpJsonError(str(exc), kind="format"))[:200]

        list(self.pool.map(read, list(self.peer_views)))
        facts = PeerFacts()
        for url, view in self.peer_views.items():
            if not view.ok:
                age = "never read" if view.read_at is None else f"last read {time.time() - view.read_at:.0f}s ago"
                facts.notes.append(f"peer replica {url} unreadable ({view.error}); its actions as {age}")
            entry = view.doc.clusters.get(cluster) if view.doc else None
            if entry is None:
                continue
            replica = view.doc.replica or url if view.doc else url
            facts.actions += [(a.node, a.at) for a in entry.actions]
            if entry.circuit_open_until is not None:
                facts.circuit_open_until = max(facts.circuit_open_until, entry.circuit_open_until)
            for w in entry.unsettled:
                if w.action == "promote" and w.until > facts.unsettled_promotions.get(w.node, (float("-inf"), ""))[0]:
                    facts.unsettled_promotions[w.node] = (w.until, replica)
            if view.ok:  # only what a peer says NOW about reachability
                for node, at in entry.answered.items():
                    if at > facts.answered.get(node, (float("-inf"), ""))[0]:
                        facts.answered[node] = (at, replica)
        return facts

    def close(self) -> None:
        self._closed.set()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except (pymysql.MySQLError, OSError):
        pass  # already gone: closing is all that was wanted


def _short(exc: BaseException) -> str:
    """An error in one line, without the server's greeting or anything secret (pymysql's messages
    carry the user name at most, never the password)."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    text = str(args[1]) if len(args) >= 2 else str(exc)
    return " ".join(text.split())[:160]

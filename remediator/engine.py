"""Reconcile one cluster: read live state of every configured node, plan, guard, act, verify, record.

Guardrails: one reconcile at a time per cluster (deliveries that waited for the lock share
a reconcile that started after they arrived), a cooldown per node, a circuit breaker per
cluster, dry-run. A correction (demote then promote) passes the guards as ONE unit: they
decide before its first action and either let it run whole or none of it. Right before a
promotion every node is read again, and the promotion is dropped if anything it rests on
changed. Alerts are only triggers: nothing here reads an address from them.

Every read shares the reconcile's deadline (``limits.request_budget_seconds``): a peer that
drips or hangs cannot hold the cluster's lock past it.

"Down" is measured here, not trusted from memory: a node's "no answer" streak only grows while
it is observed again within about two ``probe_seconds``; a gap, or any answer, starts over.
While a node is in such a streak, or was counted down, the cluster is probed every
``probe_seconds`` without waiting for Alertmanager, so a grace ends when it should and a node
that comes back active after being counted down is demoted at once.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mxha.config import ConfigError
from mxha.failure_edges import FailureEdges
from mxha.maxscale import MaxScaleError, read_status
from mxha.model import StateFormatError, node_state_from_json
from mxha.policy import NO_ANSWER, OK, REFUSAL_REASONS, UNKNOWN, Action, NodeObservation, Plan, plan_actions
from mxha.remediator.config import NodeSettings, RemediatorConfig
from mxha.remediator.drivers import Driver, DriverError, make_driver
from mxha.remediator.guards import (
    Decision,
    GuardMemory,
    GuardSettings,
    PeerGuardFacts,
    Refuse,
    decide,
    is_rescue,
    needs_lease,
)
from mxha.remediator.replicas import Coordinator, Lease, LeaseLost, Refusal
from mxha.transport import HttpJsonError, JsonHttpClient

log = logging.getLogger("mxha.remediator")
ACTIONS = ("demote", "promote", "release_locks")
# what an action attempted came to; a dry run attempts none, so it counts none (its decisions count,
# under verdict="would-correct"): a sum over the results never takes a plan for an action
RESULTS = ("success", "failure", "skipped")
WOULD_CORRECT = "would-correct"  # a dry run's verdict for a plan it would have carried out
SKIP_REASONS = (
    "cooldown",
    "circuit_open",
    "state_changed",
    "demotion_failed",
    "budget",
    "lock_busy",  # replicas: another replica held the cluster's lock for the whole request budget
    "lock_unavailable",  # replicas: a majority of the lock servers did not answer
    "lock_lost",  # replicas: the lock was no longer ours when re-checked right before a write
    "peer_sees_node",  # replicas: a promotion over a node counted down, which a peer replica still reaches
    "unsettled_write",  # a promotion of another node, sent without an answer, may still land
)


class _TakeLease:
    """What ``_decide_and_act`` asks for first with replicas: take the cluster's lock, read again,
    decide again."""


TAKE_LEASE = _TakeLease()


@dataclass
class ReconcileResult:
    cluster: str
    started_mono: float
    time: float
    observations: list[dict[str, Any]]
    plan: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    shared: bool = False
    guard: str | None = None  # the guard that refused the correction, if one did
    lock: str | None = None  # replicas: how the cluster's lock was held, or why it was not

    def summary(self) -> dict[str, Any]:
        return {
            "verdict": self.plan["verdict"],
            "reason": self.plan["reason"],
            "keep": self.plan["keep"],
            "actions": self.results,
            "status": self.status,
            "time": self.time,
            "shared": self.shared,
            "guard": self.guard,
            "lock": self.lock,
        }


@dataclass(frozen=True)
class Streak:
    """A run of consecutive "no answer" observations of one node."""

    since: float
    last: float


@dataclass(frozen=True)
class UnsettledWrite:
    """A mode change sent to a node that gave no answer: MaxScale may still apply it."""

    action: str  # demote or promote
    until: float  # on the reconciler's clock: watched until then, or until it is seen applied
    until_wall: float  # the same, wall-clock, for peer replicas


@dataclass
class ClusterRuntime:
    """One cluster's decision state. ``lock`` is held by the one reconcile of the cluster at a time,
    the only writer of ``streaks``, ``counted_down``, ``unsettled`` and ``released_at``.
    ``/status``, ``/guardrails`` and the probe timer read them without that lock (a peer replica
    asks for ``/guardrails`` while it holds its own cluster lock, and ours may be held by a
    reconcile that waits for that peer): so they are replaced whole, never changed in place, and a
    reader that took one holds a consistent snapshot. ``answered_at`` is written by every read of
    the nodes (a peer's too), under ``answered_lock``, the same way. The deques are read with one
    copy (``list``) of the whole."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    last: ReconcileResult | None = None
    streaks: Mapping[str, Streak] = field(default_factory=dict)
    counted_down: frozenset[str] = frozenset()  # promoted over; watched until they answer
    last_action_at: dict[str, float] = field(default_factory=dict)
    action_times: collections.deque[float] = field(default_factory=collections.deque)
    circuit_open_until: float = 0.0
    refused: str | None = None  # the last reconcile's refusal reason
    released_at: Mapping[str, float] = field(default_factory=dict)  # our release-locks calls, by node (clock)
    answered_at: Mapping[str, float] = field(default_factory=dict)  # last answer from each node's MaxScale (wall)
    answered_lock: threading.Lock = field(default_factory=threading.Lock)
    lease: Lease | None = None  # replicas: the cluster's lock, while a correction holds it
    own_actions: collections.deque[tuple[str, float]] = field(default_factory=collections.deque)  # (node, wall)
    recent: collections.deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=50))
    unsettled: Mapping[str, UnsettledWrite] = field(default_factory=dict)  # by node
    recheck: threading.Timer | None = None
    recheck_due: float = float("inf")
    recheck_lock: threading.Lock = field(default_factory=threading.Lock)


class AuditLog:
    """Append-only JSON lines, flushed and fsynced before the webhook answers."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path:
            # Found unwritable at start (one line naming the key), not at the first webhook: a
            # container's non-root user meets a /var/lib/mxha it cannot create
            try:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
            except OSError as exc:
                raise ConfigError(f"audit_log: cannot write {path}: {exc.strerror}") from exc

    def write(self, record: dict[str, Any]) -> None:
        if not self.path:
            return
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)


class Metrics:
    def __init__(
        self,
        cfg: RemediatorConfig,
        runtimes: dict[str, ClusterRuntime],
        clock: Callable[[], float] = time.monotonic,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.actions = Counter(
            "mxha_remediator_actions",
            "Actions the remediator took or tried, by outcome (a dry run takes and counts none).",
            ["cluster", "node", "action", "result"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "mxha_remediator_decisions",
            "Reconcile decisions, by verdict.",
            ["cluster", "verdict"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "mxha_remediator_corrections_skipped",
            "Corrections not run (whole), by the guard or check that stopped them.",
            ["cluster", "reason"],
            registry=self.registry,
        )
        self.over_down = Counter(
            "mxha_remediator_promotions_over_down",
            "Promotions made while another node was counted down (no answer for the whole grace).",
            ["cluster"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "mxha_remediator_webhook_requests",
            "Webhook requests, by HTTP status code.",
            ["code"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "mxha_remediator_alerts",
            "Alerts received, by status and whether they were acted on.",
            ["status", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "mxha_remediator_reconcile_duration_seconds",
            "Time to read, plan and act.",
            ["cluster"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        for cname, cluster in cfg.clusters.items():  # series exist from the start, so increase() sees the first
            for node in cluster.nodes:
                for action in ACTIONS:
                    for result in RESULTS:
                        self.actions.labels(cname, node.name, action, result)
            for reason in SKIP_REASONS:
                self.skipped.labels(cname, reason)
            self.over_down.labels(cname)
        self.registry.register(_ClusterCollector(runtimes, clock, coordinator))


class _ClusterCollector(Collector):
    def __init__(
        self, runtimes: dict[str, ClusterRuntime], clock: Callable[[], float], coordinator: Coordinator | None
    ) -> None:
        self.runtimes = runtimes
        self.clock = clock
        self.coordinator = coordinator

    def collect(self) -> list[Metric]:
        circuit = GaugeMetricFamily(
            "mxha_remediator_circuit_open", "1 while the circuit breaker stops actions.", labels=["cluster"]
        )
        refused = GaugeMetricFamily(
            "mxha_remediator_cluster_refused",
            "1 for the reason the last reconcile of the cluster refused to act (node_identity: a /state names "
            "another node; config_sync; priority_tie: candidates rank the same; mode: what the nodes report "
            "contradicts the cluster's configured mode).",
            labels=["cluster", "reason"],
        )
        for name, rt in self.runtimes.items():
            now = self.clock()
            circuit.add_metric([name], 1 if rt.circuit_open_until > now else 0)
            for reason in REFUSAL_REASONS:
                refused.add_metric([name, reason], 1 if rt.refused == reason else 0)
        if self.coordinator is None:
            return [circuit, refused]
        quorum = GaugeMetricFamily(
            "mxha_remediator_lock_quorum",
            "Replicas: 1 while a majority of the cluster's lock servers answered when last asked, 0 when not "
            "(no correction can run then).",
            labels=["cluster"],
        )
        answering = GaugeMetricFamily(
            "mxha_remediator_lock_servers_answering",
            "Replicas: how many of the cluster's lock servers answered when last asked.",
            labels=["cluster"],
        )
        for name, (ok, count, _total) in sorted(self.coordinator.quorum.items()):
            quorum.add_metric([name], 1 if ok else 0)
            answering.add_metric([name], count)
        return [circuit, refused, quorum, answering]


@dataclass
class NodeReading:
    """One node read live: its /state (via its exporter) and its MaxScale (directly)."""

    observation: NodeObservation
    state_status: str  # ok, no_answer, error, budget (not asked: our own time ran out)
    state_error: str | None = None
    state_node: str | None = None
    exporter_maxscale: str | None = None  # what its exporter says of its MaxScale: up, no_answer, error
    maxscale_error: str | None = None
    maxscale_error_kind: str | None = None
    monitors_with_locks: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        return {**doc.pop("observation"), **doc}


def _status_of(exc: HttpJsonError) -> str:
    if exc.kind == "budget":
        return "budget"
    return NO_ANSWER if exc.error_kind == NO_ANSWER else "error"


class Reconciler:
    def __init__(
        self,
        cfg: RemediatorConfig,
        *,
        driver_factory: Callable[[NodeSettings], Driver] = make_driver,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.runtimes = {name: ClusterRuntime() for name in cfg.clusters}
        self.coordinator = (
            Coordinator(cfg.replicas, list(cfg.clusters), cfg.auth, cfg.policy.state_timeout)
            if cfg.replicas is not None
            else None
        )
        self.metrics = Metrics(cfg, self.runtimes, clock, self.coordinator)
        pol = cfg.policy
        self.guard_settings = GuardSettings(
            pol.cooldown_seconds,
            pol.circuit_window_seconds,
            pol.circuit_max_actions,
            pol.unreachable_grace_seconds,
            cfg.dry_run,
        )
        self.audit = audit or AuditLog(cfg.audit_log)
        self.drivers = {(c, n.name): driver_factory(n) for c, cl in cfg.clusters.items() for n in cl.nodes}
        self.clients = {
            (c, n.name): n.maxscale.client(keep_alive=True) for c, cl in cfg.clusters.items() for n in cl.nodes
        }
        self.state_clients = {
            (c, n.name): JsonHttpClient(
                n.state_url, connect_timeout=cfg.policy.state_timeout, read_timeout=cfg.policy.state_timeout
            )
            for c, cl in cfg.clusters.items()
            for n in cl.nodes
        }
        # a node's /state or MaxScale that fails is logged once, with why, and once when it recovers
        self.edges = FailureEdges(log)
        largest = max(len(cl.nodes) for cl in cfg.clusters.values())
        self.pool = ThreadPoolExecutor(max_workers=max(8, 4 * largest), thread_name_prefix="observe")
        self._closed = False

    @property
    def replica_id(self) -> str | None:
        return self.cfg.replicas.id if self.cfg.replicas is not None else None

    # -- reading live state ---------------------------------------------------------------
    def _read_state(self, cluster: str, node: NodeSettings, deadline: float) -> dict[str, Any]:
        """The node's /state, as far as it could be read by ``deadline``."""
        out: dict[str, Any] = {"status": "ok"}
        limit = min(deadline, time.monotonic() + self.cfg.policy.state_timeout)
        client = self.state_clients[(cluster, node.name)]
        source = f"cluster {cluster}: {node.name}'s /state {client.shown_url}"
        try:
            if deadline - time.monotonic() <= 0.001:
                raise HttpJsonError("not asked: the request budget was spent", kind="budget", answered=False)
            state = node_state_from_json(client.get_json(None, limit))
        except HttpJsonError as exc:
            self._failed(source, exc)
            return {"status": _status_of(exc), "error": str(exc)[:300]}
        except StateFormatError as exc:
            self.edges.failed(source, "document", f"bad /state document: {exc}"[:300])
            return {"status": "error", "error": f"bad /state document: {exc}"[:300]}
        self.edges.ok(source)
        out["node"] = state.node
        out["mode"] = state.mode
        if state.notify is not None and state.notify.locks_released_at is not None:
            out["hook_released_at"] = state.notify.locks_released_at
        gov = state.keepalived.governing()
        if state.keepalived.up and gov is not None:
            out["vrrp_state"], out["priority"] = gov.state, gov.priority
        out["holds_vip"] = state.holds_governing_vip()
        out["check_ok"] = state.check.success
        ms = state.maxscale
        out["exporter_maxscale"] = "up" if ms.up else (NO_ANSWER if ms.error_kind == NO_ANSWER else "error")
        return out

    def _read_maxscale(self, cluster: str, node: NodeSettings, deadline: float) -> dict[str, Any]:
        client = self.clients[(cluster, node.name)]
        source = f"cluster {cluster}: {node.name}'s MaxScale {client.shown_url}"
        try:
            if deadline - time.monotonic() <= 0.001:
                raise MaxScaleError("not asked: the request budget was spent", kind="budget", answered=False)
            status = read_status(client, deadline, servers=True)
        except MaxScaleError as exc:
            self._failed(source, exc)
            return {"status": _status_of(exc), "error": str(exc)[:300], "error_kind": exc.error_kind}
        known = status.passive is not None
        if known:
            self.edges.ok(source)
        else:
            self.edges.failed(source, "document", "MaxScale did not say whether it is passive")
        facts = status.facts
        return {
            "lock_primary": facts.lock_primary,
            "sees_primary": facts.sees_primary,
            "reaches_majority": facts.reaches_majority,
            "status": "ok" if known else "error",
            "error": None if known else "MaxScale did not say whether it is passive",
            "passive": status.passive,
            "config_sync": status.config_sync,
            "locks": status.lock_mode,
            "monitors_with_locks": status.monitors_with_locks,
        }

    def _failed(self, source: str, exc: HttpJsonError) -> None:
        if exc.kind != "budget":  # not asked, our own time having run out: that says nothing of the source
            self.edges.failed(source, exc.error_kind, str(exc)[:300])

    def observe(self, cluster: str, deadline: float, *, evidence: bool = False) -> list[NodeReading]:
        """Every node of the cluster, read side by side; ends by ``deadline`` whatever the peers do.

        ``evidence``: count this read in the "no answer" streaks and settle the unsettled writes it
        sees applied. Only a reconcile holding the cluster's lock passes it; any other read (a peer
        replica's ``?observe=``) changes no decision state, only when each MaxScale last answered."""
        nodes = self.cfg.clusters[cluster].nodes
        jobs: list[tuple[NodeSettings, Future[dict[str, Any]], Future[dict[str, Any]]]] = [
            (
                n,
                self.pool.submit(self._read_state, cluster, n, deadline),
                self.pool.submit(self._read_maxscale, cluster, n, deadline),
            )
            for n in nodes
        ]
        readings = []
        for node, state_f, ms_f in jobs:
            state = self._result(state_f, deadline)
            ms = self._result(ms_f, deadline)
            readings.append(self._reading(cluster, node.name, state, ms, evidence))
        return readings

    @staticmethod
    def _result(future: Future[dict[str, Any]], deadline: float) -> dict[str, Any]:
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()) + 0.25)
        except TimeoutError:  # only if a worker overran its own deadline: say so, decide nothing on it
            future.cancel()
            return {"status": "budget", "error": "read did not finish by the deadline"}

    def _reading(
        self, cluster: str, name: str, state: dict[str, Any], ms: dict[str, Any], evidence: bool
    ) -> NodeReading:
        """Combine what the node's exporter and its MaxScale said into one observation.

        Only "no answer" counts toward down, and only when the MaxScale gives none AND its
        exporter either gives none or itself reports its MaxScale not answering.
        """
        identity_ok = state.get("node") in (None, name)
        if ms["status"] == "ok":
            status = OK
            rt = self.runtimes[cluster]
            with rt.answered_lock:
                rt.answered_at = {**rt.answered_at, name: time.time()}
        elif ms["status"] == NO_ANSWER and (
            state["status"] == NO_ANSWER or (state["status"] == "ok" and state.get("exporter_maxscale") == NO_ANSWER)
        ):
            status = NO_ANSWER
        else:
            status = UNKNOWN
        down_for = self._evidence(cluster, name, status, budget_only=ms["status"] == "budget", record=evidence)
        if status == OK and evidence:
            self._settle(cluster, name, ms.get("passive"))
        obs = NodeObservation(
            name,
            state.get("vrrp_state"),
            state.get("priority"),
            state.get("holds_vip"),
            state.get("check_ok"),
            maxscale=status,
            passive=ms.get("passive") if status == OK else None,
            locks=ms.get("locks"),
            config_sync=ms.get("config_sync"),
            down_for=down_for,
            identity_ok=identity_ok,
            mode=state.get("mode"),
            lock_primary=ms.get("lock_primary") if status == OK else None,
            sees_primary=ms.get("sees_primary") if status == OK else None,
            reaches_majority=ms.get("reaches_majority") if status == OK else None,
            relock_backoff=self._in_backoff(cluster, name, state.get("hook_released_at")),
        )
        return NodeReading(
            obs,
            state["status"],
            state.get("error"),
            state.get("node"),
            state.get("exporter_maxscale"),
            ms.get("error"),
            ms.get("error_kind"),
            tuple(ms.get("monitors_with_locks", ())),
        )

    def _settle(self, cluster: str, name: str, passive: bool | None) -> None:
        """Forget an unsettled write on ``name`` once its mode is read as the write wanted (its
        watch ending is ``_unsettled``'s). Holding the cluster's lock."""
        rt = self.runtimes[cluster]
        pending = rt.unsettled.get(name)
        if pending is not None and passive is (pending.action == "demote"):
            rt.unsettled = {n: w for n, w in rt.unsettled.items() if n != name}
            log.info("cluster %s: the %s of %s sent without an answer is applied", cluster, pending.action, name)

    def _unsettled(self, cluster: str) -> Mapping[str, UnsettledWrite]:
        """The unsettled writes still watched (those whose watch has ended dropped). Holding the
        cluster's lock."""
        rt = self.runtimes[cluster]
        now = self.clock()
        watched = rt.unsettled
        for name, write in watched.items():
            if now >= write.until:
                log.info(
                    "cluster %s: the %s of %s sent without an answer was not seen applied within "
                    "unsettled_write_seconds",
                    cluster,
                    write.action,
                    name,
                )
        rt.unsettled = {n: w for n, w in watched.items() if now < w.until}
        return rt.unsettled

    def _backoff_left(self, cluster: str, name: str, now: float) -> float:
        """Seconds left (0: none) of MaxScale's no-relock back-off after OUR last release on the node."""
        ours = self.runtimes[cluster].released_at.get(name)
        return 0.0 if ours is None else max(0.0, self.cfg.policy.relock_backoff_seconds - (now - ours))

    def _in_backoff(self, cluster: str, name: str, hook_released_at: float | None) -> bool:
        """Is the node inside MaxScale's no-relock back-off after a release we or its hooks made?"""
        if self._backoff_left(cluster, name, self.clock()) > 0:
            return True
        return hook_released_at is not None and time.time() - hook_released_at < self.cfg.policy.relock_backoff_seconds

    def _evidence(self, cluster: str, name: str, status: str, *, budget_only: bool, record: bool) -> float | None:
        """The length of the node's "no answer" streak with this observation in it; ``record``
        (holding the cluster's lock): and keep the streak so."""
        rt = self.runtimes[cluster]
        now = self.clock()
        if status != NO_ANSWER:
            if record and not budget_only:  # a read we never made says nothing either way
                if name in rt.streaks:
                    rt.streaks = {n: s for n, s in rt.streaks.items() if n != name}
                rt.counted_down = rt.counted_down - {name}
            return None
        streak = rt.streaks.get(name)
        # the probe looks every probe_seconds and one look takes at most state_timeout: a longer
        # gap means nobody was looking, and silence nobody saw is no evidence
        max_gap = 2 * self.cfg.policy.probe_seconds + self.cfg.policy.state_timeout + 0.5
        since = now if streak is None or now - streak.last > max_gap else streak.since
        if record:
            rt.streaks = {**rt.streaks, name: Streak(since, now)}
        return now - since

    # -- the reconcile --------------------------------------------------------------------
    def reconcile(
        self, cluster: str, triggers: list[dict[str, Any]], arrived: float, deadline: float
    ) -> ReconcileResult:
        rt = self.runtimes[cluster]
        remaining = deadline - time.monotonic()
        if not rt.lock.acquire(timeout=max(0.0, remaining)):
            plan = Plan("busy", "another reconcile of this cluster held the lock past the request budget", retry=True)
            return ReconcileResult(cluster, time.monotonic(), time.time(), [], _plan_json(plan), status=503)
        try:
            if rt.last is not None and rt.last.started_mono >= arrived:
                # a reconcile that read live state after this delivery arrived has already run
                shared = ReconcileResult(**{**rt.last.__dict__, "shared": True})
                self._audit(shared, triggers)
                return shared
            with self.metrics.duration.labels(cluster).time():
                result = self._reconcile_locked(cluster, deadline)
            previous, rt.last = rt.last, result
            probe = all(t.get("status") == "probe" for t in triggers)
            if not probe or result.results or previous is None or previous.plan["verdict"] != result.plan["verdict"]:
                self._audit(result, triggers)  # probes are audited only when something changed
            watching = bool(rt.streaks or rt.counted_down or self._unsettled(cluster))
        finally:
            rt.lock.release()
        if watching:
            self._schedule_recheck(cluster, self.cfg.policy.probe_seconds)
        acted = any(r["result"] == "success" for r in result.results)
        if acted or result.status != 200:
            self._schedule_recheck(cluster, self.cfg.policy.recheck_seconds)
        return result

    def _schedule_recheck(self, cluster: str, delay: float) -> None:
        """Look again a little later without waiting for Alertmanager: an alert that keeps firing
        is only re-sent at its repeat_interval, so an undone correction (or a grace period that
        ends) would otherwise wait that long."""
        rt = self.runtimes[cluster]
        if delay <= 0 or self._closed:
            return
        due = time.monotonic() + delay
        with rt.recheck_lock:
            if rt.recheck is not None:
                if rt.recheck_due <= due:
                    return
                rt.recheck.cancel()
            timer = threading.Timer(delay, self._recheck, args=(cluster,))
            timer.daemon = True
            rt.recheck, rt.recheck_due = timer, due
            timer.start()

    def _recheck(self, cluster: str) -> None:
        rt = self.runtimes[cluster]
        with rt.recheck_lock:
            rt.recheck, rt.recheck_due = None, float("inf")
        if self._closed:
            return
        now = time.monotonic()
        kind = "probe" if rt.streaks or rt.counted_down or rt.unsettled else "recheck"
        trigger = {"status": kind, "alertname": "", "cluster": cluster, "fingerprint": ""}
        try:
            self.reconcile(cluster, [trigger], now, now + self.cfg.request_budget_seconds)
        except Exception:  # noqa: BLE001 - a timer thread must not die silently
            log.exception("cluster %s: recheck failed", cluster)

    def close(self) -> None:
        self._closed = True
        if self.coordinator is not None:
            self.coordinator.close()
        for rt in self.runtimes.values():
            with rt.recheck_lock:
                if rt.recheck is not None:
                    rt.recheck.cancel()
                    rt.recheck = None

    def _reconcile_locked(self, cluster: str, deadline: float) -> ReconcileResult:
        started = time.monotonic()
        # Observation may use half of what is left; the rest is kept for a whole correction.
        readings = self.observe(cluster, started + (deadline - started) / 2, evidence=True)
        result = ReconcileResult(cluster, started, time.time(), [], {})
        acted: set[str] = set()
        rt = self.runtimes[cluster]
        try:
            # A correction whose ground moved under it (the re-read before its promotion disagreed) is
            # decided again at once from what that re-read saw: once, within the same deadline.
            attempt = 0
            while attempt < 2:
                fresh = self._decide_and_act(cluster, readings, deadline, result, acted, attempt)
                if isinstance(fresh, _TakeLease):
                    if not self._take_lease(cluster, deadline, result):
                        break
                    # decided again from a read made while holding the lock: never on a plan made
                    # before another replica's correction
                    readings = self.observe(
                        cluster, time.monotonic() + (deadline - time.monotonic()) / 2, evidence=True
                    )
                    continue
                if fresh is None or time.monotonic() >= deadline:
                    break
                readings = fresh
                attempt += 1
        finally:
            if rt.lease is not None:
                rt.lease.release()
                rt.lease = None
        return result

    def _take_lease(self, cluster: str, deadline: float, result: ReconcileResult) -> bool:
        """Replicas: take the cluster's lock on a majority of its lock servers, or record why not."""
        assert self.coordinator is not None
        got = self.coordinator.acquire(cluster, deadline)
        if isinstance(got, Refusal):
            result.lock = got.detail
            result.guard = got.reason
            result.status = 503
            result.plan["verdict"] = got.reason.replace("_", "-")
            result.plan["reason"] = f"{got.detail}: not running any of it; wanted: {result.plan['reason']}"
            self.metrics.skipped.labels(cluster, got.reason).inc()
            for action in result.plan["actions"]:
                kind = _recorded(action["kind"])
                result.results.append(self._record(cluster, action["node"], kind, "skipped", got.detail))
            log.warning("cluster %s: no correction: %s", cluster, got.detail)
            return False
        self.runtimes[cluster].lease = got
        result.lock = got.describe()
        return True

    def _fence(self, cluster: str, deadline: float) -> None:
        """Replicas: right before a write, is the cluster's lock still ours? Raises LeaseLost."""
        lease = self.runtimes[cluster].lease  # only replicas take one
        if lease is not None:
            lease.check(deadline)

    def _decide_and_act(
        self,
        cluster: str,
        readings: list[NodeReading],
        deadline: float,
        result: ReconcileResult,
        acted: set[str],
        attempt: int,
    ) -> list[NodeReading] | _TakeLease | None:
        """Plan from ``readings``; guard, act. Returns fresh readings when the correction was dropped
        because the state changed under it, TAKE_LEASE when replicas must first take the cluster's
        lock, else None."""
        plan = self._plan(cluster, [r.observation for r in readings])
        rt = self.runtimes[cluster]
        rt.refused = plan.refusal
        result.observations = [r.to_json() for r in readings]
        result.plan = _plan_json(plan)
        if attempt:
            result.plan["notes"] = [*result.plan["notes"], "decided again after the state changed mid-correction"]
        result.status = 503 if plan.retry else (200 if result.status == 503 else result.status)
        dry_verdict = WOULD_CORRECT if plan.verdict == "corrected" else plan.verdict
        self.metrics.decisions.labels(cluster, dry_verdict if self.cfg.dry_run else plan.verdict).inc()
        if not plan.actions:
            return None
        if needs_lease(
            plan, replicas=self.coordinator is not None, lease_held=rt.lease is not None, dry_run=self.cfg.dry_run
        ):
            return TAKE_LEASE
        # a promotion into a cluster with NO active MaxScale is a rescue: the guards exist to stop
        # flapping, and holding a rescue back would leave none active for the whole window
        rescue = is_rescue(plan, [r.observation for r in readings])
        decision = self._guard(cluster, plan, exempt=acted, rescue=rescue, deadline=deadline, result=result)
        if isinstance(decision, Refuse):
            reason, status = decision.reason, decision.status
            result.guard = reason
            result.plan["verdict"] = reason.replace("_", "-")
            result.plan["reason"] = f"{reason.replace('_', ' ')}: not running any of it; wanted: {plan.reason}"
            self.metrics.skipped.labels(cluster, reason).inc()
            for action in plan.actions:
                result.results.append(self._record(cluster, action.node, action.kind, "skipped", reason))
            result.status = max(result.status, status)
            return None
        if self.cfg.dry_run:
            result.plan["verdict"] = dry_verdict
            result.plan["reason"] = f"dry run, nothing was sent: {plan.reason}"
            for action in plan.actions:
                result.results.append(self._would(cluster, action.node, _recorded(action.kind)))
            return None
        acted.update(a.node for a in plan.actions)
        try:
            return self._run_correction(cluster, plan, readings, deadline, result)
        except LeaseLost as exc:
            detail = f"lock lost: {exc}"
            result.lock = detail
            result.status = 503
            self.metrics.skipped.labels(cluster, "lock_lost").inc()
            done = {(r["node"], r["action"]) for r in result.results}
            for action in plan.actions:
                kind = _recorded(action.kind)
                if (action.node, kind) not in done:
                    result.results.append(self._record(cluster, action.node, kind, "skipped", detail))
            log.warning("cluster %s: stopped before acting: %s", cluster, detail)
            return None

    def _plan(self, cluster: str, nodes: list[NodeObservation]) -> Plan:
        return plan_actions(nodes, self.cfg.policy.unreachable_grace_seconds, self.cfg.clusters[cluster].mode)

    def _guard(
        self,
        cluster: str,
        plan: Plan,
        exempt: set[str],
        rescue: bool = False,
        deadline: float | None = None,
        result: ReconcileResult | None = None,
    ) -> Decision:
        """Gather what the guards decide on (this replica's memory; with replicas, what its peers
        say, read while holding the cluster's lock), ask ``guards.decide`` ONCE for the whole
        correction, and carry out what it decided: count an admitted correction, open the breaker."""
        rt = self.runtimes[cluster]
        now = self.clock()
        peers, notes = self._peer_guardrails(cluster, now, deadline, observe=bool(plan.over_down))
        window = self.cfg.policy.circuit_window_seconds
        while rt.action_times and now - rt.action_times[0] > window:
            rt.action_times.popleft()
        watched = self._unsettled(cluster) if plan.promotes else {}
        memory = GuardMemory(
            dict(rt.last_action_at),
            tuple(rt.action_times),
            rt.circuit_open_until,
            frozenset(n for n, w in watched.items() if w.action == "promote"),
        )
        decision = decide(plan, memory, peers, self.guard_settings, now, exempt=exempt, rescue=rescue)
        if isinstance(decision, Refuse):
            notes = (*notes, *decision.notes)
            if decision.open_circuit_until is not None:
                rt.circuit_open_until = decision.open_circuit_until
                log.warning("cluster %s: %s", cluster, decision.opened)
        elif decision.count:
            self._admit(cluster, plan, now)
        if notes and result is not None:
            result.plan["notes"] = [*result.plan.get("notes", []), *notes]
        return decision

    def _admit(self, cluster: str, plan: Plan, now: float) -> None:
        """A correction admitted whole: every action of it counts, now (and is shown to peer replicas)."""
        rt = self.runtimes[cluster]
        wall = time.time()
        keep = max(self.cfg.policy.circuit_window_seconds, self.cfg.policy.cooldown_seconds)
        while rt.own_actions and wall - rt.own_actions[0][1] > keep:
            rt.own_actions.popleft()
        for action in plan.actions:
            rt.action_times.append(now)
            rt.last_action_at[action.node] = now
            rt.own_actions.append((action.node, wall))

    def _peer_guardrails(
        self, cluster: str, now: float, deadline: float | None, observe: bool = False
    ) -> tuple[PeerGuardFacts, tuple[str, ...]]:
        """Peer replicas' guard facts on ``cluster``, read now and put on our clock (``now``), with
        notes on peers that could not be read: their recent actions, the latest circuit_open_until
        any of them reports, when each of them last got an answer from each node, and the nodes a
        promotion sent by one of them without an answer may still land on."""
        if self.coordinator is None or not self.coordinator.settings.peers:
            return PeerGuardFacts(), ()
        # a peer asked to look first needs its own read's time too
        wait = self.cfg.policy.state_timeout * (2 if observe else 1) + (0.5 if observe else 0)
        limit = min(deadline or float("inf"), time.monotonic() + wait)
        facts = self.coordinator.peer_facts(cluster, limit, observe)
        wall = time.time()

        def ours(when: float) -> float:  # a peer's wall-clock time on our clock
            return now - (wall - when)

        last: dict[str, float] = {}
        times: list[float] = []
        for node, when in facts.actions:
            at = ours(when)
            last[node] = max(last.get(node, float("-inf")), at)
            times.append(at)
        unsettled = {node: replica for node, (until, replica) in facts.unsettled_promotions.items() if until > wall}
        answered = {node: (ours(at), replica) for node, (at, replica) in facts.answered.items()}
        peer = PeerGuardFacts(last, tuple(times), ours(facts.circuit_open_until), answered, unsettled)
        return peer, tuple(facts.notes)

    def guardrails(self) -> dict[str, Any]:
        """What peer replicas read (``GET /guardrails``): this replica's OWN recent actions per cluster,
        wall-clock, and its breaker. Never what it read from others (no echo, no double count)."""
        now = self.clock()
        wall = time.time()
        out: dict[str, Any] = {}
        keep = max(self.cfg.policy.circuit_window_seconds, self.cfg.policy.cooldown_seconds)
        for name, rt in self.runtimes.items():
            open_until = rt.circuit_open_until
            out[name] = {
                "actions": [{"node": n, "at": at} for n, at in list(rt.own_actions) if wall - at <= keep],
                "circuit_open_until": wall + (open_until - now) if open_until > now else None,
                "answered": dict(rt.answered_at),  # when this replica last got an answer from each MaxScale
                # mode changes it sent without an answer, which may still land (watched until then)
                "unsettled": [
                    {"node": n, "action": w.action, "until": w.until_wall} for n, w in sorted(rt.unsettled.items())
                ],
            }
        return {"replica": self.replica_id, "clusters": out}

    def _run_correction(
        self, cluster: str, plan: Plan, readings: list[NodeReading], deadline: float, result: ReconcileResult
    ) -> list[NodeReading] | None:
        by_name = {r.observation.name: r for r in readings}
        demotions = [a for a in plan.actions if a.kind == "demote"]
        # promotions, then lock releases: each only after a fresh read still asks for it
        rest = [a for a in plan.actions if a.kind == "promote"] + [a for a in plan.actions if a.kind == "release"]
        for action in demotions:
            outcome = self._change_mode(cluster, action, by_name[action.node], deadline)
            result.results.append(outcome)
            if outcome["result"] != "success":
                result.status = 500
                for later in plan.actions[plan.actions.index(action) + 1 :]:
                    result.results.append(
                        self._record(
                            cluster, later.node, later.kind, "skipped", f"demotion of {action.node} not confirmed"
                        )
                    )
                self.metrics.skipped.labels(cluster, "demotion_failed").inc()
                return None
        for i, action in enumerate(rest):
            changed, fresh = self._changed_since(
                cluster, plan, readings, {a.node for a in demotions}, deadline, tuple(rest[i:])
            )
            if changed:
                self.metrics.skipped.labels(cluster, "state_changed").inc()
                kind = _recorded(action.kind)
                result.results.append(self._record(cluster, action.node, kind, "skipped", "state changed: " + changed))
                result.status = 503
                return fresh
            if action.kind == "release":
                outcome = self._hand_locks_over(cluster, action.node, str(plan.keep), by_name[action.node], deadline)
                result.results.append(outcome)
                if outcome["result"] != "success":
                    result.status = max(result.status, 503 if outcome.get("retry") else 500)
                continue
            outcome = self._change_mode(cluster, action, by_name[action.node], deadline)
            result.results.append(outcome)
            if outcome["result"] != "success":
                result.status = 500
            elif plan.over_down:
                rt = self.runtimes[cluster]
                rt.counted_down = rt.counted_down | set(plan.over_down)
                self.metrics.over_down.labels(cluster).inc()
                outcome["over_down"] = list(plan.over_down)
        return None

    def _changed_since(
        self,
        cluster: str,
        plan: Plan,
        before: list[NodeReading],
        demoted: set[str],
        deadline: float,
        remaining: tuple[Action, ...],
    ) -> tuple[str | None, list[NodeReading]]:
        """Read every node again; say what changed that the ``remaining`` actions rest on (or None),
        with the readings."""
        limit = min(deadline, time.monotonic() + self.cfg.policy.state_timeout)
        fresh = self.observe(cluster, limit, evidence=True)
        now = {r.observation.name: r.observation for r in fresh}
        keep = plan.keep
        changes: list[str] = []
        for old in (r.observation for r in before):
            new = now[old.name]
            fields: tuple[str, ...]
            if old.name == keep:
                fields = ("vrrp_state", "holds_vip", "check_ok", "maxscale", "passive", "reaches_majority")
            else:
                fields = ("maxscale",) if old.name in demoted else ("maxscale", "passive")
            if any(a.kind == "release" for a in remaining):
                fields += ("lock_primary",)
            for f in fields:
                if getattr(old, f) != getattr(new, f):
                    changes.append(f"{old.name} {f} {getattr(old, f)!r} -> {getattr(new, f)!r}")
            if old.name in demoted and new.passive is not True:
                changes.append(f"{old.name} is not passive after its demotion")
        if changes:
            return "; ".join(changes), fresh
        again = self._plan(cluster, list(now.values()))
        if again.keep != keep or again.actions != remaining:
            return f"a fresh plan says {again.verdict}: {again.reason}", fresh
        return None, fresh

    def _change_mode(self, cluster: str, action: Action, reading: NodeReading, deadline: float) -> dict[str, Any]:
        node = action.node
        driver = self.drivers[(cluster, node)]
        client = self.clients[(cluster, node)]
        passive = action.kind == "demote"
        try:
            if deadline - time.monotonic() <= 0:
                raise DriverError("the request budget was spent before this action")
            self._fence(cluster, deadline)
            try:
                driver.set_passive(passive, deadline)
            except DriverError as exc:
                # a change whose answer was lost may have been applied, or may still be: ask (that
                # read is the read-back)
                failed = self._applied(cluster, action, exc, deadline)
                if failed is not None:
                    return failed
                log.warning(
                    "cluster %s: %s %s: applied, though its answer was lost (%s)", cluster, action.kind, node, exc
                )
                outcome = self._record(cluster, node, action.kind, "success")
            else:
                try:
                    read_back = client.get_maxscale(deadline)["parameters"].get("passive")
                except MaxScaleError as exc:
                    # MaxScale acknowledged the change: it is applied. What follows (the re-read before a
                    # promotion) sees the node's reachability change and decides with that.
                    note = f"acknowledged by MaxScale; reading it back failed: {exc}"[:300]
                    outcome = self._record(cluster, node, action.kind, "success", note)
                else:
                    if read_back is not passive:
                        raise DriverError("MaxScale did not report the new mode after the change")
                    outcome = self._record(cluster, node, action.kind, "success")
        except (DriverError, MaxScaleError) as exc:
            return self._record(cluster, node, action.kind, "failure", str(exc)[:300])
        if action.release_locks:  # the policy asks only when this node holds them and the keeper can take them
            try:
                self._fence(cluster, deadline)
                self._record(cluster, node, "release_locks", "success", self._release(cluster, node, reading, deadline))
            except (DriverError, MaxScaleError) as exc:
                self._record(cluster, node, "release_locks", "failure", str(exc)[:300])
        return outcome

    def _applied(self, cluster: str, action: Action, exc: DriverError, deadline: float) -> dict[str, Any] | None:
        """After a mode change gave no answer: None when MaxScale now reports the new mode (applied),
        else the failure's record. A change that was sent and got no answer is recorded with
        ``outcome: unknown`` and watched for ``unsettled_write_seconds`` (it may land later)."""
        passive = action.kind == "demote"
        try:
            now_passive = self.clients[(cluster, action.node)].get_maxscale(deadline)["parameters"].get("passive")
            seen = (
                f"read {'passive' if now_passive else 'active'} right after"
                if now_passive is not None
                else "its mode was not in the document read right after"
            )
        except MaxScaleError as read_exc:
            now_passive, seen = None, f"its mode could not be read right after ({read_exc})"
        if now_passive is passive:
            return None
        if not exc.may_land:
            return self._record(cluster, action.node, action.kind, "failure", str(exc)[:300])
        pol = self.cfg.policy
        rt = self.runtimes[cluster]
        write = UnsettledWrite(
            action.kind, self.clock() + pol.unsettled_write_seconds, time.time() + pol.unsettled_write_seconds
        )
        rt.unsettled = {**rt.unsettled, action.node: write}
        reason = f"outcome unknown: {exc}; {seen}; it may still be applied (watched {pol.unsettled_write_seconds:g}s)"
        entry = self._record(cluster, action.node, action.kind, "failure", reason[:400])
        entry["outcome"] = "unknown"
        return entry

    def _release(self, cluster: str, node: str, reading: NodeReading, deadline: float) -> str:
        """release-locks on every monitor of ``node`` that uses locks; remembered for the back-off
        (MaxScale starts it whatever the call freed). Raises DriverError."""
        driver = self.drivers[(cluster, node)]
        notes = []
        for monitor in reading.monitors_with_locks:
            outcome = driver.release_locks(monitor, deadline)
            if outcome != "locks-off":
                rt = self.runtimes[cluster]
                rt.released_at = {**rt.released_at, node: self.clock()}
            notes.append(f"{monitor}: {outcome}")
        return ", ".join(notes) or "no monitor uses locks"

    def _hand_locks_over(
        self, cluster: str, node: str, keep: str, reading: NodeReading, deadline: float
    ) -> dict[str, Any]:
        """Release ``node``'s locks, then verify that ``keep`` became the lock primary within
        ``policy.lock_handover_seconds`` (and the request's deadline)."""
        try:
            if deadline - time.monotonic() <= 0:
                raise DriverError("the request budget was spent before this action")
            self._fence(cluster, deadline)
            released = self._release(cluster, node, reading, deadline)
        except (DriverError, MaxScaleError) as exc:
            return self._record(cluster, node, "release_locks", "failure", str(exc)[:300])
        started = time.monotonic()
        limit = min(deadline, started + self.cfg.policy.lock_handover_seconds)
        client = self.clients[(cluster, keep)]
        seen = "not read"
        while True:
            try:
                primary = read_status(client, limit).facts.lock_primary
                seen = f"lock primary {primary}"
            except MaxScaleError as exc:
                primary, seen = None, f"unreadable ({exc.error_kind})"
            took = time.monotonic() - started
            if primary is True:
                return self._record(
                    cluster, node, "release_locks", "success", f"{released}; {keep} took the locks in {took:.2f}s"
                )
            if time.monotonic() + 0.1 >= limit:
                entry = self._record(
                    cluster,
                    node,
                    "release_locks",
                    "failure",
                    f"{released}; {keep} had not taken the locks after {took:.2f}s ({seen})",
                )
                return {**entry, "retry": True}
            time.sleep(0.1)

    def _record(self, cluster: str, node: str, action: str, outcome: str, reason: str = "") -> dict[str, Any]:
        self.metrics.actions.labels(cluster, node, action, outcome).inc()
        entry = {"time": time.time(), "node": node, "action": action, "result": outcome, "reason": reason}
        self.runtimes[cluster].recent.append(entry)
        log.info("cluster %s: %s %s -> %s %s", cluster, action, node, outcome, reason)
        return entry

    def _would(self, cluster: str, node: str, action: str) -> dict[str, Any]:
        """What a dry run would have done: shown and audited as such (result ``dry_run``), never
        counted as an action."""
        entry = {
            "time": time.time(),
            "node": node,
            "action": action,
            "result": "dry_run",
            "reason": "dry run: not sent",
        }
        self.runtimes[cluster].recent.append(entry)
        log.info("cluster %s: dry run: would %s %s; nothing sent", cluster, action, node)
        return entry

    def _audit(self, result: ReconcileResult, triggers: list[dict[str, Any]]) -> None:
        self.audit.write(
            {
                "time": time.time(),
                "cluster": result.cluster,
                "triggers": triggers,
                "shared": result.shared,
                "observed": result.observations,
                "plan": result.plan,
                "guard": result.guard,
                "results": result.results,
                "status": result.status,
                "dry_run": self.cfg.dry_run,
                "replica": self.replica_id,
                "lock": result.lock,
            }
        )

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = self.clock()
        out: dict[str, Any] = {"dry_run": self.cfg.dry_run, "clusters": {}}
        if self.coordinator is not None:
            out["replica"] = self.replica_id
            out["peers"] = {
                url: {"readable": v.ok, "error": v.error, "read_at": v.read_at}
                for url, v in self.coordinator.peer_views.items()
            }
        for name, rt in self.runtimes.items():
            # one snapshot of each (see ClusterRuntime): a reconcile may replace them meanwhile
            last, streaks, unsettled = rt.last, rt.streaks, rt.unsettled
            out["clusters"][name] = {
                "nodes": [n.name for n in self.cfg.clusters[name].nodes],
                "circuit": {
                    "open": rt.circuit_open_until > now,
                    "open_for_seconds": max(0.0, rt.circuit_open_until - now),
                    "actions_in_window": len(rt.action_times),
                    "max_actions": self.cfg.policy.circuit_max_actions,
                    "window_seconds": self.cfg.policy.circuit_window_seconds,
                },
                "mode": self.cfg.clusters[name].mode,
                "refused": rt.refused,
                "relock_backoff": {
                    n: round(left, 3) for n in sorted(rt.released_at) if (left := self._backoff_left(name, n, now)) > 0
                },
                "not_answering_for": {n: round(now - s.since, 3) for n, s in sorted(streaks.items())},
                "counted_down": sorted(rt.counted_down),
                "unsettled_writes": {
                    n: {"action": w.action, "watched_for_seconds": round(max(0.0, w.until - now), 3)}
                    for n, w in sorted(unsettled.items())
                    if w.until > now
                },
                "last_observed": last.observations if last else None,
                "last_plan": last.plan if last else None,
                "last_guard": last.guard if last else None,
                "last_reconcile_at": last.time if last else None,
                "recent_actions": list(rt.recent),
            }
            if self.coordinator is not None:
                ok, answering, total = self.coordinator.quorum.get(name, (False, 0, 0))
                out["clusters"][name]["lock_store"] = {"quorum": ok, "answering": answering, "servers": total}
        return out


def _recorded(kind: str) -> str:
    """A plan's action kind as actions are recorded and counted (``ACTIONS``)."""
    return "release_locks" if kind == "release" else kind


def _plan_json(plan: Plan) -> dict[str, Any]:
    doc = asdict(plan)
    doc["actions"] = list(doc["actions"])
    return doc

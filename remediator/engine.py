"""Reconcile one cluster: read live state of every configured node, plan, guard, act, verify, record.

Guardrails: one reconcile at a time per cluster (deliveries that waited for the lock share
a reconcile that started after they arrived), a cooldown per node, a circuit breaker per
cluster, dry-run. Alerts are only triggers: nothing here reads an address from them.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import requests
from mxha.remediator.config import NodeSettings, RemediatorConfig
from mxha.remediator.drivers import Driver, DriverError, make_driver
from mxha.remediator.policy import Action, NodeObservation, Plan, plan_actions
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mxha.maxscale import MaxScaleError, monitor_lock_mode
from mxha.model import StateFormatError, node_state_from_json

log = logging.getLogger("mxha.remediator")
ACTIONS = ("demote", "promote", "release_locks")
RESULTS = ("success", "failure", "skipped", "dry_run")


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

    def summary(self) -> dict[str, Any]:
        return {
            "verdict": self.plan["verdict"],
            "reason": self.plan["reason"],
            "keep": self.plan["keep"],
            "actions": self.results,
            "status": self.status,
            "time": self.time,
            "shared": self.shared,
        }


@dataclass
class ClusterRuntime:
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: ReconcileResult | None = None
    unreachable_since: dict[str, float] = field(default_factory=dict)
    last_action_at: dict[str, float] = field(default_factory=dict)
    action_times: collections.deque[float] = field(default_factory=collections.deque)
    circuit_open_until: float = 0.0
    recent: collections.deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=50))
    recheck: threading.Timer | None = None
    recheck_lock: threading.Lock = field(default_factory=threading.Lock)


class AuditLog:
    """Append-only JSON lines, flushed and fsynced before the webhook answers."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

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
    def __init__(self, cfg: RemediatorConfig, runtimes: dict[str, ClusterRuntime]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.actions = Counter(
            "mxha_remediator_actions",
            "Actions the remediator took or tried, by outcome.",
            ["cluster", "node", "action", "result"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "mxha_remediator_decisions",
            "Reconcile decisions, by verdict.",
            ["cluster", "verdict"],
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
        self.registry.register(_CircuitCollector(runtimes))


class _CircuitCollector(Collector):
    def __init__(self, runtimes: dict[str, ClusterRuntime]) -> None:
        self.runtimes = runtimes

    def collect(self) -> list[Metric]:
        g = GaugeMetricFamily(
            "mxha_remediator_circuit_open", "1 while the circuit breaker stops actions.", labels=["cluster"]
        )
        now = time.monotonic()
        for name, rt in self.runtimes.items():
            g.add_metric([name], 1 if rt.circuit_open_until > now else 0)
        return [g]


def _obs_json(o: NodeObservation) -> dict[str, Any]:
    return asdict(o)


class Reconciler:
    def __init__(
        self,
        cfg: RemediatorConfig,
        *,
        driver_factory: Callable[[NodeSettings], Driver] = make_driver,
        audit: AuditLog | None = None,
    ) -> None:
        self.cfg = cfg
        self.runtimes = {name: ClusterRuntime() for name in cfg.clusters}
        self.metrics = Metrics(cfg, self.runtimes)
        self.audit = audit or AuditLog(cfg.audit_log)
        self.drivers = {(c, n.name): driver_factory(n) for c, cl in cfg.clusters.items() for n in cl.nodes}
        self.clients = {
            (c, n.name): n.maxscale.client(keep_alive=True) for c, cl in cfg.clusters.items() for n in cl.nodes
        }
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="observe")

    # -- reading live state ---------------------------------------------------------------
    def _observe_node(
        self, cluster: str, node: NodeSettings, deadline: float
    ) -> tuple[NodeObservation, dict[str, Any]]:
        rt = self.runtimes[cluster]
        extra: dict[str, Any] = {"monitors_with_locks": []}
        vrrp_state = priority = holds_vip = check_ok = None
        state_error: str | None = None
        try:
            timeout = max(0.05, min(self.cfg.policy.state_timeout, deadline - time.monotonic()))
            resp = requests.get(node.state_url, timeout=timeout)
            resp.raise_for_status()
            state = node_state_from_json(resp.json())
            gov = state.keepalived.governing()
            if state.keepalived.up and gov is not None:
                vrrp_state, priority = gov.state, gov.priority
            holds_vip = state.holds_governing_vip()
            check_ok = state.check.success
        except (requests.RequestException, ValueError, StateFormatError) as exc:
            state_error = f"{type(exc).__name__}: {exc}"[:300]
        client = self.clients[(cluster, node.name)]
        passive = config_sync = None
        locks = None
        ms_error: str | None = None
        try:
            attrs = client.get_maxscale(deadline)
            value = attrs.get("parameters", {}).get("passive")
            passive = value if isinstance(value, bool) else None
            config_sync = attrs.get("config_sync") is not None
            monitors = client.get_monitors(deadline)
            modes = [monitor_lock_mode(m) for m in monitors]
            locks = next((m for m in modes if m != "none"), "none")
            extra["monitors_with_locks"] = [str(m.get("id")) for m in monitors if monitor_lock_mode(m) != "none"]
            maxscale_up = True
            rt.unreachable_since.pop(node.name, None)
        except MaxScaleError as exc:
            maxscale_up = False
            ms_error = str(exc)[:300]
            rt.unreachable_since.setdefault(node.name, time.monotonic())
        unreachable_for = None if maxscale_up else time.monotonic() - rt.unreachable_since[node.name]
        obs = NodeObservation(
            node.name,
            vrrp_state,
            priority,
            holds_vip,
            check_ok,
            maxscale_up,
            passive,
            locks,
            config_sync,
            unreachable_for,
        )
        extra["state_error"] = state_error
        extra["maxscale_error"] = ms_error
        return obs, extra

    def observe(self, cluster: str, deadline: float) -> tuple[list[NodeObservation], dict[str, dict[str, Any]]]:
        nodes = self.cfg.clusters[cluster].nodes
        futures = [self.pool.submit(self._observe_node, cluster, n, deadline) for n in nodes]
        pairs = [f.result() for f in futures]
        return [p[0] for p in pairs], {p[0].name: p[1] for p in pairs}

    # -- the reconcile --------------------------------------------------------------------
    def reconcile(
        self, cluster: str, triggers: list[dict[str, Any]], arrived: float, deadline: float
    ) -> ReconcileResult:
        rt = self.runtimes[cluster]
        remaining = deadline - time.monotonic()
        if not rt.lock.acquire(timeout=max(0.0, remaining)):
            plan = Plan("busy", "another reconcile of this cluster held the lock past the request budget", retry=True)
            return ReconcileResult(cluster, time.monotonic(), time.time(), [], asdict(plan), status=503)
        try:
            if rt.last is not None and rt.last.started_mono >= arrived:
                # a reconcile that read live state after this delivery arrived has already run
                shared = ReconcileResult(**{**rt.last.__dict__, "shared": True})
                self._audit(shared, triggers)
                return shared
            with self.metrics.duration.labels(cluster).time():
                result = self._reconcile_locked(cluster, deadline)
            rt.last = result
            self._audit(result, triggers)
        finally:
            rt.lock.release()
        acted = any(r["result"] == "success" for r in result.results)
        if acted or result.status != 200:
            self._schedule_recheck(cluster)
        return result

    def _schedule_recheck(self, cluster: str) -> None:
        """Look again a little later without waiting for Alertmanager: an alert that keeps firing
        is only re-sent at its repeat_interval, so an undone correction (or a grace period that
        ends) would otherwise wait that long."""
        delay = self.cfg.policy.recheck_seconds
        rt = self.runtimes[cluster]
        if delay <= 0:
            return
        with rt.recheck_lock:
            if rt.recheck is not None:
                return
            timer = threading.Timer(delay, self._recheck, args=(cluster,))
            timer.daemon = True
            rt.recheck = timer
            timer.start()

    def _recheck(self, cluster: str) -> None:
        rt = self.runtimes[cluster]
        with rt.recheck_lock:
            rt.recheck = None
        now = time.monotonic()
        trigger = {"status": "recheck", "alertname": "", "cluster": cluster, "fingerprint": ""}
        try:
            self.reconcile(cluster, [trigger], now, now + self.cfg.request_budget_seconds)
        except Exception:  # noqa: BLE001 - a timer thread must not die silently
            log.exception("cluster %s: recheck failed", cluster)

    def close(self) -> None:
        for rt in self.runtimes.values():
            with rt.recheck_lock:
                if rt.recheck is not None:
                    rt.recheck.cancel()
                    rt.recheck = None

    def _reconcile_locked(self, cluster: str, deadline: float) -> ReconcileResult:
        started = time.monotonic()
        observations, extra = self.observe(cluster, deadline)
        plan = plan_actions(observations, self.cfg.policy.unreachable_grace_seconds)
        result = ReconcileResult(
            cluster, started, time.time(), [{**_obs_json(o), **extra[o.name]} for o in observations], asdict(plan)
        )
        self.metrics.decisions.labels(cluster, plan.verdict).inc()
        if plan.retry:
            result.status = 503
        rt = self.runtimes[cluster]
        if plan.actions and rt.circuit_open_until > time.monotonic():
            result.plan["verdict"] = "circuit-open"
            result.plan["reason"] = (
                f"circuit breaker open for {rt.circuit_open_until - time.monotonic():.0f}s more; wanted: {plan.reason}"
            )
            for action in plan.actions:
                result.results.append(self._record(cluster, action.node, action.kind, "skipped", "circuit open"))
            result.status = 200
            return result
        by_name = {o.name: o for o in observations}
        for action in plan.actions:
            if time.monotonic() >= deadline:
                result.results.append(
                    self._record(cluster, action.node, action.kind, "skipped", "request budget spent")
                )
                result.status = 503
                break
            outcome = self._execute(cluster, action, by_name, extra, deadline)
            result.results.append(outcome)
            if outcome["result"] != "success" and outcome["result"] != "dry_run":
                if outcome["result"] == "failure":
                    result.status = 500
                elif result.status == 200:
                    result.status = 503 if outcome["reason"] == "cooldown" else 200
                if action.kind == "demote":
                    # never promote while a demotion did not happen: that is how two get active
                    for rest in plan.actions[plan.actions.index(action) + 1 :]:
                        if rest.kind == "promote":
                            result.results.append(
                                self._record(
                                    cluster,
                                    rest.node,
                                    "promote",
                                    "skipped",
                                    f"demotion of {action.node} did not happen",
                                )
                            )
                    break
        return result

    def _record(self, cluster: str, node: str, action: str, outcome: str, reason: str = "") -> dict[str, Any]:
        self.metrics.actions.labels(cluster, node, action, outcome).inc()
        entry = {"time": time.time(), "node": node, "action": action, "result": outcome, "reason": reason}
        self.runtimes[cluster].recent.append(entry)
        log.info("cluster %s: %s %s -> %s %s", cluster, action, node, outcome, reason)
        return entry

    def _circuit_allows(self, cluster: str) -> bool:
        rt = self.runtimes[cluster]
        now = time.monotonic()
        window = self.cfg.policy.circuit_window_seconds
        while rt.action_times and now - rt.action_times[0] > window:
            rt.action_times.popleft()
        if len(rt.action_times) >= self.cfg.policy.circuit_max_actions:
            rt.circuit_open_until = now + window
            log.warning(
                "cluster %s: circuit breaker opened after %d actions in %gs", cluster, len(rt.action_times), window
            )
            return False
        return True

    def _execute(
        self,
        cluster: str,
        action: Action,
        obs: dict[str, NodeObservation],
        extra: dict[str, dict[str, Any]],
        deadline: float,
    ) -> dict[str, Any]:
        rt = self.runtimes[cluster]
        node = action.node
        since = time.monotonic() - rt.last_action_at.get(node, float("-inf"))
        if since < self.cfg.policy.cooldown_seconds:
            return self._record(cluster, node, action.kind, "skipped", "cooldown")
        if self.cfg.dry_run:
            return self._record(cluster, node, action.kind, "dry_run", "dry-run mode")
        if not self._circuit_allows(cluster):
            return self._record(cluster, node, action.kind, "skipped", "circuit open")
        rt.action_times.append(time.monotonic())
        rt.last_action_at[node] = time.monotonic()
        driver = self.drivers[(cluster, node)]
        client = self.clients[(cluster, node)]
        passive = action.kind == "demote"
        try:
            if action.kind == "promote":
                self._verify_others_passive(cluster, node, deadline)
            driver.set_passive(passive, deadline)
            if client.get_maxscale(deadline)["parameters"].get("passive") is not passive:
                raise DriverError("MaxScale did not report the new mode after the change")
        except (DriverError, MaxScaleError) as exc:
            return self._record(cluster, node, action.kind, "failure", str(exc)[:300])
        outcome = self._record(cluster, node, action.kind, "success")
        if action.release_locks:
            for monitor in extra[node].get("monitors_with_locks", []):
                try:
                    released = driver.release_locks(monitor, deadline)
                    self._record(cluster, node, "release_locks", "success", f"{monitor}: {released}")
                except DriverError as exc:
                    self._record(cluster, node, "release_locks", "failure", f"{monitor}: {exc}"[:300])
        return outcome

    def _verify_others_passive(self, cluster: str, keep: str, deadline: float) -> None:
        """Right before a promotion: every other node passive now, or down past the grace."""
        grace = self.cfg.policy.unreachable_grace_seconds
        rt = self.runtimes[cluster]
        for node in self.cfg.clusters[cluster].nodes:
            if node.name == keep:
                continue
            try:
                passive = self.clients[(cluster, node.name)].get_maxscale(deadline)["parameters"].get("passive")
            except MaxScaleError as exc:
                down_for = time.monotonic() - rt.unreachable_since.setdefault(node.name, time.monotonic())
                if down_for >= grace:
                    continue
                raise DriverError(f"not promoting: {node.name} unreachable ({exc})") from exc
            if passive is not True:
                raise DriverError(f"not promoting: {node.name} is not passive")

    def _audit(self, result: ReconcileResult, triggers: list[dict[str, Any]]) -> None:
        self.audit.write(
            {
                "time": time.time(),
                "cluster": result.cluster,
                "triggers": triggers,
                "shared": result.shared,
                "observed": result.observations,
                "plan": result.plan,
                "results": result.results,
                "status": result.status,
                "dry_run": self.cfg.dry_run,
            }
        )

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        out: dict[str, Any] = {"dry_run": self.cfg.dry_run, "clusters": {}}
        for name, rt in self.runtimes.items():
            last = rt.last
            out["clusters"][name] = {
                "nodes": [n.name for n in self.cfg.clusters[name].nodes],
                "circuit": {
                    "open": rt.circuit_open_until > now,
                    "open_for_seconds": max(0.0, rt.circuit_open_until - now),
                    "actions_in_window": len(rt.action_times),
                    "max_actions": self.cfg.policy.circuit_max_actions,
                    "window_seconds": self.cfg.policy.circuit_window_seconds,
                },
                "last_observed": last.observations if last else None,
                "last_plan": last.plan if last else None,
                "last_reconcile_at": last.time if last else None,
                "recent_actions": list(rt.recent),
            }
        return out

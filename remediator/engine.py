"""Reconcile one cluster: observe -> decide -> act, then record.

- observe (``observation``): every node's /state and MaxScale, read side by side;
- decide: ``mxha.policy.plan_actions`` plans, ``guards.decide`` admits the whole correction or
  refuses it (both pure; this module gathers their facts, with replicas under the cluster's lock);
- act (``correction``): demotions, then each promotion or release only after a fresh read still
  asks for it; the audit record (``audit``), ``/status`` and ``/guardrails`` (``views``).

One reconcile at a time per cluster (deliveries that waited for the lock share a reconcile that
started after they arrived). Alerts are only triggers: nothing here reads an address from them.
Every read shares the reconcile's deadline (``limits.request_budget_seconds``): a peer that drips
or hangs cannot hold the cluster's lock past it.

Two kinds of time. What the decision rests on is read from the clocks the ``Reconciler`` is given
(``clock`` for cooldowns, the breaker, streaks, back-offs and unsettled writes; ``wall_clock`` for
what is compared with other processes' wall-clock times: a hook's release, peer replicas' facts,
the records), so a test drives them without sleeping. A request's deadline is real time
(``time.monotonic``, as the caller set it): it bounds real reads and writes, which a test's
clock standing still must never stretch.

While a node is in a "no answer" streak, or was counted down, the cluster is probed every
``probe_seconds`` without waiting for Alertmanager, so a grace ends when it should and a node
that comes back active after being counted down is demoted at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mxha.policy import NodeObservation, Plan, plan_actions
from mxha.remediator.audit import AuditLog
from mxha.remediator.config import NodeSettings, RemediatorConfig
from mxha.remediator.correction import Corrector, recorded_kind
from mxha.remediator.drivers import Driver, make_driver
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
from mxha.remediator.metrics import Metrics
from mxha.remediator.observation import Observer
from mxha.remediator.rechecks import RecheckQueue
from mxha.remediator.replicas import Coordinator, LeaseLost, Refusal
from mxha.remediator.runtime import UNDECIDED, ClusterRuntime, DecisionRecord, ReconcileResult
from mxha.remediator.views import Views
from mxha.remediator_model import AuditRecord, Guardrails, NodeReading, RemediatorStatus

log = logging.getLogger("mxha.remediator")
WOULD_CORRECT = "would-correct"  # a dry run's verdict for a plan it would have carried out (runtime.VERDICTS)


class _TakeLease:
    """What ``_decide_and_act`` asks for first with replicas: take the cluster's lock, read again,
    decide again."""


TAKE_LEASE = _TakeLease()


class Reconciler:
    """Reconcile each configured cluster: observe (``observation.Observer``), decide (``mxha.policy``
    and ``guards``), act (``correction.Corrector``); what it shows is ``views.Views``. They share the
    clusters' ``ClusterRuntime`` and the clocks, passed to each."""

    def __init__(
        self,
        cfg: RemediatorConfig,
        *,
        driver_factory: Callable[[NodeSettings], Driver] = make_driver,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.wall_clock = wall_clock
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
        clients = {(c, n.name): n.maxscale.client(keep_alive=True) for c, cl in cfg.clusters.items() for n in cl.nodes}
        self.observer = Observer(cfg, self.runtimes, clients, clock=clock, wall_clock=wall_clock)
        self.corrector = Corrector(
            cfg,
            self.runtimes,
            clients,
            self.drivers,
            self.metrics,
            clock=clock,
            wall_clock=wall_clock,
            observe=lambda cluster, deadline: self.observer.observe(cluster, deadline, evidence=True),
            plan=self._plan,
            fence=self._fence,
        )
        self.views = Views(
            cfg,
            self.runtimes,
            self.coordinator,
            clock=clock,
            wall_clock=wall_clock,
            backoff_left=self.observer.backoff_left,
        )
        self._closed = False
        # rechecks side by side across clusters, as each cluster's reconcile is its own
        self.rechecks = RecheckQueue(self._recheck, workers=max(2, len(cfg.clusters)))

    @property
    def replica_id(self) -> str | None:
        return self.views.replica_id

    def observe(self, cluster: str, deadline: float, *, evidence: bool = False) -> list[NodeReading]:
        """Every node of the cluster read now (``Observer.observe``): a peer replica's
        ``/guardrails?observe=`` asks for one, as evidence of nothing but who answered."""
        return self.observer.observe(cluster, deadline, evidence=evidence)

    def status(self) -> RemediatorStatus:
        return self.views.status()

    def guardrails(self) -> Guardrails:
        return self.views.guardrails()

    # -- the reconcile --------------------------------------------------------------------
    def reconcile(
        self, cluster: str, triggers: list[dict[str, Any]], arrived: float, deadline: float
    ) -> ReconcileResult:
        rt = self.runtimes[cluster]
        remaining = deadline - time.monotonic()
        if not rt.lock.acquire(timeout=max(0.0, remaining)):
            plan = Plan("busy", "another reconcile of this cluster held the lock past the request budget", retry=True)
            return ReconcileResult(
                cluster, time.monotonic(), self.wall_clock(), [], DecisionRecord.of(plan), status=503
            )
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
            if not probe or result.results or previous is None or previous.plan.verdict != result.plan.verdict:
                self._audit(result, triggers)  # probes are audited only when something changed
            watching = bool(rt.streaks or rt.counted_down or self.observer.unsettled(cluster))
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
        ends) would otherwise wait that long. One pending recheck per cluster: the sooner wins."""
        if delay <= 0 or self._closed:
            return
        self.rechecks.add_after(cluster, delay)

    def _recheck(self, cluster: str) -> None:
        if self._closed:
            return
        rt = self.runtimes[cluster]
        now = time.monotonic()
        kind = "probe" if rt.streaks or rt.counted_down or rt.unsettled else "recheck"
        trigger = {"status": kind, "alertname": "", "cluster": cluster, "fingerprint": ""}
        self.reconcile(cluster, [trigger], now, now + self.cfg.request_budget_seconds)

    def close(self) -> None:
        self._closed = True
        self.rechecks.close()
        if self.coordinator is not None:
            self.coordinator.close()

    def _reconcile_locked(self, cluster: str, deadline: float) -> ReconcileResult:
        started = time.monotonic()
        # Observation may use half of what is left; the rest is kept for a whole correction.
        readings = self.observer.observe(cluster, started + (deadline - started) / 2, evidence=True)
        result = ReconcileResult(cluster, started, self.wall_clock(), [], UNDECIDED)
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
                    readings = self.observer.observe(
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
            wanted = result.plan
            result.plan = wanted.instead(
                got.reason.replace("_", "-"), f"{got.detail}: not running any of it; wanted: {wanted.reason}"
            )
            self.metrics.skipped.labels(cluster, got.reason).inc()
            for action in wanted.actions:
                kind = recorded_kind(action.kind)
                result.results.append(self.corrector.record(cluster, action.node, kind, "skipped", got.detail))
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
        result.observations = list(readings)
        result.plan = DecisionRecord.of(plan)
        if attempt:
            result.plan = result.plan.noted("decided again after the state changed mid-correction")
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
            result.plan = result.plan.instead(
                reason.replace("_", "-"), f"{reason.replace('_', ' ')}: not running any of it; wanted: {plan.reason}"
            )
            self.metrics.skipped.labels(cluster, reason).inc()
            for action in plan.actions:
                result.results.append(self.corrector.record(cluster, action.node, action.kind, "skipped", reason))
            result.status = max(result.status, status)
            return None
        if self.cfg.dry_run:
            result.plan = result.plan.instead(dry_verdict, f"dry run, nothing was sent: {plan.reason}")
            for action in plan.actions:
                result.results.append(self.corrector.would(cluster, action.node, recorded_kind(action.kind)))
            return None
        acted.update(a.node for a in plan.actions)
        try:
            return self.corrector.run(cluster, plan, readings, deadline, result)
        except LeaseLost as exc:
            detail = f"lock lost: {exc}"
            result.lock = detail
            result.status = 503
            self.metrics.skipped.labels(cluster, "lock_lost").inc()
            done = {(r["node"], r["action"]) for r in result.results}
            for action in plan.actions:
                kind = recorded_kind(action.kind)
                if (action.node, kind) not in done:
                    result.results.append(self.corrector.record(cluster, action.node, kind, "skipped", detail))
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
        watched = self.observer.unsettled(cluster) if plan.promotes else {}
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
        if result is not None:
            result.plan = result.plan.noted(*notes)
        return decision

    def _admit(self, cluster: str, plan: Plan, now: float) -> None:
        """A correction admitted whole: every action of it counts, now (and is shown to peer replicas)."""
        rt = self.runtimes[cluster]
        wall = self.wall_clock()
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
        wall = self.wall_clock()

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

    def _audit(self, result: ReconcileResult, triggers: list[dict[str, Any]]) -> None:
        self.audit.write(
            AuditRecord(
                self.wall_clock(),
                result.cluster,
                triggers,
                result.shared,
                result.observations,
                result.plan.to_json(),
                result.guard,
                result.results,
                result.status,
                self.cfg.dry_run,
                self.replica_id,
                result.lock,
            )
        )

"""The remediator's own metrics: counters of what it did, and gauges read from its clusters' state
at each scrape."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mxha.policy import REFUSAL_REASONS
from mxha.remediator.config import RemediatorConfig
from mxha.remediator.replicas import Coordinator
from mxha.remediator.runtime import ClusterRuntime

ACTIONS = ("demote", "promote", "release_locks")
# what an action attempted came to; a dry run attempts none, so it counts none (its decisions count,
# under verdict="would-correct"): a sum over the results never takes a plan for an action
RESULTS = ("success", "failure", "skipped")
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


class Metrics:
    def __init__(
        self,
        cfg: RemediatorConfig,
        runtimes: dict[str, ClusterRuntime],
        clock: Callable[[], float] = time.monotonic,
        coordinator: Coordinator | None = None,
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no _created twin series
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

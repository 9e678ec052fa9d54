"""What the remediator shows: ``/status`` (for operators) and ``/guardrails`` (for peer replicas)."""

from __future__ import annotations

from collections.abc import Callable

from mxha.remediator.config import RemediatorConfig
from mxha.remediator.replicas import Coordinator
from mxha.remediator.runtime import ClusterRuntime
from mxha.remediator_model import (
    ActionTaken,
    CircuitStatus,
    ClusterGuardrails,
    ClusterStatus,
    Guardrails,
    LockStoreStatus,
    PeerReplicaStatus,
    RemediatorStatus,
    UnsettledWriteSent,
    UnsettledWriteStatus,
)


class Views:
    """Builds the documents from the clusters' runtime state; ``backoff_left`` is the observer's."""

    def __init__(
        self,
        cfg: RemediatorConfig,
        runtimes: dict[str, ClusterRuntime],
        coordinator: Coordinator | None,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        backoff_left: Callable[[str, str, float], float],
    ) -> None:
        self.cfg = cfg
        self.runtimes = runtimes
        self.coordinator = coordinator
        self.clock = clock
        self.wall_clock = wall_clock
        self._backoff_left = backoff_left

    @property
    def replica_id(self) -> str | None:
        return self.cfg.replicas.id if self.cfg.replicas is not None else None

    def guardrails(self) -> Guardrails:
        """What peer replicas read (``GET /guardrails``): this replica's OWN recent actions per cluster,
        wall-clock, and its breaker. Never what it read from others (no echo, no double count)."""
        now = self.clock()
        wall = self.wall_clock()
        out: dict[str, ClusterGuardrails] = {}
        keep = max(self.cfg.policy.circuit_window_seconds, self.cfg.policy.cooldown_seconds)
        for name, rt in self.runtimes.items():
            open_until = rt.circuit_open_until
            out[name] = ClusterGuardrails(
                tuple(ActionTaken(n, at) for n, at in list(rt.own_actions) if wall - at <= keep),
                wall + (open_until - now) if open_until > now else None,
                dict(rt.answered_at),  # when this replica last got an answer from each MaxScale
                # mode changes it sent without an answer, which may still land (watched until then)
                tuple(UnsettledWriteSent(n, w.action, w.until_wall) for n, w in sorted(rt.unsettled.items())),
            )
        return Guardrails(self.replica_id, out)

    def status(self) -> RemediatorStatus:
        now = self.clock()
        clusters: dict[str, ClusterStatus] = {}
        for name, rt in self.runtimes.items():
            # one snapshot of each (see ClusterRuntime): a reconcile may replace them meanwhile
            last, streaks, unsettled = rt.last, rt.streaks, rt.unsettled
            lock_store = None
            if self.coordinator is not None:
                lock_store = LockStoreStatus(*self.coordinator.quorum.get(name, (False, 0, 0)))
            clusters[name] = ClusterStatus(
                nodes=[n.name for n in self.cfg.clusters[name].nodes],
                circuit=CircuitStatus(
                    open=rt.circuit_open_until > now,
                    open_for_seconds=max(0.0, rt.circuit_open_until - now),
                    actions_in_window=len(rt.action_times),
                    max_actions=self.cfg.policy.circuit_max_actions,
                    window_seconds=self.cfg.policy.circuit_window_seconds,
                ),
                mode=self.cfg.clusters[name].mode,
                refused=rt.refused,
                relock_backoff={
                    n: round(left, 3) for n in sorted(rt.released_at) if (left := self._backoff_left(name, n, now)) > 0
                },
                not_answering_for={n: round(now - s.since, 3) for n, s in sorted(streaks.items())},
                counted_down=sorted(rt.counted_down),
                unsettled_writes={
                    n: UnsettledWriteStatus(w.action, round(max(0.0, w.until - now), 3))
                    for n, w in sorted(unsettled.items())
                    if w.until > now
                },
                last_observed=last.observations if last else None,
                last_plan=last.plan.to_json() if last else None,
                last_guard=last.guard if last else None,
                last_reconcile_at=last.time if last else None,
                recent_actions=list(rt.recent),
                lock_store=lock_store,
            )
        if self.coordinator is None:
            return RemediatorStatus(self.cfg.dry_run, clusters)
        peers = {url: PeerReplicaStatus(v.ok, v.error, v.read_at) for url, v in self.coordinator.peer_views.items()}
        return RemediatorStatus(self.cfg.dry_run, clusters, self.replica_id, peers)

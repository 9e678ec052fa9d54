"""Observe: read every node of a cluster live (its /state via its exporter, its MaxScale directly),
side by side within one deadline, into one ``NodeObservation`` each.

"Down" is measured here, not trusted from memory: a node's "no answer" streak only grows while it
is observed again within about two ``probe_seconds``; a gap, or any answer, starts over. Only a
reconcile holding the cluster's lock counts a read as evidence (``evidence=True``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from mxha.failure_edges import FailureEdges
from mxha.maxscale import MaxScaleClient, MaxScaleError, MaxScaleStatus, read_status
from mxha.model import NodeState, StateFormatError
from mxha.node_observation import maxscale_answer, observe_node, released_within
from mxha.policy import NO_ANSWER, OK
from mxha.remediator.config import NodeSettings, RemediatorConfig
from mxha.remediator.runtime import ClusterRuntime, Streak, UnsettledWrite
from mxha.remediator_model import NodeReading
from mxha.transport import HttpJsonError, JsonHttpClient

log = logging.getLogger("mxha.remediator")


@dataclass(frozen=True)
class StateRead:
    """A node's /state as far as it could be read: ``status`` ok, no_answer, error or budget (not
    asked: our own time ran out)."""

    status: str
    error: str | None = None
    state: NodeState | None = None
    exporter_maxscale: str | None = None  # what its exporter says of its MaxScale: up, no_answer, error


@dataclass(frozen=True)
class MaxScaleRead:
    """A node's MaxScale read directly, as far as it could be: ``status`` as ``StateRead``'s."""

    status: str
    error: str | None = None
    error_kind: str | None = None
    status_read: MaxScaleStatus | None = None


_OVERRAN = ("budget", "read did not finish by the deadline")
_Read = TypeVar("_Read", StateRead, MaxScaleRead)


def _status_of(exc: HttpJsonError) -> str:
    if exc.kind == "budget":
        return "budget"
    return NO_ANSWER if exc.error_kind == NO_ANSWER else "error"


class Observer:
    """Reads the nodes of the configured clusters. Keeps, in each cluster's ``ClusterRuntime``, what
    its reads are evidence of: the "no answer" streaks, when each MaxScale last answered, the
    unsettled writes seen applied."""

    def __init__(
        self,
        cfg: RemediatorConfig,
        runtimes: dict[str, ClusterRuntime],
        clients: dict[tuple[str, str], MaxScaleClient],
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.cfg = cfg
        self.runtimes = runtimes
        self.clients = clients
        self.clock = clock
        self.wall_clock = wall_clock
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

    def _read_state(self, cluster: str, node: NodeSettings, deadline: float) -> StateRead:
        """The node's /state (``state``), as far as it could be read by ``deadline``."""
        limit = min(deadline, time.monotonic() + self.cfg.policy.state_timeout)
        client = self.state_clients[(cluster, node.name)]
        source = f"cluster {cluster}: {node.name}'s /state {client.shown_url}"
        try:
            if deadline - time.monotonic() <= 0.001:
                raise HttpJsonError("not asked: the request budget was spent", kind="budget", answered=False)
            state = NodeState.from_json(client.get_json(None, limit))
        except HttpJsonError as exc:
            self._failed(source, exc)
            return StateRead(_status_of(exc), str(exc)[:300])
        except StateFormatError as exc:
            self.edges.failed(source, "document", f"bad /state document: {exc}"[:300])
            return StateRead("error", f"bad /state document: {exc}"[:300])
        self.edges.ok(source)
        ms = state.maxscale
        exporter_maxscale = "up" if ms.up else (NO_ANSWER if ms.error_kind == NO_ANSWER else "error")
        return StateRead("ok", state=state, exporter_maxscale=exporter_maxscale)

    def _read_maxscale(self, cluster: str, node: NodeSettings, deadline: float) -> MaxScaleRead:
        client = self.clients[(cluster, node.name)]
        source = f"cluster {cluster}: {node.name}'s MaxScale {client.shown_url}"
        try:
            if deadline - time.monotonic() <= 0.001:
                raise MaxScaleError("not asked: the request budget was spent", kind="budget", answered=False)
            status = read_status(client, deadline, servers=True)
        except MaxScaleError as exc:
            self._failed(source, exc)
            return MaxScaleRead(_status_of(exc), str(exc)[:300], exc.error_kind)
        known = status.passive is not None
        if known:
            self.edges.ok(source)
        else:
            self.edges.failed(source, "document", "MaxScale did not say whether it is passive")
        return MaxScaleRead(
            "ok" if known else "error",
            None if known else "MaxScale did not say whether it is passive",
            status_read=status,
        )

    def _failed(self, source: str, exc: HttpJsonError) -> None:
        if exc.kind != "budget":  # not asked, our own time having run out: that says nothing of the source
            self.edges.failed(source, exc.error_kind, str(exc)[:300])

    def observe(self, cluster: str, deadline: float, *, evidence: bool = False) -> list[NodeReading]:
        """Every node of the cluster, read side by side; ends by ``deadline`` whatever the peers do.

        ``evidence``: count this read in the "no answer" streaks and settle the unsettled writes it
        sees applied. Only a reconcile holding the cluster's lock passes it; any other read (a peer
        replica's ``?observe=``) changes no decision state, only when each MaxScale last answered."""
        nodes = self.cfg.clusters[cluster].nodes
        jobs: list[tuple[NodeSettings, Future[StateRead], Future[MaxScaleRead]]] = [
            (
                n,
                self.pool.submit(self._read_state, cluster, n, deadline),
                self.pool.submit(self._read_maxscale, cluster, n, deadline),
            )
            for n in nodes
        ]
        readings = []
        for node, state_f, ms_f in jobs:
            state = self._result(state_f, deadline, StateRead(*_OVERRAN))
            ms = self._result(ms_f, deadline, MaxScaleRead(*_OVERRAN))
            readings.append(self._reading(cluster, node.name, state, ms, evidence))
        return readings

    @staticmethod
    def _result(future: Future[_Read], deadline: float, overran: _Read) -> _Read:
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()) + 0.25)
        except TimeoutError:  # only if a worker overran its own deadline: say so, decide nothing on it
            future.cancel()
            return overran

    def _reading(self, cluster: str, name: str, state: StateRead, ms: MaxScaleRead, evidence: bool) -> NodeReading:
        """Combine what the node's exporter and its MaxScale said into one observation
        (``mxha.node_observation``, the builder the notify hook uses for its peers).

        Only "no answer" counts toward down, and only when the MaxScale gives none AND its
        exporter either gives none or itself reports its MaxScale not answering.
        """
        state_doc, direct = state.state, ms.status_read
        status = maxscale_answer(direct, ms.status == NO_ANSWER, state_doc, state.status == NO_ANSWER)
        if status == OK:
            rt = self.runtimes[cluster]
            with rt.answered_lock:
                rt.answered_at = {**rt.answered_at, name: self.wall_clock()}
        down_for = self._evidence(cluster, name, status, budget_only=ms.status == "budget", record=evidence)
        if direct is not None and status == OK and evidence:
            self._settle(cluster, name, direct.passive)
        obs = replace(
            observe_node(name, state_doc, direct, maxscale=status),
            down_for=down_for,
            relock_backoff=self._in_backoff(cluster, name, state_doc),
        )
        return NodeReading(
            obs,
            state.status,
            state.error,
            state_doc.node if state_doc is not None else None,
            state.exporter_maxscale,
            ms.error,
            ms.error_kind,
            direct.monitors_with_locks if direct is not None else (),
        )

    def _settle(self, cluster: str, name: str, passive: bool | None) -> None:
        """Forget an unsettled write on ``name`` once its mode is read as the write wanted (its
        watch ending is ``unsettled``'s). Holding the cluster's lock."""
        rt = self.runtimes[cluster]
        pending = rt.unsettled.get(name)
        if pending is not None and passive is (pending.action == "demote"):
            rt.unsettled = {n: w for n, w in rt.unsettled.items() if n != name}
            log.info("cluster %s: the %s of %s sent without an answer is applied", cluster, pending.action, name)

    def unsettled(self, cluster: str) -> Mapping[str, UnsettledWrite]:
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

    def backoff_left(self, cluster: str, name: str, now: float) -> float:
        """Seconds left (0: none) of MaxScale's no-relock back-off after OUR last release on the node."""
        ours = self.runtimes[cluster].released_at.get(name)
        return 0.0 if ours is None else max(0.0, self.cfg.policy.relock_backoff_seconds - (now - ours))

    def _in_backoff(self, cluster: str, name: str, state: NodeState | None) -> bool:
        """Is the node inside MaxScale's no-relock back-off after a release we or its hooks made?"""
        if self.backoff_left(cluster, name, self.clock()) > 0:
            return True
        return released_within(state, self.cfg.policy.relock_backoff_seconds, self.wall_clock())

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

"""The remediator's documents: ONE typed model each, used by its writer and its readers.

They live in the core because more than one component reads them (the lab and the bench read the
audit trail). ``/guardrails`` is what a replica tells its peers (its own recent actions, breaker, when it last
got an answer from each MaxScale, the mode changes it sent without an answer); the audit record is
one line of the audit trail per reconcile. Readers are lenient where documents may grow or come
from another version (unknown keys ignored, a malformed entry skipped) and strict where the whole
document is not what it claims (``DocumentFormatError``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mxha.policy import NodeObservation


class DocumentFormatError(ValueError):
    """Not the document its reader asked for."""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class ActionTaken:
    node: str
    at: float  # wall-clock


@dataclass(frozen=True)
class UnsettledWriteSent:
    """A mode change sent without an answer, which may still land until ``until`` (wall-clock)."""

    node: str
    action: str  # demote or promote
    until: float


@dataclass(frozen=True)
class ClusterGuardrails:
    actions: tuple[ActionTaken, ...] = ()  # this replica's own, within the cooldown or the breaker window
    circuit_open_until: float | None = None  # wall-clock, while its breaker is open
    answered: Mapping[str, float] = field(default_factory=dict)  # node: when its MaxScale last answered (wall)
    unsettled: tuple[UnsettledWriteSent, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "actions": [{"node": a.node, "at": a.at} for a in self.actions],
            "circuit_open_until": self.circuit_open_until,
            "answered": dict(self.answered),
            "unsettled": [{"node": w.node, "action": w.action, "until": w.until} for w in self.unsettled],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ClusterGuardrails:
        actions = tuple(
            ActionTaken(a["node"], float(a["at"]))
            for a in doc.get("actions") or []
            if isinstance(a, dict) and isinstance(a.get("node"), str) and _number(a.get("at")) is not None
        )
        unsettled = tuple(
            UnsettledWriteSent(w["node"], w["action"], float(w["until"]))
            for w in doc.get("unsettled") or []
            if isinstance(w, dict)
            and isinstance(w.get("node"), str)
            and isinstance(w.get("action"), str)
            and _number(w.get("until")) is not None
        )
        answered = doc.get("answered")
        return cls(
            actions,
            _number(doc.get("circuit_open_until")),
            {n: float(at) for n, at in answered.items() if isinstance(n, str) and _number(at) is not None}
            if isinstance(answered, dict)
            else {},
            unsettled,
        )


@dataclass(frozen=True)
class Guardrails:
    """``GET /guardrails``: what one replica tells its peers, per cluster. Its OWN facts only,
    never what it read from others (no echo, no double count)."""

    replica: str | None
    clusters: Mapping[str, ClusterGuardrails] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"replica": self.replica, "clusters": {name: c.to_json() for name, c in self.clusters.items()}}

    @classmethod
    def from_json(cls, doc: Any) -> Guardrails:
        if not isinstance(doc, dict) or not isinstance(doc.get("clusters"), dict):
            raise DocumentFormatError("not a /guardrails document")
        replica = doc.get("replica")
        return cls(
            str(replica) if replica else None,
            {
                name: ClusterGuardrails.from_json(entry)
                for name, entry in doc["clusters"].items()
                if isinstance(name, str) and isinstance(entry, dict)
            },
        )


_OBSERVATION_KEYS = tuple(f.name for f in fields(NodeObservation))


@dataclass(frozen=True)
class NodeReading:
    """One node as a reconcile read it: what the policy decides on (``observation``) and how each
    source answered. Shown in ``/status`` (``last_observed``) and audited (``observed``) as one flat
    object: the observation's keys, then the reading's."""

    observation: NodeObservation
    state_status: str  # ok, no_answer, error, budget (not asked: our own time ran out)
    state_error: str | None = None
    state_node: str | None = None  # the node its /state names
    exporter_maxscale: str | None = None  # what its exporter says of its MaxScale: up, no_answer, error
    maxscale_error: str | None = None
    maxscale_error_kind: str | None = None
    monitors_with_locks: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self.observation),
            "state_status": self.state_status,
            "state_error": self.state_error,
            "state_node": self.state_node,
            "exporter_maxscale": self.exporter_maxscale,
            "maxscale_error": self.maxscale_error,
            "maxscale_error_kind": self.maxscale_error_kind,
            "monitors_with_locks": list(self.monitors_with_locks),
        }

    @classmethod
    def from_json(cls, doc: Any) -> NodeReading:
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("name"), str)
            or not isinstance(doc.get("state_status"), str)
        ):
            raise DocumentFormatError("not a node reading")
        try:
            observation = NodeObservation(**{k: doc[k] for k in _OBSERVATION_KEYS if k in doc})
        except TypeError as exc:  # one of the observation's keys missing
            raise DocumentFormatError(f"not a node reading: {exc}"[:200]) from None
        monitors = doc.get("monitors_with_locks")
        return cls(
            observation,
            doc["state_status"],
            doc.get("state_error"),
            doc.get("state_node"),
            doc.get("exporter_maxscale"),
            doc.get("maxscale_error"),
            doc.get("maxscale_error_kind"),
            tuple(m for m in monitors if isinstance(m, str)) if isinstance(monitors, list) else (),
        )


def _readings(docs: Any) -> list[NodeReading]:
    """The node readings of a list, those that are not one skipped (a reader of another version's
    documents keeps what it can use)."""
    out = []
    for doc in docs if isinstance(docs, list) else []:
        try:
            out.append(NodeReading.from_json(doc))
        except DocumentFormatError:
            continue
    return out


@dataclass(frozen=True)
class AuditRecord:
    """One line of the audit trail: one reconcile (or a delivery that shared one), whole."""

    time: float  # wall-clock, when it was written
    cluster: str
    triggers: list[dict[str, Any]]  # the alerts (or the recheck/probe) that asked for it
    shared: bool  # a delivery answered by a reconcile that started after it arrived
    observed: list[NodeReading]  # every node as read
    plan: dict[str, Any]  # the decision: verdict, reason, keep, actions, notes, ...
    guard: str | None  # the guard that refused the correction, if one did
    results: list[dict[str, Any]]  # each action: node, action, result, reason, time
    status: int  # the HTTP status the webhook answered
    dry_run: bool
    replica: str | None
    lock: str | None  # replicas: how the cluster's lock was held, or why it was not

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "cluster": self.cluster,
            "triggers": self.triggers,
            "shared": self.shared,
            "observed": [r.to_json() for r in self.observed],
            "plan": self.plan,
            "guard": self.guard,
            "results": self.results,
            "status": self.status,
            "dry_run": self.dry_run,
            "replica": self.replica,
            "lock": self.lock,
        }

    def to_line(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, default=str) + "\n"

    @classmethod
    def from_json(cls, doc: Any) -> AuditRecord:
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("cluster"), str)
            or not isinstance(doc.get("plan"), dict)
        ):
            raise DocumentFormatError("not an audit record")
        return cls(
            float(doc.get("time") or 0.0),
            doc["cluster"],
            list(doc.get("triggers") or []),
            bool(doc.get("shared")),
            _readings(doc.get("observed")),
            doc["plan"],
            doc.get("guard"),
            list(doc.get("results") or []),
            int(doc.get("status") or 0),
            bool(doc.get("dry_run")),
            doc.get("replica"),
            doc.get("lock"),
        )

    @classmethod
    def read_lines(cls, text: str) -> list[AuditRecord]:
        """Every record of an audit trail's text (a line cut short by a crash is skipped)."""
        out = []
        for line in text.splitlines():
            try:
                out.append(cls.from_json(json.loads(line)))
            except (ValueError, DocumentFormatError):
                continue
        return out


@dataclass(frozen=True)
class CircuitStatus:
    open: bool
    open_for_seconds: float
    actions_in_window: int
    max_actions: int
    window_seconds: float


@dataclass(frozen=True)
class UnsettledWriteStatus:
    action: str
    watched_for_seconds: float


@dataclass(frozen=True)
class LockStoreStatus:
    quorum: bool
    answering: int
    servers: int


@dataclass(frozen=True)
class ClusterStatus:
    """One cluster in ``GET /status``."""

    nodes: list[str]
    circuit: CircuitStatus
    mode: str
    refused: str | None  # the last reconcile's refusal reason
    relock_backoff: dict[str, float]  # node: seconds left of MaxScale's no-relock back-off after our release
    not_answering_for: dict[str, float]  # node: seconds of its "no answer" streak
    counted_down: list[str]
    unsettled_writes: dict[str, UnsettledWriteStatus]
    last_observed: list[NodeReading] | None
    last_plan: dict[str, Any] | None
    last_guard: str | None
    last_reconcile_at: float | None
    recent_actions: list[dict[str, Any]]
    lock_store: LockStoreStatus | None = None  # replicas only

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        if self.last_observed is not None:
            doc["last_observed"] = [r.to_json() for r in self.last_observed]
        if self.lock_store is None:
            del doc["lock_store"]
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> ClusterStatus:
        try:
            lock_store = doc.get("lock_store")
            return cls(
                list(doc["nodes"]),
                CircuitStatus(**doc["circuit"]),
                doc["mode"],
                doc.get("refused"),
                dict(doc["relock_backoff"]),
                dict(doc["not_answering_for"]),
                list(doc["counted_down"]),
                {n: UnsettledWriteStatus(**w) for n, w in doc["unsettled_writes"].items()},
                _readings(doc["last_observed"]) if doc.get("last_observed") is not None else None,
                doc.get("last_plan"),
                doc.get("last_guard"),
                doc.get("last_reconcile_at"),
                list(doc["recent_actions"]),
                LockStoreStatus(**lock_store) if lock_store is not None else None,
            )
        except (AttributeError, KeyError, TypeError) as exc:
            raise DocumentFormatError(f"not a /status cluster: {exc!r}"[:200]) from None


@dataclass(frozen=True)
class PeerReplicaStatus:
    readable: bool
    error: str | None
    read_at: float | None


@dataclass(frozen=True)
class RemediatorStatus:
    """``GET /status``: what the remediator knows and last did, per cluster; with replicas, its id,
    how its peers' /guardrails were last read, and each cluster's lock store."""

    dry_run: bool
    clusters: dict[str, ClusterStatus]
    replica: str | None = None  # replicas only
    peers: dict[str, PeerReplicaStatus] | None = None  # replicas only

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"dry_run": self.dry_run, "clusters": {n: c.to_json() for n, c in self.clusters.items()}}
        if self.peers is not None:
            doc["replica"] = self.replica
            doc["peers"] = {url: asdict(p) for url, p in self.peers.items()}
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> RemediatorStatus:
        if not isinstance(doc, dict) or not isinstance(doc.get("clusters"), dict):
            raise DocumentFormatError("not a /status document")
        peers = doc.get("peers")
        try:
            read_peers = {url: PeerReplicaStatus(**p) for url, p in peers.items()} if peers is not None else None
        except (AttributeError, TypeError) as exc:
            raise DocumentFormatError(f"not a /status document: {exc!r}"[:200]) from None
        return cls(
            bool(doc.get("dry_run")),
            {name: ClusterStatus.from_json(c) for name, c in doc["clusters"].items()},
            doc.get("replica"),
            read_peers,
        )

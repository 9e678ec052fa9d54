"""One cluster's decision state and one reconcile's result, as the remediator keeps them."""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mxha.policy import Action, Plan
from mxha.remediator.replicas import Lease
from mxha.remediator_model import NodeReading

# Every verdict a reconcile can end with: the policy's plan, then what the engine made of it.
VERDICTS = (
    "ok",
    "corrected",
    "no-candidate",
    "refused",
    "waiting",  # mxha.policy.Plan's own
    "would-correct",  # a dry run's "corrected": nothing was sent
    "busy",  # another reconcile of the cluster held its lock past the request budget
    "cooldown",
    "circuit-open",
    "unsettled-write",
    "peer-sees-node",  # a guard refused the whole correction (guards.decide)
    "lock-busy",
    "lock-unavailable",  # replicas: the cluster's lock could not be taken
)


@dataclass(frozen=True)
class DecisionRecord:
    """A reconcile's decision as it is answered, shown and audited: the policy's ``Plan``, then,
    replaced whole (never edited in place), what the engine made of it."""

    verdict: str  # one of VERDICTS
    reason: str
    keep: str | None = None
    actions: tuple[Action, ...] = ()
    retry: bool = False
    notes: tuple[str, ...] = ()
    refusal: str | None = None  # the policy's refusal reason (mxha.policy.REFUSAL_REASONS)
    over_down: tuple[str, ...] = ()

    @classmethod
    def of(cls, plan: Plan) -> DecisionRecord:
        return cls(
            plan.verdict, plan.reason, plan.keep, plan.actions, plan.retry, plan.notes, plan.refusal, plan.over_down
        )

    def noted(self, *notes: str) -> DecisionRecord:
        return replace(self, notes=(*self.notes, *notes)) if notes else self

    def instead(self, verdict: str, reason: str) -> DecisionRecord:
        """Not run as planned: the verdict says what happened instead, the reason keeps what was wanted."""
        return replace(self, verdict=verdict, reason=reason)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["actions"] = list(doc["actions"])
        return doc


UNDECIDED = DecisionRecord("busy", "not decided yet")  # replaced before anyone reads it


@dataclass
class ReconcileResult:
    cluster: str
    started_mono: float
    time: float
    observations: list[NodeReading]  # every node as read by the decision that stands
    plan: DecisionRecord
    results: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    shared: bool = False
    guard: str | None = None  # the guard that refused the correction, if one did
    lock: str | None = None  # replicas: how the cluster's lock was held, or why it was not

    def summary(self) -> dict[str, Any]:
        return {
            "verdict": self.plan.verdict,
            "reason": self.plan.reason,
            "keep": self.plan.keep,
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
    ``/status``, ``/guardrails`` and the rechecks read them without that lock (a peer replica
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

"""The guardrails' decision, pure: may a planned correction run now, whole, or why not.

A function of the plan, this replica's own guard memory, what peer replicas said (gathered
beforehand and put on this replica's clock), the settings and ``now``: no I/O, no clock of its
own. The engine gathers the facts, asks ONCE per correction (a demotion and its promotion pass or
fail together), and carries out what was decided: it counts an admitted correction's actions, opens
the breaker a refusal asks to open, and records the refusal's reason.

In order: a promotion while a promotion of another node, sent without an answer, may still land
(``unsettled_write``); a promotion over a node counted down that a peer replica got an answer
from within the grace (``peer_sees_node``); then, unless the correction is a rescue (a promotion
into a cluster with no active MaxScale: holding it back would leave none active), the cooldown per
node and the circuit breaker, both counting every replica's actions. A dry run is never counted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from mxha.policy import NodeObservation, Plan


@dataclass(frozen=True)
class GuardSettings:
    cooldown_seconds: float
    circuit_window_seconds: float
    circuit_max_actions: int
    unreachable_grace_seconds: float
    dry_run: bool = False


@dataclass(frozen=True)
class GuardMemory:
    """This replica's own guard state, on its clock."""

    last_action_at: Mapping[str, float] = field(default_factory=dict)  # by node
    action_times: tuple[float, ...] = ()  # every action it counted
    circuit_open_until: float = float("-inf")
    unsettled_promotions: Collection[str] = frozenset()  # promotions it sent without an answer, still watched


@dataclass(frozen=True)
class PeerGuardFacts:
    """What peer replicas said just now, on THIS replica's clock (the engine converts their
    wall-clock times when it gathers them)."""

    last_action_at: Mapping[str, float] = field(default_factory=dict)  # by node: the latest of any peer
    action_times: tuple[float, ...] = ()
    circuit_open_until: float = float("-inf")
    answered_at: Mapping[str, tuple[float, str]] = field(default_factory=dict)  # node: (when, replica)
    unsettled_promotions: Mapping[str, str] = field(default_factory=dict)  # node: the replica that sent it


@dataclass(frozen=True)
class Admit:
    """Run the whole correction. ``count``: its actions count toward the cooldown and the breaker
    (not in a dry run, which sends nothing)."""

    count: bool = True


@dataclass(frozen=True)
class Refuse:
    """Run none of it, for ``reason`` (a ``SKIP_REASONS`` value), answering ``status``."""

    reason: str
    status: int
    notes: tuple[str, ...] = ()  # why, for the plan's notes
    open_circuit_until: float | None = None  # the breaker opens now, until then
    opened: str | None = None  # the breaker's opening, in a line for the log


Decision = Admit | Refuse


def needs_lease(plan: Plan, *, replicas: bool, lease_held: bool, dry_run: bool) -> bool:
    """Replicas: a correction is decided from a read made while holding the cluster's lock, never
    from one made before another replica's correction (a dry run sends nothing, so takes none)."""
    return bool(plan.actions) and replicas and not lease_held and not dry_run


def is_rescue(plan: Plan, nodes: list[NodeObservation]) -> bool:
    """Only promotions, into a cluster where no MaxScale is active."""
    return all(a.kind == "promote" for a in plan.actions) and not any(n.is_active for n in nodes)


def decide(
    plan: Plan,
    memory: GuardMemory,
    peers: PeerGuardFacts,
    settings: GuardSettings,
    now: float,
    *,
    exempt: Collection[str] = (),
    rescue: bool = False,
) -> Decision:
    """Admit ``plan``'s correction whole, or refuse all of it with the reason.

    ``exempt``: nodes this same reconcile already acted on (its second decision finishes the first
    correction; the cooldown is for corrections, not for the halves of one)."""
    promoted = {a.node for a in plan.actions if a.kind == "promote"}
    if promoted:
        # a promotion sent to another node without an answer may still land: promoting now could
        # leave two active (MaxScale's REST API has no fencing token to stop the late one)
        pending = {n: "by this replica" for n in memory.unsettled_promotions}
        for node, replica in peers.unsettled_promotions.items():
            pending.setdefault(node, f"by peer replica {replica}")
        others = sorted(n for n in pending if n not in promoted)
        if others:
            note = "; ".join(f"a promotion of {n} sent {pending[n]} got no answer and may still land" for n in others)
            return Refuse("unsettled_write", 503, (note,))
    for node in plan.over_down:
        # our silence is not theirs: a node a peer replica got an answer from within the grace is
        # not down, and promoting over it would leave two active (views differ, e.g. a partition
        # between this replica and that node)
        seen = peers.answered_at.get(node)
        if seen is not None and now - seen[0] < settings.unreachable_grace_seconds:
            return Refuse(
                "peer_sees_node", 503, (f"peer replica {seen[1]} got an answer from {node} {now - seen[0]:.1f}s ago",)
            )
    if rescue and not settings.dry_run:
        return Admit()
    for action in plan.actions:
        if action.node in exempt:
            continue
        last = max(
            memory.last_action_at.get(action.node, float("-inf")), peers.last_action_at.get(action.node, float("-inf"))
        )
        if now - last < settings.cooldown_seconds:
            return Refuse("cooldown", 503)
    if settings.dry_run:
        return Admit(count=False)
    window = settings.circuit_window_seconds
    ours = sum(1 for t in memory.action_times if now - t <= window)
    theirs = sum(1 for t in peers.action_times if now - t <= window)
    if max(memory.circuit_open_until, peers.circuit_open_until) > now:
        return Refuse("circuit_open", 200)
    if ours + theirs + len(plan.actions) > settings.circuit_max_actions:
        opened = (
            f"circuit breaker opened: {ours + theirs} actions in {window:g}s ({theirs} by peer replicas), "
            f"and this correction needs {len(plan.actions)} more"
        )
        return Refuse("circuit_open", 200, open_circuit_until=now + window, opened=opened)
    return Admit()

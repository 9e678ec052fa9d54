"""The remediation policy: node observations in, an ordered action plan out. Pure.

Decision table (the README carries the same table):

| situation                                                        | plan                                   |
|------------------------------------------------------------------|----------------------------------------|
| any node has MaxScale config sync on                             | nothing; refused (passive would spread) |
| no node holds the VIP as VRRP MASTER with a passing check        | nothing at all (not even demotions)    |
| one such candidate                                               | keep it                                |
| several candidates (split brain)                                 | keep the highest effective priority,   |
|                                                                  | then the smallest node name            |
| a reachable node other than the kept one is active               | demote it (release locks if in use)    |
| the kept node is passive, every other node verified passive      | promote it, after the demotions        |
|   or down for longer than the grace                              |                                        |
| the kept node is passive, another node unreachable within grace  | no promotion yet; retry later          |
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeObservation:
    """What the remediator saw of one node, read live just now."""

    name: str
    vrrp_state: str | None  # governing instance state from the exporter; None when unknown
    priority: int | None
    holds_vip: bool | None  # per the kernel, via the exporter
    check_ok: bool | None
    maxscale_up: bool  # MaxScale's REST API answered the remediator
    passive: bool | None  # read from MaxScale itself; None when unknown
    locks: str | None = None  # cooperative_monitoring_locks mode, "none" when off
    config_sync: bool | None = None
    unreachable_for: float | None = None  # seconds MaxScale has not answered, if it does not now

    @property
    def is_candidate(self) -> bool:
        return (
            self.holds_vip is True
            and self.vrrp_state == "MASTER"
            and self.check_ok is True
            and self.maxscale_up
            and self.passive is not None
        )

    @property
    def is_active(self) -> bool:
        return self.maxscale_up and self.passive is False


@dataclass(frozen=True)
class Action:
    node: str
    kind: str  # "demote" or "promote"
    release_locks: bool = False


@dataclass(frozen=True)
class Plan:
    verdict: str  # ok, corrected, no-candidate, refused, waiting
    reason: str
    keep: str | None = None
    actions: tuple[Action, ...] = ()
    retry: bool = False  # a later attempt could do what this one could not
    notes: tuple[str, ...] = field(default=())


def choose_keeper(candidates: list[NodeObservation]) -> NodeObservation:
    """Highest effective priority, then the smallest name: deterministic on every replica."""
    return sorted(candidates, key=lambda n: (-(n.priority if n.priority is not None else -1), n.name))[0]


def plan_actions(nodes: list[NodeObservation], unreachable_grace: float) -> Plan:
    """Decide what to do so that exactly one MaxScale is active, demoting before promoting."""
    synced = [n.name for n in nodes if n.config_sync]
    if synced:
        return Plan(
            "refused",
            f"config sync is on ({', '.join(sorted(synced))}): setting passive on one node "
            "could reach every node; not acting",
        )
    candidates = [n for n in nodes if n.is_candidate]
    if not candidates:
        active = sorted(n.name for n in nodes if n.is_active)
        return Plan(
            "no-candidate",
            "no node holds the VIP as VRRP MASTER with a passing check; changing nothing"
            + (f" (active now: {', '.join(active)})" if active else ""),
        )
    keep = choose_keeper(candidates)
    notes: list[str] = []
    if len(candidates) > 1:
        notes.append(
            f"{len(candidates)} candidates ({', '.join(sorted(c.name for c in candidates))}): "
            f"keeping {keep.name} (priority {keep.priority})"
        )
    actions: list[Action] = []
    blocked: list[str] = []
    for node in sorted(nodes, key=lambda n: n.name):
        if node.name == keep.name:
            continue
        if node.is_active:
            actions.append(Action(node.name, "demote", release_locks=(node.locks or "none") != "none"))
        elif not node.maxscale_up:
            down_for = node.unreachable_for or 0.0
            if down_for < unreachable_grace:
                blocked.append(f"{node.name} unreachable for {down_for:.1f}s (grace {unreachable_grace:g}s)")
            else:
                notes.append(f"{node.name} counted as down: unreachable for {down_for:.1f}s")
        elif node.passive is None:
            blocked.append(f"{node.name} mode unknown")
    if keep.passive is True:
        if blocked:
            return Plan(
                "waiting",
                "not promoting " + keep.name + ": " + "; ".join(blocked),
                keep.name,
                tuple(actions),
                retry=True,
                notes=tuple(notes),
            )
        actions.append(Action(keep.name, "promote"))
    if not actions:
        return Plan("ok", f"{keep.name} is the one active MaxScale", keep.name, notes=tuple(notes))
    return Plan(
        "corrected",
        f"keep {keep.name} active: " + ", ".join(f"{a.kind} {a.node}" for a in actions),
        keep.name,
        tuple(actions),
        notes=tuple(notes),
    )

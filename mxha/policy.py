"""The remediation policy: node observations in, an ordered plan out. Pure (no I/O, no clock).

It lives in the core because more than one component asks it what the cluster should look like
(the remediator; the peer-aware notify). docs/remediator.md carries the decision table, by mode:
``passive`` (exactly one MaxScale active: the one on the VIP holder) and ``locks`` (every
MaxScale active; the VIP holder should hold the cooperative locks). In both, where locks are in
use, they are moved to the keeper by ``release-locks`` on the ONE other node holding them, only
when the keeper can take them (a majority of servers Running, not inside its no-relock back-off).

"Down" is decided by the caller, which measures how long a node has CONTINUOUSLY given no
answer (``down_for``); an answer that cannot be used is never "down", only "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mxha.transport import NO_ANSWER as NO_ANSWER  # the transport's word, the policy's too

# What the caller learnt of a node's MaxScale: its mode was read ("ok"), nothing answered
# ("no_answer": the only state that may ever count toward down), or it answered with something
# unusable, or could not be asked ("unknown": mode unknown, blocks every promotion).
OK = "ok"
UNKNOWN = "unknown"

REFUSAL_REASONS = ("node_identity", "config_sync", "priority_tie", "mode")


@dataclass(frozen=True)
class NodeObservation:
    """What was seen of one node, read live just now."""

    name: str
    vrrp_state: str | None  # governing instance state from the node's /state; None when unknown
    priority: int | None  # its effective priority
    holds_vip: bool | None  # per the kernel, via the node's /state
    check_ok: bool | None
    maxscale: str = UNKNOWN  # OK, NO_ANSWER or UNKNOWN
    passive: bool | None = None  # read from MaxScale itself; None unless maxscale == OK
    locks: str | None = None  # cooperative_monitoring_locks mode, "none" when off
    config_sync: bool | None = None
    down_for: float | None = None  # seconds of continuous "no answer" evidence, when maxscale == NO_ANSWER
    identity_ok: bool = True  # False when its /state names another node
    mode: str | None = None  # its node config's coordination mode, from its /state (None: not read)
    # its MaxScale's database view (``mxha.maxscale.DatabaseFacts``); None where it cannot say
    lock_primary: bool | None = None
    sees_primary: bool | None = None
    reaches_majority: bool | None = None
    # inside MaxScale's one-minute no-relock back-off after a release (the caller's memory of the
    # releases it and the hooks made: MaxScale does not show it)
    relock_backoff: bool = False

    @property
    def mode_known(self) -> bool:
        return self.maxscale == OK and self.passive is not None

    @property
    def is_candidate(self) -> bool:
        return self.holds_vip is True and self.vrrp_state == "MASTER" and self.check_ok is True and self.mode_known

    @property
    def is_active(self) -> bool:
        return self.maxscale == OK and self.passive is False

    def counted_down(self, grace: float) -> bool:
        return self.maxscale == NO_ANSWER and self.down_for is not None and self.down_for >= grace


@dataclass(frozen=True)
class Action:
    node: str
    kind: str  # "demote", "promote", or "release" (release-locks only, no mode change)
    release_locks: bool = False  # a demotion that also releases the locks this node holds


@dataclass(frozen=True)
class Plan:
    verdict: str  # ok, corrected, no-candidate, refused, waiting
    reason: str
    keep: str | None = None
    actions: tuple[Action, ...] = ()
    retry: bool = False  # a later attempt could do what this one could not
    notes: tuple[str, ...] = field(default=())
    refusal: str | None = None  # one of REFUSAL_REASONS when verdict == "refused"
    over_down: tuple[str, ...] = ()  # nodes a promotion in this plan counts as down (the trade-off)

    @property
    def promotes(self) -> bool:
        return any(a.kind == "promote" for a in self.actions)


def _rank(n: NodeObservation) -> tuple[int, str]:
    return (-(n.priority if n.priority is not None else -1), n.name)


def _keeper_rank(n: NodeObservation) -> tuple[int, int]:
    # a candidate whose MaxScale is known NOT to see the primary server Running ranks after every
    # other (unknown counts as seeing it: the hooks do not read their own servers)
    return (1 if n.sees_primary is False else 0, -(n.priority if n.priority is not None else -1))


def choose_keeper(candidates: list[NodeObservation]) -> NodeObservation | None:
    """The candidate that sees the primary server, then the highest effective priority; None
    when the best rank is shared.

    VRRP itself breaks a priority tie by the higher primary IP address, which the remediator
    does not know for certain (``mcast_src_ip``/``unicast_src_ip`` override it): guessing could
    keep the node VRRP demotes once the partition heals, and keepalived runs no notify on the
    survivor. So a tie is refused, loudly, instead of broken.
    """
    best = best_ranked(candidates)
    return best[0] if len(best) == 1 else None


def best_ranked(candidates: list[NodeObservation]) -> list[NodeObservation]:
    """The candidates sharing the best keeper rank, by name (one: the keeper; more: a tie)."""
    top = min(_keeper_rank(n) for n in candidates)
    return sorted((n for n in candidates if _keeper_rank(n) == top), key=lambda n: n.name)


def _tie_refusal(candidates: list[NodeObservation]) -> Plan:
    """The refusal of a tie, naming the tied candidates (both modes)."""
    tied = best_ranked(candidates)
    among = " of those that may see the primary" if any(c.sees_primary is False for c in candidates) else ""
    return Plan(
        "refused",
        f"candidates {', '.join(c.name for c in tied)} share the highest VRRP priority {tied[0].priority}{among}: "
        "give the nodes different priorities; not choosing",
        refusal="priority_tie",
    )


def mode_contradictions(nodes: list[NodeObservation], mode: str) -> list[str]:
    """What the nodes report that contradicts the cluster's configured ``mode`` (empty: none).

    ``passive``: a node config says ``mode: locks``. ``locks``: a node config says otherwise, or a
    MaxScale that was read has cooperative locks off, or is passive (it could not fail over)."""
    out = []
    for n in sorted(nodes, key=lambda n: n.name):
        if n.mode is not None and n.mode != mode:
            out.append(f"{n.name}'s node config says mode: {n.mode}")
        if mode == "locks" and n.maxscale == OK:
            if n.locks in (None, "none"):
                out.append(f"{n.name}'s MaxScale has cooperative_monitoring_locks off")
            if n.passive is True:
                out.append(f"{n.name}'s MaxScale is passive")
    return out


def cannot_take_locks(n: NodeObservation) -> str | None:
    """THE rule for whether a node could take the cooperative locks if they were released now
    (None: it could; else why not, as a predicate of the node). Asked by the remediator of its
    keeper and by ``mxha notify`` of its peers before it releases the locks.

    It must hold its VIP as VRRP MASTER (the locks belong with the VIP: at keepalived's start both
    nodes are BACKUP and nobody should get them), its MaxScale must see a majority of the servers
    Running (it could lock them), and it must not be inside MaxScale's no-relock back-off after a
    release (nobody would hold the locks for up to a minute, or two nodes would hand them back and
    forth)."""
    if not (n.holds_vip is True and n.vrrp_state == "MASTER"):
        return "does not hold the VIP as VRRP MASTER"
    if n.reaches_majority is not True:
        return "does not see a majority of the servers Running"
    if n.relock_backoff:
        return "is inside its no-relock back-off"
    return None


def lock_handover(keep: NodeObservation, others: list[NodeObservation]) -> tuple[str | None, str]:
    """Should the locks move to the keeper? (the node to release on, or None; why, in one line)

    Only when the keeper's MaxScale uses locks and is known not to hold them, ONE other node is
    known to hold them, and the keeper could take them (``cannot_take_locks``). Never on the keeper
    itself."""
    if keep.locks in (None, "none") or keep.lock_primary is True:
        return None, ""
    holders = sorted(n.name for n in others if n.lock_primary is True)
    if keep.lock_primary is None:
        return None, f"{keep.name}'s MaxScale does not say whether it holds the locks"
    if not holders:
        return None, "nobody holds the locks: MaxScale takes free locks by itself"
    if len(holders) > 1:
        return None, f"{', '.join(holders)} all claim the locks: not choosing"
    why_not = cannot_take_locks(keep)
    if why_not is not None:
        return None, f"not releasing {holders[0]}'s locks: {keep.name} {why_not}"
    return holders[0], f"{holders[0]} holds the locks, {keep.name} holds the VIP"


def plan_actions(nodes: list[NodeObservation], unreachable_grace: float, mode: str = "passive") -> Plan:
    """Decide what to do so that exactly one MaxScale is active (``passive`` mode) or that the VIP
    holder is the lock primary (``locks`` mode), demoting before promoting."""
    strangers = sorted(n.name for n in nodes if not n.identity_ok)
    if strangers:
        return Plan(
            "refused",
            f"the /state configured for {', '.join(strangers)} names another node: "
            "check the state_url of each node; not acting on this cluster",
            refusal="node_identity",
        )
    contradictions = mode_contradictions(nodes, mode)
    if contradictions:
        return Plan(
            "refused",
            f"the cluster is configured mode: {mode} but " + "; ".join(contradictions) + ": not acting",
            refusal="mode",
        )
    if mode == "locks":
        return _plan_locks(nodes)
    synced = sorted(n.name for n in nodes if n.config_sync)
    if synced:
        return Plan(
            "refused",
            f"config sync is on ({', '.join(synced)}): setting passive on one node could reach every node; not acting",
            refusal="config_sync",
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
    if keep is None:
        return _tie_refusal(candidates)
    notes: list[str] = []
    if len(candidates) > 1:
        notes.append(
            f"{len(candidates)} candidates ({', '.join(sorted(c.name for c in candidates))}): "
            f"keeping {keep.name} (priority {keep.priority})"
        )
    others = sorted((n for n in nodes if n.name != keep.name), key=lambda n: n.name)
    blocked: list[str] = []
    over_down: list[str] = []
    for node in others:
        if node.is_active and node.vrrp_state is None and keep.passive is True:
            # its /state could not be read: it may be the rightful keeper (a higher priority MASTER);
            # moving the active role away from it on a blip would flap back once it is read again
            blocked.append(f"{node.name} is active and its VRRP state is unknown")
            continue
        if node.is_active or (node.mode_known and node.passive is True):
            continue
        if node.counted_down(unreachable_grace):
            over_down.append(node.name)
            notes.append(f"{node.name} counted as down: no answer for {node.down_for:.1f}s")
        elif node.maxscale == NO_ANSWER:
            down_for = node.down_for or 0.0
            blocked.append(f"{node.name} not answering for {down_for:.1f}s (grace {unreachable_grace:g}s)")
        else:
            blocked.append(f"{node.name} mode unknown (its MaxScale answers, but not usably)")
    active_others = [n for n in others if n.is_active]
    holder, why_locks = lock_handover(keep, others)
    if why_locks and holder is None:
        notes.append(why_locks)
    demote = [Action(n.name, "demote", release_locks=n.name == holder) for n in active_others]
    if keep.passive is True and blocked:
        # No promotion now. Demote only what leaves one node active: never none.
        spared = sorted(active_others, key=_rank)[:1]
        demote = [a for a in demote if a.node not in {n.name for n in spared}]
        return Plan(
            "waiting",
            "not promoting " + keep.name + ": " + "; ".join(blocked),
            keep.name,
            tuple(demote),
            retry=True,
            notes=tuple(notes),
        )
    actions = list(demote)
    if keep.passive is True:
        actions.append(Action(keep.name, "promote"))
    if holder is not None and holder not in {a.node for a in demote}:
        # the trap of the tutorial's mixed setup: a passive lock holder cannot fail over, and the
        # active MaxScale, holding no locks, shows no primary at all
        actions.append(Action(holder, "release"))
    if not actions:
        return Plan("ok", f"{keep.name} is the one active MaxScale", keep.name, notes=tuple(notes))
    return Plan(
        "corrected",
        f"keep {keep.name} active: " + ", ".join(f"{a.kind} {a.node}" for a in actions),
        keep.name,
        tuple(actions),
        notes=tuple(notes),
        over_down=tuple(over_down) if keep.passive is True else (),
    )


def _plan_locks(nodes: list[NodeObservation]) -> Plan:
    """``locks`` mode: every MaxScale stays active; the VIP holder should be the lock primary."""
    candidates = [n for n in nodes if n.is_candidate]
    if not candidates:
        holders = sorted(n.name for n in nodes if n.lock_primary is True)
        return Plan(
            "no-candidate",
            "no node holds the VIP as VRRP MASTER with a passing check; changing nothing"
            + (f" (lock primary now: {', '.join(holders)})" if holders else ""),
        )
    keep = choose_keeper(candidates)
    if keep is None:
        return _tie_refusal(candidates)
    others = [n for n in nodes if n.name != keep.name]
    notes = (f"{len(candidates)} candidates: keeping {keep.name}",) if len(candidates) > 1 else ()
    holder, why = lock_handover(keep, others)
    if holder is not None:
        return Plan(
            "corrected", f"move the locks to {keep.name}: {why}", keep.name, (Action(holder, "release"),), notes=notes
        )
    if keep.lock_primary is True:
        return Plan("ok", f"{keep.name} holds the VIP and the locks", keep.name, notes=notes)
    # the keeper may simply be about to lock (free locks, or a back-off ending): look again later
    return Plan("waiting", f"{keep.name} holds the VIP but not the locks: {why}", keep.name, retry=True, notes=notes)


# -- the notify hook's question ----------------------------------------------------------------
YIELD = "yield"
GO_ACTIVE = "active"
WAIT = "wait"


@dataclass(frozen=True)
class HookDecision:
    action: str  # YIELD (stay passive), GO_ACTIVE, or WAIT (a worse peer is still active: look again)
    peer: str | None
    reason: str


def decide_for_hook(me: NodeObservation, peers: list[NodeObservation]) -> HookDecision:
    """What ``mxha notify`` does on a node that holds the VIP as MASTER, given what its peers say.

    ``me`` is this node as it sees itself (a candidate whose MaxScale is to be made active);
    ``peers`` were read live just now. The same ``plan_actions`` as the remediator picks the keeper:

    - a peer that is the keeper (MASTER, holds its VIP, passes its check, higher priority) and
      whose MaxScale was read active: yield to it (stay passive);
    - the keeper is a peer whose MaxScale is passive (both became MASTER at once): wait, so its
      own notify can make it active (the caller looks again until its budget ends);
    - otherwise, a peer whose MaxScale was read active: wait for it to step down (the caller
      looks again until its budget ends, then goes active; only the remediator demotes others);
    - anything less (a peer unreadable, erroring, passive, or not verified better): go active.
    A peer whose ``/state`` names another node is left out (``identity_ok`` False).
    """
    known = [p for p in peers if p.identity_ok]
    plan = plan_actions([me, *known], unreachable_grace=float("inf"))
    if plan.keep is not None and plan.keep != me.name:
        keeper = next(p for p in known if p.name == plan.keep)
        better = (
            f"{keeper.name} is the better keeper (MASTER with the VIP, check passing, priority "
            f"{keeper.priority} > {me.priority})"
        )
        if keeper.is_active:
            return HookDecision(YIELD, keeper.name, f"{better} and its MaxScale is active")
        # both became MASTER at once: give its own notify the budget to make it active
        return HookDecision(WAIT, keeper.name, f"{better} but passive: waiting for its own notify")
    active = sorted((p for p in known if p.is_active), key=_rank)
    if active:
        why = f"not the keeper: {plan.reason}" if plan.keep != me.name else "this node is the keeper"
        return HookDecision(WAIT, active[0].name, f"{active[0].name} is active ({why})")
    return HookDecision(GO_ACTIVE, None, "no peer is verified active")

"""The remediation policy: node observations in, an ordered plan out. Pure (no I/O, no clock).

It lives in the core because more than one component asks it what the pair should look like
(the remediator; the peer-aware notify to come). The README carries the same decision table:

| situation                                                          | plan                                     |
|--------------------------------------------------------------------|------------------------------------------|
| a node's ``/state`` names another node                             | nothing; refused (``node_identity``)     |
| any node's ``/state`` says ``mode: locks``                          | nothing; refused (``mode``)              |
| any node has MaxScale config sync on                               | nothing; refused (``config_sync``)       |
| no node holds the VIP as VRRP MASTER with a passing check and a    | nothing at all (not even demotions)      |
|   MaxScale whose mode was read                                     |                                          |
| one such candidate                                                 | keep it                                  |
| several candidates (split brain), one with the highest effective   | keep that one                            |
|   VRRP priority                                                    |                                          |
| several candidates sharing the highest priority                    | nothing; refused (``priority_tie``)      |
| another node is active                                             | demote it (release its locks if any)     |
| the keeper is passive, every other node verified passive or        | promote it, after the demotions, as ONE  |
|   counted down (no answer for the whole grace)                     |   unit                                   |
| the keeper is passive and another node's mode is unknown (it       | no promotion yet; retry; demotions only  |
|   answers with an error), or it has not answered for less than the |   where one active node stays            |
|   grace, or it is active and its VRRP state is unknown             |                                          |

"Down" is decided by the caller, which measures how long a node has CONTINUOUSLY given no
answer (``down_for``); an answer that cannot be used is never "down", only "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What the caller learnt of a node's MaxScale: its mode was read ("ok"), nothing answered
# ("no_answer": the only state that may ever count toward down), or it answered with something
# unusable, or could not be asked ("unknown": mode unknown, blocks every promotion).
OK = "ok"
NO_ANSWER = "no_answer"
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
    mode: str = "passive"  # its node config's coordination mode, from its /state

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
    refusal: str | None = None  # one of REFUSAL_REASONS when verdict == "refused"
    over_down: tuple[str, ...] = ()  # nodes a promotion in this plan counts as down (the trade-off)

    @property
    def promotes(self) -> bool:
        return any(a.kind == "promote" for a in self.actions)


def _rank(n: NodeObservation) -> tuple[int, str]:
    return (-(n.priority if n.priority is not None else -1), n.name)


def choose_keeper(candidates: list[NodeObservation]) -> NodeObservation | None:
    """The candidate with the highest effective priority; None when the highest is shared.

    VRRP itself breaks a priority tie by the higher primary IP address, which the remediator
    does not know for certain (``mcast_src_ip``/``unicast_src_ip`` override it): guessing could
    keep the node VRRP demotes once the partition heals, and keepalived runs no notify on the
    survivor. So a tie is refused, loudly, instead of broken.
    """
    ordered = sorted(candidates, key=_rank)
    if len(ordered) > 1 and ordered[0].priority == ordered[1].priority:
        return None
    return ordered[0]


def plan_actions(nodes: list[NodeObservation], unreachable_grace: float) -> Plan:
    """Decide what to do so that exactly one MaxScale is active, demoting before promoting."""
    strangers = sorted(n.name for n in nodes if not n.identity_ok)
    if strangers:
        return Plan(
            "refused",
            f"the /state configured for {', '.join(strangers)} names another node: "
            "check the state_url of each node; not acting on this cluster",
            refusal="node_identity",
        )
    locked = sorted(n.name for n in nodes if n.mode == "locks")
    if locked:
        return Plan(
            "refused",
            f"{', '.join(locked)} say mode: locks (every MaxScale active, the locks decide): this "
            "policy would set passive; not acting",
            refusal="mode",
        )
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
        top = sorted(candidates, key=_rank)
        tied = [c.name for c in top if c.priority == top[0].priority]
        return Plan(
            "refused",
            f"candidates {', '.join(tied)} share the highest VRRP priority {top[0].priority}: "
            "give the nodes different priorities; not choosing",
            refusal="priority_tie",
        )
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
    demote = [Action(n.name, "demote", release_locks=(n.locks or "none") != "none") for n in active_others]
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

"""What the notify hook decides, as pure tables (``mxha notify`` and ``mxha check``'s follow-up do
the I/O around them: reading the record, the kernel, the peers, MaxScale, and writing).

Standard library only: the hooks run as a fresh process per event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

RECHECK = "RECHECK"  # a call without TYPE NAME STATE: decide from live state alone
ACTIVE_STATES = frozenset({"MASTER"})
PASSIVE_STATES = frozenset({"BACKUP", "FAULT", "STOP", "DELETED"})


def takes_ticket(type_: str, name: str, configured: str | None, *, group_events: bool, has_vips: bool) -> bool:
    """Whether a call takes a ticket before the lock: every call ``skip_event`` may let act must
    (a call without one cannot be told that a newer call exists). Decided before the record is
    read, so an INSTANCE event takes one whenever no instance is configured; ``skip_event`` then
    decides which instance governs."""
    return (
        (type_ == RECHECK and has_vips)
        or (type_ == "INSTANCE" and (configured is None or name == configured))
        or (type_ == "GROUP" and group_events)
    )


@dataclass(frozen=True)
class Skip:
    """The call is recorded and nothing is done, for ``result``; ``code`` is the exit status."""

    result: str
    code: int = 0


def skip_event(
    type_: str,
    name: str,
    governing: str | None,
    known: Collection[str],
    *,
    group_events: bool,
    has_vips: bool,
    superseded: Callable[[], bool],
) -> Skip | None:
    """Whether this call acts at all (None: it does, from live state), in this order:

    | the call                                   | outcome                                    |
    |--------------------------------------------|--------------------------------------------|
    | GROUP, ``notify.group_events: false``      | recorded; ignored                          |
    | INSTANCE, no instance governs              | recorded; acting on none (exit 1)          |
    | INSTANCE, not the governing instance       | recorded; not the governing instance       |
    | RECHECK without ``keepalived.vips``        | nothing done: no live state to decide from |
    | a newer call exists, or decided already    | superseded                                 |
    """
    if type_ == "GROUP" and not group_events:
        return Skip("recorded; GROUP events ignored (notify.group_events: false)")
    if type_ == "INSTANCE" and governing is None:
        return Skip(
            f"recorded; acting on none: {len(known)} VRRP instances seen ({', '.join(sorted(known))}) "
            "and keepalived.governing_instance is not set",
            1,
        )
    if type_ == "INSTANCE" and name != governing:
        return Skip("recorded; not the governing instance")
    if type_ == RECHECK and not has_vips:
        return Skip("nothing done: a recheck needs live state (keepalived.vips is not set)")
    if superseded():  # asked last: it reads the tickets
        return Skip("superseded: a newer call decides from live state; nothing done")
    return None


def wants_active(type_: str, state: str, master: bool | None) -> bool | None:
    """Whether this node should be active, for a call that acts: live state (``master``: the
    governing VIPs are on this host) wins over what the event said; without live state the event's
    STATE decides, and a recheck, which has no STATE, decides nothing (None)."""
    if master is not None:
        return master
    if type_ == RECHECK:
        return None
    return state not in PASSIVE_STATES


@dataclass(frozen=True)
class Mode:
    """What this node's MaxScale should be set to."""

    passive: bool
    release_locks: bool  # also release the cooperative locks it holds (once a peer can take them)


def desired_mode(*, locks_mode: bool, wants_active: bool, yielded_to: str | None, release_locks: bool) -> Mode:
    """``mode: passive``: active when this node should be (live state, or the event) and did not
    yield to a peer; locks released with the active role. ``mode: locks``: every MaxScale stays
    active; leaving MASTER only hands the locks over."""
    if locks_mode:
        return Mode(False, release_locks and not wants_active)
    passive = not wants_active or yielded_to is not None
    return Mode(passive, release_locks and passive)


def follow_up_reason(
    *,
    locks_mode: bool,
    master: bool,
    maxscale_passive: bool | None,
    yielded_to: str | None,
    has_peers: bool,
    release_locks: bool,
    locks_worth_a_look: bool,
    holds_locks: Callable[[], bool | None],
) -> str | None:
    """Why ``mxha check`` starts a recheck (``mxha notify`` without arguments), or None, given live
    state (``master``: the governing VIPs are on this host) and this MaxScale:

    | mode    | live state and MaxScale                                   | recheck, because            |
    |---------|-----------------------------------------------------------|-----------------------------|
    | locks   | MaxScale passive                                          | passive in mode: locks      |
    | passive | VIP here, this node yielded to a peer (peers configured)  | the yield may have ended    |
    | passive | MaxScale passive with the VIP here, or active without it  | mode disagrees with the VIP |
    | both    | VIP elsewhere, MaxScale holds the locks (``holds_locks``, | the locks belong with the   |
    |         | asked only then, and at most every few seconds)           | VIP                         |
    """
    if locks_mode and maxscale_passive is True:
        return "MaxScale passive=true in mode: locks"
    if not locks_mode and master and yielded_to is not None and has_peers:
        return f"yielded to {yielded_to}: looking again"
    if not locks_mode and maxscale_passive is not None and maxscale_passive == master:
        return f"MaxScale passive={str(maxscale_passive).lower()} but the VIP is {'here' if master else 'elsewhere'}"
    if not master and release_locks and locks_worth_a_look and holds_locks() is True:
        # both modes: the locks belong with the VIP (passive mode with locks on: a passive holder
        # cannot fail over, and the active MaxScale shows no primary)
        return "this MaxScale holds the locks but the VIP is elsewhere"
    return None

"""Property tests of the notify hook's decisions (``mxha.hook_decision``), pure: no kernel, no peers.

The tables are tested row by row in ``test_hook_decision.py``; here the safety rules they exist for
are checked over situations a node meets (keepalived's event of the governing instance, another
instance's, a call a newer one superseded, a late MASTER event with the VIP gone, a yield, a backup
whose MaxScale restarted active, the locks left behind off the VIP). Each property fails unless a
fifth of its examples reach the case it guards (``must_reach``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import event, given
from hypothesis import strategies as st
from reaching import PROPERTY, SAFETY, must_reach, reached

from mxha.hook_decision import (
    ACTIVE_STATES,
    PASSIVE_STATES,
    RECHECK,
    Mode,
    Skip,
    desired_mode,
    follow_up_reason,
    skip_event,
    takes_ticket,
    wants_active,
)
from mxha.model import governing_instance

INSTANCES = ("VI_1", "VI_2")
STATES = tuple(sorted(ACTIVE_STATES | PASSIVE_STATES))
_BOOL = st.booleans()
_PEER = st.sampled_from(["node1", "node3"])


# -- which calls act -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    type: str
    name: str
    configured: str | None  # keepalived.governing_instance
    known: frozenset[str]  # the instances the record has seen, with this event's
    group_events: bool
    has_vips: bool
    superseded: bool  # a newer ticket exists, or a newer call decided already

    def gate(self, superseded: bool | None = None) -> Skip | None:
        newer = self.superseded if superseded is None else superseded
        return skip_event(
            self.type,
            self.name,
            governing_instance(self.configured, self.known),
            self.known,
            group_events=self.group_events,
            has_vips=self.has_vips,
            superseded=lambda: newer,
        )

    def took_ticket(self) -> bool:
        return takes_ticket(
            self.type, self.name, self.configured, group_events=self.group_events, has_vips=self.has_vips
        )


CALL_SITUATIONS = (
    "governing event",  # the configured instance's, or the only one seen
    "other instance",  # an instance that does not govern
    "none governs",  # several instances seen, none configured
    "group event",
    "recheck",
    "superseded",  # a call that would act, with a newer ticket
)


@st.composite
def calls(draw: st.DrawFn, only: tuple[str, ...] = CALL_SITUATIONS) -> Call:
    kind = draw(st.sampled_from(only))
    event(f"situation: {kind}")
    seen = frozenset(draw(st.sets(st.sampled_from(INSTANCES))))
    configured = draw(st.sampled_from([None, "VI_1"]))
    type_, name = "INSTANCE", draw(st.sampled_from(INSTANCES))
    group_events, has_vips = draw(_BOOL), draw(_BOOL)
    superseded = draw(_BOOL)
    if kind in ("governing event", "superseded"):
        choice = draw(st.sampled_from(["configured", "only", "group", "recheck"]))
        if choice == "configured":
            configured, name = "VI_1", "VI_1"
        elif choice == "only":
            configured, seen = None, frozenset([name])
        elif choice == "group":
            type_, name, group_events = "GROUP", "G1", True
        else:
            type_, name, has_vips = RECHECK, "", True
        superseded = kind == "superseded"
    elif kind == "other instance":
        configured, name = "VI_1", "VI_2"
    elif kind == "none governs":
        configured, seen = None, frozenset(INSTANCES)
    elif kind == "group event":
        type_, name = "GROUP", "G1"
    elif kind == "recheck":
        type_, name = RECHECK, ""
    known = seen | ({name} if type_ == "INSTANCE" else set())  # the record's, with this event's
    return Call(type_, name, configured, known, group_events, has_vips, superseded)


@must_reach()
@SAFETY
@given(calls(("governing event", "superseded", *("other instance", "none governs") * 2, "group event", "recheck")))
def test_only_the_newest_call_for_the_governing_instance_acts(call: Call) -> None:
    """Only one VRRP instance may move MaxScale (two instances' events would flip it back and
    forth). An older call that finds a newer one does nothing: the newer one decides from live
    state after it, and an older call acting last would undo it (keepalived starts notifies out of
    order); so every call that acts took a ticket (one without could not be told of a newer call)."""
    skip = call.gate()
    governing = governing_instance(call.configured, call.known)
    if reached(call.type == "INSTANCE" and call.name != governing, "an instance that does not govern"):
        assert skip is not None
        assert skip.code == (1 if governing is None else 0)  # none governs is a setup error keepalived logs
    if reached(call.superseded and call.gate(superseded=False) is None, "a call that would act, superseded"):
        assert skip is not None and skip.code == 0 and skip.result.startswith("superseded")
    if reached(skip is None, "acts"):
        assert call.took_ticket()
        assert not call.superseded
        if call.type == "INSTANCE":
            assert call.name == governing
        elif call.type == "GROUP":
            assert call.group_events
        else:
            assert call.type == RECHECK and call.has_vips


# -- the mode a call sets ------------------------------------------------------------------------
@dataclass(frozen=True)
class Situation:
    locks_mode: bool
    type: str
    state: str  # the event's STATE (RECHECK for a recheck)
    master: bool | None  # the governing VIPs on this host, per the kernel (None: cannot say)
    yielded_to: str | None  # the peer the peers' policy yielded to, if it was asked
    release_locks: bool  # notify.release_locks

    def active(self) -> bool | None:
        return wants_active(self.type, self.state, self.master)

    def mode(self) -> Mode | None:
        active = self.active()
        if active is None:
            return None
        return desired_mode(
            locks_mode=self.locks_mode,
            wants_active=active,
            yielded_to=self.yielded_to,
            release_locks=self.release_locks,
        )


MODE_SITUATIONS = (
    "VIP elsewhere",
    "VIP here",
    "late event",  # the event says the opposite of the kernel (it started late, or out of order)
    "no live state",  # no keepalived.vips, or the addresses could not be listed
    "yield",  # the VIP here, and a better keeper is active
    "locks mode",
    "arbitrary",
)


@st.composite
def situations(draw: st.DrawFn, only: tuple[str, ...] = MODE_SITUATIONS) -> Situation:
    kind = draw(st.sampled_from(only))
    event(f"situation: {kind}")
    recheck = draw(st.sampled_from([False, False, True]))
    type_ = RECHECK if recheck else draw(st.sampled_from(["INSTANCE", "GROUP"]))
    state = RECHECK if recheck else draw(st.sampled_from(STATES))
    master: bool | None = draw(st.sampled_from([True, False, None]))
    locks_mode = draw(st.sampled_from([False, False, False, True]))
    yielded_to = draw(st.one_of(st.none(), _PEER)) if master is not False else None
    if kind == "VIP elsewhere":
        master, yielded_to, locks_mode = False, None, False
    elif kind == "VIP here":
        master, yielded_to, locks_mode = True, None, False
    elif kind == "late event":
        type_ = draw(st.sampled_from(["INSTANCE", "GROUP"]))
        state = draw(st.sampled_from(STATES))
        master = state in PASSIVE_STATES
        yielded_to, locks_mode = None, False
    elif kind == "no live state":
        master = None
    elif kind == "yield":
        master, locks_mode = True, False
        yielded_to = draw(_PEER)
    elif kind == "locks mode":
        locks_mode = True
    return Situation(locks_mode, type_, state, master, yielded_to, draw(_BOOL))


@must_reach()
@SAFETY
@given(situations(("VIP elsewhere", "VIP elsewhere", "yield", "yield", "late event", "arbitrary")))
def test_never_active_beside_the_vip_holder_or_a_keeper_it_yielded_to(s: Situation) -> None:
    """Never two active, in ``mode: passive``: the node without the VIP is passive whatever the
    event said (the VIP holder may be active); a yield says a peer is the keeper and active."""
    mode = s.mode()
    if reached(not s.locks_mode and s.master is False, "VIP elsewhere"):
        assert mode is not None and mode.passive
    if reached(not s.locks_mode and s.yielded_to is not None and mode is not None, "yielded"):
        assert mode is not None and mode.passive


@must_reach()
@SAFETY
@given(situations(("VIP here", "VIP here", "locks mode", "locks mode", "late event", "arbitrary")))
def test_the_vip_holder_stays_active_unless_it_yielded_and_locks_mode_never_sets_passive(s: Situation) -> None:
    """Never none active: the node the VIP points clients to is active unless a better keeper that
    is active already took the role. ``mode: locks`` keeps every MaxScale active (the cooperative
    locks pick the one that writes): a passive one there would have no way back but an operator."""
    mode = s.mode()
    if reached(not s.locks_mode and s.master is True and s.yielded_to is None, "VIP here, no yield"):
        assert mode is not None and not mode.passive
    if reached(s.locks_mode and mode is not None, "locks mode"):
        assert mode is not None and not mode.passive


@must_reach()
@SAFETY
@given(situations(("VIP elsewhere", "locks mode", "yield", "VIP here", "arbitrary")))
def test_the_locks_leave_only_with_the_active_role(s: Situation) -> None:
    """The active MaxScale keeps its locks (releasing them leaves the cluster without a lock primary
    for MaxScale's one-minute back-off); one that is no longer the keeper lets them go, if allowed."""
    mode = s.mode()
    if mode is None:
        return
    keeper = not mode.passive if not s.locks_mode else s.active()
    if reached(mode.release_locks, "releases the locks"):
        assert s.release_locks
        assert not keeper
        if s.locks_mode:
            assert s.master is not True  # the VIP holder's MaxScale writes in mode: locks
    if s.release_locks and not keeper:
        assert mode.release_locks  # a passive holder would keep the others from a majority


# -- the check's follow-up -----------------------------------------------------------------------
@dataclass(frozen=True)
class Live:
    locks_mode: bool
    master: bool  # the governing VIPs on this host
    maxscale_passive: bool | None  # None: MaxScale did not answer
    yielded_to: str | None  # the record's yield
    has_peers: bool
    release_locks: bool
    worth_a_look: bool  # no recheck about the locks in the last few seconds
    holds_locks: bool | None  # does this MaxScale hold the cooperative locks (None: cannot say)

    def follow_up(self, asked: list[bool] | None = None) -> str | None:
        def holds() -> bool | None:
            if asked is not None:
                asked.append(True)
            return self.holds_locks

        return follow_up_reason(
            locks_mode=self.locks_mode,
            master=self.master,
            maxscale_passive=self.maxscale_passive,
            yielded_to=self.yielded_to,
            has_peers=self.has_peers,
            release_locks=self.release_locks,
            locks_worth_a_look=self.worth_a_look,
            holds_locks=holds,
        )

    @property
    def pending_yield(self) -> bool:
        """A yield only a new look at the peers can end: keepalived runs no notify on a node that
        stays MASTER."""
        return not self.locks_mode and self.master and self.yielded_to is not None and self.has_peers


LIVE_SITUATIONS = (
    "in line",  # MaxScale's mode is what live state asks
    "restarted backup",  # VIP elsewhere, MaxScale came back active
    "missed notify",  # VIP here, MaxScale passive without a yield (a notify ran while it was down)
    "yield",  # VIP here, this node yielded
    "stale yield",  # VIP here, a yield recorded, no peers configured (any more)
    "locks off the VIP",  # VIP elsewhere, MaxScale still holds the locks
    "locks mode",
    "unreadable",  # MaxScale did not answer
    "arbitrary",
)


@st.composite
def lives(draw: st.DrawFn, only: tuple[str, ...] = LIVE_SITUATIONS) -> Live:
    kind = draw(st.sampled_from(only))
    event(f"situation: {kind}")
    locks_mode = draw(st.sampled_from([False, False, False, True]))
    master = draw(_BOOL)
    maxscale_passive = draw(st.sampled_from([True, False, None]))
    yielded_to = draw(st.one_of(st.none(), _PEER))
    has_peers, release_locks, worth = draw(_BOOL), draw(st.sampled_from([True, True, False])), draw(_BOOL)
    holds = draw(st.sampled_from([True, False, None]))
    if kind == "in line":
        locks_mode, yielded_to = False, None
        maxscale_passive = not master
    elif kind == "restarted backup":
        locks_mode, master, maxscale_passive = False, False, False
    elif kind == "missed notify":
        locks_mode, master, maxscale_passive, yielded_to = False, True, True, None
    elif kind in ("yield", "stale yield"):
        locks_mode, master, yielded_to, has_peers = False, True, draw(_PEER), kind == "yield"
    elif kind == "locks off the VIP":
        master, holds, release_locks, worth = False, True, True, draw(st.sampled_from([True, True, False]))
        maxscale_passive = draw(st.sampled_from([True, None])) if not locks_mode else False
    elif kind == "locks mode":
        locks_mode = True
    elif kind == "unreadable":
        maxscale_passive = None
    return Live(locks_mode, master, maxscale_passive, yielded_to, has_peers, release_locks, worth, holds)


@must_reach()
@SAFETY
@given(
    lives(
        (
            "restarted backup",
            "missed notify",
            "locks off the VIP",
            *("yield",) * 3,
            "stale yield",
            "in line",
            "locks mode",
        )
    )
)
def test_a_follow_up_starts_exactly_when_a_recheck_would_change_something(live: Live) -> None:
    """The check is the level-triggered look events lack: it starts a recheck when MaxScale differs
    from what a recheck would set from this live state (its mode, or locks held off the VIP), and
    stays quiet otherwise (a recheck that changes nothing is a MaxScale write every interval). A
    yield on the VIP holder is always looked at again: else it never ends, and the keeper it
    yielded to may have gone, leaving none active."""
    started = live.follow_up() is not None
    if reached(live.pending_yield, "yielded, VIP here, peers configured"):
        assert started
        return
    recheck = desired_mode(
        locks_mode=live.locks_mode,
        wants_active=wants_active(RECHECK, RECHECK, live.master) is True,
        yielded_to=None,  # a recheck asks the peers again; without peers a recorded yield is stale
        release_locks=live.release_locks,
    )
    mode_differs = live.maxscale_passive is not None and live.maxscale_passive != recheck.passive
    locks_misplaced = recheck.release_locks and live.worth_a_look and live.holds_locks is True
    reached(mode_differs or locks_misplaced, "a recheck would change something")
    assert started == (mode_differs or locks_misplaced)


@must_reach()
@PROPERTY
@given(lives(("locks off the VIP", "locks off the VIP", "arbitrary", "in line")))
def test_the_locks_are_asked_about_only_off_the_vip_and_not_too_often(live: Live) -> None:
    """Asking MaxScale who holds the locks is a request every check interval; it is made only when
    the answer can start a recheck."""
    asked: list[bool] = []
    live.follow_up(asked)
    if reached(bool(asked), "asked who holds the locks"):
        assert not live.master and live.release_locks and live.worth_a_look

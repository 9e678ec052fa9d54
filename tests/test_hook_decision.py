"""The notify hook's decisions (``mxha.hook_decision``), pure, tested as the tables they are."""

from __future__ import annotations

from typing import Any

import pytest

from mxha.hook_decision import (
    RECHECK,
    Mode,
    Skip,
    desired_mode,
    follow_up_reason,
    skip_event,
    takes_ticket,
    wants_active,
)

ACT = None
GATE = [
    # type, name, governing, group_events, has_vips, superseded -> outcome
    ("GROUP", "G1", "VI_1", False, True, False, Skip("recorded; GROUP events ignored (notify.group_events: false)")),
    ("GROUP", "G1", "VI_1", True, True, False, ACT),
    (
        "INSTANCE",
        "VI_1",
        None,
        True,
        True,
        False,
        Skip(
            "recorded; acting on none: 2 VRRP instances seen (VI_1, VI_2) and keepalived.governing_instance is not set",
            1,
        ),
    ),
    ("INSTANCE", "VI_2", "VI_1", True, True, False, Skip("recorded; not the governing instance")),
    ("INSTANCE", "VI_1", "VI_1", True, False, False, ACT),  # without VIPs the event's STATE decides
    (
        RECHECK,
        "",
        "VI_1",
        True,
        False,
        False,
        Skip("nothing done: a recheck needs live state (keepalived.vips is not set)"),
    ),
    (RECHECK, "", "VI_1", True, True, False, ACT),
    (
        "INSTANCE",
        "VI_1",
        "VI_1",
        True,
        True,
        True,
        Skip("superseded: a newer call decides from live state; nothing done"),
    ),
    (RECHECK, "", "VI_1", True, True, True, Skip("superseded: a newer call decides from live state; nothing done")),
]


@pytest.mark.parametrize("type_,name,governing,group_events,has_vips,superseded,outcome", GATE)
def test_which_calls_act(
    type_: str, name: str, governing: str | None, group_events: bool, has_vips: bool, superseded: bool, outcome: Any
) -> None:
    got = skip_event(
        type_,
        name,
        governing,
        {"VI_1", "VI_2"},
        group_events=group_events,
        has_vips=has_vips,
        superseded=lambda: superseded,
    )
    assert got == outcome


def test_the_tickets_are_not_read_for_a_call_skipped_before() -> None:
    def read_tickets() -> bool:
        raise AssertionError("read")

    assert skip_event("GROUP", "G", "VI_1", set(), group_events=False, has_vips=True, superseded=read_tickets)


TICKETS = [
    # type, name, keepalived.governing_instance, group_events, has_vips -> takes a ticket
    ("INSTANCE", "VI_1", "VI_1", True, True, True),
    ("INSTANCE", "VI_2", "VI_1", True, True, False),  # skipped: not the governing instance
    ("INSTANCE", "VI_2", None, True, True, True),  # the record decides which governs, after the lock
    ("GROUP", "G1", "VI_1", True, True, True),
    ("GROUP", "G1", "VI_1", False, True, False),
    (RECHECK, "", "VI_1", True, True, True),
    (RECHECK, "", "VI_1", True, False, False),  # nothing to decide from
]


@pytest.mark.parametrize("type_,name,configured,group_events,has_vips,takes", TICKETS)
def test_which_calls_take_a_ticket(
    type_: str, name: str, configured: str | None, group_events: bool, has_vips: bool, takes: bool
) -> None:
    assert takes_ticket(type_, name, configured, group_events=group_events, has_vips=has_vips) is takes


WANTS_ACTIVE = [
    # type, state, VIPs here (None: cannot say) -> active (None: nothing to decide from)
    ("INSTANCE", "MASTER", True, True),
    ("INSTANCE", "MASTER", False, False),  # a late MASTER event: live state wins
    ("INSTANCE", "BACKUP", True, True),
    ("INSTANCE", "MASTER", None, True),  # no live state: the event decides
    ("GROUP", "FAULT", None, False),
    ("INSTANCE", "DELETED", None, False),
    (RECHECK, RECHECK, True, True),
    (RECHECK, RECHECK, False, False),
    (RECHECK, RECHECK, None, None),
]


@pytest.mark.parametrize("type_,state,master,active", WANTS_ACTIVE)
def test_live_state_wins_over_the_event(type_: str, state: str, master: bool | None, active: bool | None) -> None:
    assert wants_active(type_, state, master) is active


MODES = [
    # locks_mode, wants_active, yielded_to, release_locks -> passive, release
    (False, True, None, True, Mode(False, False)),  # MASTER: active
    (False, True, "node1", True, Mode(True, True)),  # yielded: passive, locks go with the active role
    (False, False, None, True, Mode(True, True)),  # BACKUP: passive, release
    (False, False, None, False, Mode(True, False)),  # notify.release_locks: false
    (True, True, None, True, Mode(False, False)),  # locks mode: always active
    (True, False, None, True, Mode(False, True)),  # locks mode: leaving MASTER hands the locks over
    (True, False, None, False, Mode(False, False)),
    (True, True, "node1", True, Mode(False, False)),  # a yield means nothing in locks mode
]


@pytest.mark.parametrize("locks_mode,wants_active,yielded_to,release_locks,mode", MODES)
def test_the_mode_a_call_sets(
    locks_mode: bool, wants_active: bool, yielded_to: str | None, release_locks: bool, mode: Mode
) -> None:
    got = desired_mode(
        locks_mode=locks_mode, wants_active=wants_active, yielded_to=yielded_to, release_locks=release_locks
    )
    assert got == mode


FOLLOW_UPS = [
    # locks_mode, master, maxscale_passive, yielded_to, has_peers, holds_locks -> why (None: no recheck)
    (True, True, True, None, False, None, "MaxScale passive=true in mode: locks"),
    (True, True, False, None, False, None, None),
    (False, True, True, "node1", True, None, "yielded to node1: looking again"),
    (False, True, True, "node1", False, None, "MaxScale passive=true but the VIP is here"),  # no peers: a stale yield
    (False, True, True, None, True, None, "MaxScale passive=true but the VIP is here"),
    (False, False, False, None, True, None, "MaxScale passive=false but the VIP is elsewhere"),
    (False, True, False, None, True, None, None),  # in line
    (False, False, True, None, True, None, None),
    (False, True, None, None, True, None, None),  # MaxScale unreadable: nothing to compare
    (False, False, True, None, True, True, "this MaxScale holds the locks but the VIP is elsewhere"),
    (True, False, False, None, True, True, "this MaxScale holds the locks but the VIP is elsewhere"),
    (True, True, False, None, True, True, None),  # holding the locks on the VIP holder is right
    (False, False, True, None, True, False, None),
]


@pytest.mark.parametrize("locks_mode,master,maxscale_passive,yielded_to,has_peers,holds_locks,why", FOLLOW_UPS)
def test_when_the_check_follows_up(
    locks_mode: bool,
    master: bool,
    maxscale_passive: bool | None,
    yielded_to: str | None,
    has_peers: bool,
    holds_locks: bool | None,
    why: str | None,
) -> None:
    got = follow_up_reason(
        locks_mode=locks_mode,
        master=master,
        maxscale_passive=maxscale_passive,
        yielded_to=yielded_to,
        has_peers=has_peers,
        release_locks=True,
        locks_worth_a_look=True,
        holds_locks=lambda: holds_locks,
    )
    assert got == why


def test_the_locks_are_asked_about_only_when_they_could_decide() -> None:
    asked: list[bool] = []

    def holds() -> bool:
        asked.append(True)
        return True

    common: dict[str, Any] = dict(locks_mode=False, yielded_to=None, has_peers=True, holds_locks=holds)
    assert (
        follow_up_reason(master=True, maxscale_passive=False, release_locks=True, locks_worth_a_look=True, **common)
        is None
    )
    assert (
        follow_up_reason(master=False, maxscale_passive=True, release_locks=False, locks_worth_a_look=True, **common)
        is None
    )
    assert (
        follow_up_reason(master=False, maxscale_passive=True, release_locks=True, locks_worth_a_look=False, **common)
        is None
    )
    assert asked == []

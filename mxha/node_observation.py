"""One node's observation (``mxha.policy.NodeObservation``) from what the node answered: its
``/state`` (via its exporter) and, when asked directly, its MaxScale. ONE builder for the remediator
(every node of a cluster) and ``mxha notify`` (its peers), in the shape of Patroni's
``_MemberStatus.from_api_response()`` / ``.unknown()``.

Shared here: which VRRP instance governs and its state, the VIP and the check, the identity check,
that a MaxScale's mode counts only when it was read, and "only no answer may count toward down"
(``silence_counts``). Each caller's own: the remediator keeps the "no answer" streaks (``down_for``)
and refuses a cluster on a wrong identity; the hook never counts silence as down and ignores a peer
whose ``/state`` names another node.

Standard library only: the hooks run as a fresh process per event.
"""

from __future__ import annotations

from mxha.maxscale import MaxScaleStatus
from mxha.model import NodeState
from mxha.policy import NO_ANSWER, OK, UNKNOWN, NodeObservation


def unknown(name: str) -> NodeObservation:
    """A node nothing usable was learnt of (its mode unknown: it blocks every promotion)."""
    return NodeObservation(name, None, None, None, None, maxscale=UNKNOWN)


def maxscale_answer(
    direct: MaxScaleStatus | None, direct_no_answer: bool, state: NodeState | None, state_no_answer: bool
) -> str:
    """OK when the MaxScale's mode was read; NO_ANSWER only when the MaxScale gave no answer AND
    its exporter either gave none or itself reports its MaxScale not answering; else UNKNOWN."""
    if direct is not None and direct.passive is not None:
        return OK
    exporter_silent = state is not None and not state.maxscale.up and state.maxscale.error_kind == NO_ANSWER
    if direct_no_answer and (state_no_answer or exporter_silent):
        return NO_ANSWER
    return UNKNOWN


def observe_node(
    name: str,
    state: NodeState | None,
    direct: MaxScaleStatus | None,
    *,
    maxscale: str,
    exporter_view: bool = False,
    plan_facts: bool = True,
) -> NodeObservation:
    """The observation of node ``name`` from its ``state`` (None: unread) and its MaxScale read
    directly (``direct``; None: not read). ``maxscale`` is what was learnt of that MaxScale
    (``maxscale_answer``, or the caller's own rule). ``exporter_view``: no direct read was asked
    for, so the exporter's live read of its MaxScale (in ``/state``) stands for it (the hook's peers
    without ``maxscale`` configured). ``plan_facts``: with the node config's mode and the MaxScale's
    database view (the remediator's plan weighs them; the hook decides on VRRP and the mode alone)."""
    vrrp = state.governing_vrrp_state() if state is not None else None
    gov = state.keepalived.governing() if state is not None else None
    passive = locks = config_sync = None
    if direct is not None:
        passive, locks, config_sync = direct.passive, direct.lock_mode, direct.config_sync
    elif exporter_view and state is not None:
        ms = state.maxscale
        passive, locks, config_sync = (ms.passive if ms.up else None), ms.locks, ms.config_sync
    facts = direct.facts if direct is not None and maxscale == OK and plan_facts else None
    return NodeObservation(
        name,
        vrrp,
        gov.priority if vrrp is not None and gov is not None else None,
        state.holds_governing_vip() if state is not None else None,
        state.check.success if state is not None else None,
        maxscale=maxscale,
        passive=passive if maxscale == OK else None,
        locks=locks,
        config_sync=config_sync,
        identity_ok=state is None or state.node == name,
        mode=state.mode if state is not None and plan_facts else None,
        lock_primary=facts.lock_primary if facts else None,
        sees_primary=facts.sees_primary if facts else None,
        reaches_majority=facts.reaches_majority if facts else None,
    )


def released_within(state: NodeState | None, seconds: float, now_wall: float) -> bool:
    """Did the node's own hook release the cooperative locks within ``seconds`` (MaxScale's
    no-relock back-off), per its ``/state``?"""
    released = state.notify.locks_released_at if state is not None and state.notify is not None else None
    return released is not None and now_wall - released < seconds

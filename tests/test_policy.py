"""Property tests of the remediation policy's safety rules.

The clusters are built from valid situations (a keeper exists; a split brain; a restarted backup;
the lock holder elsewhere; a tie; nodes silent for part of the grace or all of it; a MaxScale that
answers unusably), with some arbitrary ones mixed in. Each property names the case it guards with
``reached`` and fails unless a fifth of its examples reach it (``must_reach``); run with
``--hypothesis-show-statistics`` to see the situations and the share that reached each case.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from reaching import PROPERTY, SAFETY, must_reach, reached

from mxha.policy import NO_ANSWER, OK, UNKNOWN, NodeObservation, Plan, cannot_take_locks, plan_actions

GRACE = 10.0
NAMES = ("a", "b", "c", "d")
PRIORITIES = (50, 100, 150, 200)
LOCKS = "majority_of_all"

# -- arbitrary clusters: every combination of fields (most of them plan nothing) -------------------
node_obs = st.builds(
    NodeObservation,
    name=st.sampled_from(NAMES),
    vrrp_state=st.sampled_from([None, "INIT", "BACKUP", "MASTER", "FAULT", "STOP"]),
    priority=st.one_of(st.none(), st.sampled_from(PRIORITIES)),
    holds_vip=st.one_of(st.none(), st.booleans()),
    check_ok=st.one_of(st.none(), st.booleans()),
    maxscale=st.sampled_from([OK, NO_ANSWER, UNKNOWN]),
    passive=st.one_of(st.none(), st.booleans()),
    locks=st.sampled_from([None, "none", LOCKS]),
    config_sync=st.one_of(st.none(), st.booleans()),
    down_for=st.one_of(st.none(), st.floats(0, 100)),
    identity_ok=st.just(True),  # the refusal on a wrong identity has a property of its own
    lock_primary=st.one_of(st.none(), st.booleans()),
    sees_primary=st.one_of(st.none(), st.booleans()),
    reaches_majority=st.one_of(st.none(), st.booleans()),
    relock_backoff=st.booleans(),
)


def consistent(n: NodeObservation) -> NodeObservation:
    """Only a node whose mode was read has one; only a node not answering has a streak."""
    if n.maxscale != OK:
        n = replace(n, passive=None)
    elif n.passive is None:  # a MaxScale that answered without saying its mode
        n = replace(n, maxscale=UNKNOWN)
    if n.maxscale != NO_ANSWER:
        n = replace(n, down_for=None)
    if n.maxscale != OK:
        n = replace(n, lock_primary=None, sees_primary=None, reaches_majority=None)
    if n.locks in (None, "none"):
        n = replace(n, lock_primary=None)
    return n


arbitrary = st.lists(node_obs, min_size=1, max_size=4, unique_by=lambda n: n.name).map(
    lambda nodes: [consistent(n) for n in nodes]
)

# -- situations: valid clusters built around the cases the properties guard -------------------------
SITUATIONS = (
    "keeper",  # one candidate; every other node a BACKUP: active, passive, silent, unusable or failed
    "restarted backup",  # a BACKUP whose MaxScale came back active beside the keeper
    "split brain",  # two or more MASTERs holding the VIP, different priorities
    "tie",  # candidates sharing the top priority
    "silent",  # a node giving no answer, for part of the grace or all of it
    "unusable",  # a MaxScale that answers, but not usably (mode unknown)
    "lock holder elsewhere",  # locks in use: a node other than the keeper holds them
    "relock back-off",  # the same, the keeper inside its no-relock back-off after a release
    "config sync",  # a keeper, and a MaxScale with config sync on
    "no keeper",  # nobody holds the VIP as MASTER with a passing check
    "arbitrary",  # any combination at all
)
# a BACKUP's MaxScale: active (a restarted backup, or the old VIP holder), passive, silent (no answer),
# or its node failed; the unusable answer (mode unknown) is a situation of its own, as it blocks
# every promotion
BACKUP_ROLES = ("active", "active", "passive", "passive", "passive", "silent", "failed")


# the strategies the situations draw from, built once (building one per draw was half the time)
_BOOL = st.booleans()
_MOSTLY_TRUE = st.sampled_from([True, True, False])
_TURN = st.integers(0, 3)
_SIZE = st.integers(2, 4)
_TOP = st.sampled_from(PRIORITIES[1:])
_BELOW = {top: st.sampled_from([p for p in PRIORITIES if p < top] + [None]) for top in PRIORITIES}
_OTHER = {top: st.sampled_from([p for p in PRIORITIES if p != top]) for top in PRIORITIES}
_SEES_PRIMARY = st.sampled_from([None, True, False])
_REACHES_MAJORITY = st.sampled_from([True, True, True, None, False])
_FAILED_STATE = st.sampled_from(["FAULT", None])
_WITHIN = st.sampled_from([True, True, True, False])
_SILENT_WITHIN = st.floats(0, GRACE * 0.99)
_SILENT_PAST = st.floats(GRACE, 3 * GRACE)
_KEEPER_PASSIVE = st.sampled_from([True, True, True, False])
_RIVAL_PASSIVE = st.sampled_from([False, False, True])
_NO_KEEPER = st.sampled_from(["holds_vip", "check_ok", "vrrp_state", "maxscale"])
_BACKUP_ROLE = st.sampled_from(BACKUP_ROLES)


class _ByNames(dict[tuple[str, ...], st.SearchStrategy[list[str]]]):
    """Who holds the locks, by the nodes whose MaxScale answered (a strategy built once per tuple)."""

    def __init__(self, choose: Any) -> None:
        super().__init__()
        self.choose = choose

    def __missing__(self, names: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
        self[names] = strategy = st.sampled_from(self.choose(list(names)))
        return strategy


_ELSEWHERE = _ByNames(lambda names: [names[1:2]] * 5 + [names[1:3]])
_HOLDERS = _ByNames(lambda names: [[], names[:1], names[:1], names[1:2]])


@st.composite
def situations(draw: st.DrawFn, mode: str = "passive", only: tuple[str, ...] = SITUATIONS) -> list[NodeObservation]:
    """A cluster of 2-4 nodes around one situation (``only``: the ones to draw from, repeat one to
    weigh it); its first node is the keeper-to-be, except where there is none."""
    kind = draw(st.sampled_from(only))
    event(f"situation: {kind}")
    if kind == "arbitrary":
        nodes: list[NodeObservation] = draw(arbitrary)
        return [replace(n, mode=mode) for n in nodes] if mode == "locks" else nodes
    turn = draw(_TURN)  # who is the keeper, hence who wins a tie-break by name
    names = NAMES[turn:] + NAMES[:turn]
    size = draw(_SIZE)
    elsewhere = kind in ("lock holder elsewhere", "relock back-off")
    uses_locks = mode == "locks" or elsewhere or draw(_MOSTLY_TRUE)
    top = draw(_TOP)
    locks = LOCKS if uses_locks else "none"
    lock_primary = False if uses_locks else None

    def candidate(name: str, priority: int, passive: bool) -> NodeObservation:
        return NodeObservation(
            name, "MASTER", priority, True, True, OK, passive and mode == "passive", locks, False, mode=mode,
            lock_primary=lock_primary, sees_primary=draw(_SEES_PRIMARY),
            reaches_majority=draw(_REACHES_MAJORITY),
        )  # fmt: skip

    def backup(name: str, role: str) -> NodeObservation:
        priority = draw(_BELOW[top])
        if role in ("active", "passive", "failed"):
            state, check = ("BACKUP", True) if role != "failed" else (draw(_FAILED_STATE), False)
            passive = role == "passive" or (role == "failed" and draw(_BOOL))
            return NodeObservation(
                name, state, priority, False, check, OK, passive and mode == "passive", locks, False, mode=mode,
                lock_primary=lock_primary, reaches_majority=True,
            )  # fmt: skip
        if role == "unusable":
            return NodeObservation(name, "BACKUP", priority, False, True, UNKNOWN, mode=mode)
        # silent: its /state unreadable too, or its exporter saying its MaxScale gives no answer; most
        # of them within the grace (a node may be restarting), the rest past it (counted down)
        read = draw(_BOOL)
        within = draw(_WITHIN)
        down_for = draw(_SILENT_WITHIN if within else _SILENT_PAST)
        if not read:
            return NodeObservation(name, None, None, None, None, NO_ANSWER, down_for=down_for)
        return NodeObservation(name, "BACKUP", priority, False, True, NO_ANSWER, down_for=down_for, mode=mode)

    # the keeper-to-be: passive most often (a promotion is then what it needs)
    nodes = [candidate(names[0], top, draw(_KEEPER_PASSIVE))]
    rest = list(names[1:size])
    if kind == "no keeper":
        why = draw(_NO_KEEPER)
        gone: Any = {"vrrp_state": "BACKUP", "maxscale": UNKNOWN}.get(why, False)
        nodes = [
            replace(nodes[0], **{why: gone}, **({"passive": None, "lock_primary": None} if why == "maxscale" else {}))
        ]
    elif kind in ("split brain", "tie"):
        rival = rest.pop(0)
        priority = top if kind == "tie" else draw(_OTHER[top])
        nodes.append(candidate(rival, priority, draw(_RIVAL_PASSIVE)))
    first = {
        "restarted backup": "active",
        "silent": "silent",
        "unusable": "unusable",
        "lock holder elsewhere": "active",
        "relock back-off": "active",
    }.get(kind)
    for i, name in enumerate(rest):
        nodes.append(backup(name, first if i == 0 and first else draw(_BACKUP_ROLE)))
    if uses_locks:
        answering = [n.name for n in nodes if n.maxscale == OK]
        if elsewhere:
            # a lone holder elsewhere most often, else two claiming them; a keeper that sees a
            # majority of the servers Running most often (it could take them)
            holders = draw(_ELSEWHERE[tuple(answering)])
            nodes[0] = replace(nodes[0], relock_backoff=kind == "relock back-off", reaches_majority=draw(_MOSTLY_TRUE))
        else:
            holders = draw(_HOLDERS[tuple(answering)])
        nodes = [replace(n, lock_primary=True) if n.name in holders else n for n in nodes]
    if kind == "config sync":
        synced = draw(st.sampled_from([n.name for n in nodes if n.maxscale == OK]))
        nodes = [replace(n, config_sync=True) if n.name == synced else n for n in nodes]
    return nodes


clusters = situations()
# weighed toward a keeper that a promotion would make active
promoting = situations(
    only=("keeper", "keeper", "restarted backup", "split brain", "silent", "lock holder elsewhere", "arbitrary")
)


def apply(nodes: list[NodeObservation], plan: Plan) -> list[NodeObservation]:
    """The nodes as the plan leaves them: modes changed; released locks taken by the keeper (what
    the remediator verifies after a release)."""
    out = {n.name: n for n in nodes}
    for action in plan.actions:
        if action.kind in ("demote", "promote"):  # a release changes no mode
            out[action.node] = replace(out[action.node], passive=action.kind == "demote")
        if (action.kind == "release" or action.release_locks) and plan.keep is not None:
            out[action.node] = replace(out[action.node], lock_primary=False)
            out[plan.keep] = replace(out[plan.keep], lock_primary=True)
    return list(out.values())


def may_be_active(n: NodeObservation) -> bool:
    """Unknown mode counts as possibly active, and so does silence, unless it lasted the whole grace."""
    if n.maxscale == OK:
        return n.passive is not True
    return not n.counted_down(GRACE)


def _keeper(nodes: list[NodeObservation], plan: Plan) -> NodeObservation | None:
    return next((n for n in nodes if n.name == plan.keep), None)


def _would_promote(nodes: list[NodeObservation], plan: Plan) -> bool:
    """The plan keeps a node whose MaxScale is passive: a promotion is what it would ask for."""
    keep = _keeper(nodes, plan)
    return keep is not None and keep.passive is True


@must_reach()
@SAFETY
@given(promoting)
def test_a_promotion_leaves_exactly_one_possibly_active(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    if reached(plan.promotes, "a promotion"):
        after = apply(nodes, plan)
        assert sum(may_be_active(n) for n in after) == 1


@must_reach()
@PROPERTY
@given(clusters)
def test_with_a_keeper_every_other_reachable_node_ends_passive(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    acting = plan.keep is not None and plan.verdict not in ("refused", "waiting")
    if reached(acting and any(n.is_active for n in nodes if n.name != plan.keep), "another node active"):
        for n in apply(nodes, plan):
            if n.name != plan.keep and n.mode_known:
                assert n.passive is True


@must_reach()
@SAFETY
@given(clusters)
def test_the_plan_never_leaves_none_active_where_one_was(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    before = sum(n.is_active for n in nodes)
    reached(before > 0 and any(a.kind == "demote" for a in plan.actions), "a demotion")
    after = sum(n.is_active for n in apply(nodes, plan))
    assert after >= min(before, 1)


@must_reach()
@SAFETY
@given(situations(only=("unusable", "unusable", "keeper")))
def test_a_node_of_unknown_mode_blocks_every_promotion(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    unknown = [n for n in nodes if n.name != plan.keep and n.maxscale == UNKNOWN]
    if reached(bool(unknown) and _would_promote(nodes, plan), "a promotion asked beside a mode unknown"):
        assert not plan.promotes
    if unknown:
        assert not plan.promotes


@must_reach()
@SAFETY
@given(situations(only=("silent", "silent", "silent", "keeper")))
def test_silence_shorter_than_the_grace_blocks_every_promotion(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    silent = [n for n in nodes if n.name != plan.keep and n.maxscale == NO_ANSWER and not n.counted_down(GRACE)]
    reached(bool(silent) and _would_promote(nodes, plan), "a promotion asked beside silence within the grace")
    if silent:
        assert not plan.promotes
    event("a promotion over a node counted down" if plan.over_down else "no promotion over a node counted down")
    assert set(plan.over_down) == {
        n.name for n in nodes if plan.promotes and n.name != plan.keep and n.counted_down(GRACE)
    }


@must_reach()
@PROPERTY
@given(situations(only=("tie", "tie", "split brain", "arbitrary")))
def test_a_shared_top_priority_among_candidates_is_refused(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    candidates = sorted(
        (n for n in nodes if n.is_candidate), key=lambda n: (n.sees_primary is False, -(n.priority or -1))
    )
    tie = (
        len(candidates) > 1
        and (candidates[0].sees_primary is False) == (candidates[1].sees_primary is False)
        and (candidates[0].priority == candidates[1].priority)
    )
    if reached(tie and not any(n.config_sync for n in nodes), "a tie"):
        assert plan.verdict == "refused" and plan.refusal == "priority_tie" and plan.actions == ()


@must_reach()
@PROPERTY
@given(clusters, st.sampled_from(NAMES))
def test_a_state_from_the_wrong_node_refuses_the_cluster(nodes: list[NodeObservation], who: str) -> None:
    would_act = bool(plan_actions(nodes, GRACE).actions)
    strange = [replace(n, identity_ok=False) if n.name == who else n for n in nodes]
    plan = plan_actions(strange, GRACE)
    if reached(would_act and any(not n.identity_ok for n in strange), "a plan that would act"):
        assert plan.refusal == "node_identity" and plan.actions == ()
    if any(not n.identity_ok for n in strange):
        assert plan.refusal == "node_identity" and plan.actions == ()


@must_reach()
@SAFETY
@given(promoting)
def test_the_plan_never_makes_more_nodes_active(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    reached(plan.promotes, "a promotion")
    before = sum(n.is_active for n in nodes)
    after = sum(n.is_active for n in apply(nodes, plan))
    assert after <= max(before, 1)


@must_reach()
@SAFETY
@given(situations(only=("keeper", "restarted backup", "split brain", "silent")))
def test_demotions_before_promotions_and_at_most_one_promotion(nodes: list[NodeObservation]) -> None:
    kinds = [a.kind for a in plan_actions(nodes, GRACE).actions]
    reached("demote" in kinds and "promote" in kinds, "a demotion and a promotion")
    assert kinds == sorted(kinds, key=lambda k: k != "demote")
    assert kinds.count("promote") <= 1


@must_reach()
@PROPERTY
@given(promoting)
def test_never_promotes_a_node_without_the_vip_or_failing_its_check(nodes: list[NodeObservation]) -> None:
    by_name = {n.name: n for n in nodes}
    plan = plan_actions(nodes, GRACE)
    reached(plan.promotes, "a promotion")
    for action in plan.actions:
        if action.kind == "promote":
            n = by_name[action.node]
            assert n.holds_vip is True and n.check_ok is True and n.vrrp_state == "MASTER"


@must_reach()
@PROPERTY
@given(situations(only=("no keeper", "config sync", "keeper", "split brain", "restarted backup", "arbitrary")))
def test_no_candidate_or_config_sync_means_no_action(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    if reached(not any(n.is_candidate for n in nodes) or any(n.config_sync for n in nodes), "no candidate or sync"):
        assert plan.actions == ()


@must_reach()
@PROPERTY
@given(clusters)
def test_applying_twice_is_applying_once(nodes: list[NodeObservation]) -> None:
    first = plan_actions(nodes, GRACE)
    # a waiting plan is a part on purpose (it spares one active node until the keeper can be
    # promoted): the next look goes on from where it stopped
    if not reached(bool(first.actions) and not first.retry, "a whole plan with actions"):
        return
    once = apply(nodes, first)
    second = plan_actions(once, GRACE)
    assert second.actions == () or second.verdict == "waiting"
    assert apply(once, second) == once or second.verdict == "waiting"


@must_reach()
@PROPERTY
@given(clusters)
def test_choice_does_not_depend_on_order(nodes: list[NodeObservation]) -> None:
    a = plan_actions(nodes, GRACE)
    b = plan_actions(list(reversed(nodes)), GRACE)
    reached(len(nodes) > 1 and a.keep is not None, "a keeper among several nodes")
    assert (a.keep, a.actions) == (b.keep, b.actions)


def test_split_brain_keeps_the_higher_priority() -> None:
    nodes = [
        NodeObservation("n1", "MASTER", 150, True, True, OK, False),
        NodeObservation("n2", "MASTER", 100, True, True, OK, False),
    ]
    plan = plan_actions(nodes, GRACE)
    assert plan.keep == "n1" and [(a.node, a.kind) for a in plan.actions] == [("n2", "demote")]


def test_split_brain_with_equal_priorities_is_refused_not_guessed() -> None:
    nodes = [
        NodeObservation("n1", "MASTER", 100, True, True, OK, False),
        NodeObservation("n2", "MASTER", 100, True, True, OK, False),
    ]
    plan = plan_actions(nodes, GRACE)
    assert (plan.verdict, plan.refusal, plan.actions) == ("refused", "priority_tie", ())
    assert "n1, n2" in plan.reason


def test_an_answering_but_erroring_node_is_never_counted_down() -> None:
    keeper = NodeObservation("n1", "MASTER", 150, True, True, OK, True)
    for down_for in (None, 0.0, 1e9):
        erroring = NodeObservation("n2", "BACKUP", 100, False, True, UNKNOWN, None, down_for=down_for)
        plan = plan_actions([keeper, erroring], GRACE)
        assert plan.verdict == "waiting" and not plan.promotes and "mode unknown" in plan.reason


def test_waiting_keeps_one_active_node_rather_than_none() -> None:
    """The keeper cannot be promoted yet (n3 silent within the grace): demote n4, but spare n2."""
    nodes = [
        NodeObservation("n1", "MASTER", 200, True, True, OK, True),
        NodeObservation("n2", "BACKUP", 150, False, True, OK, False),
        NodeObservation("n3", None, None, None, None, NO_ANSWER, None, down_for=1.0),
        NodeObservation("n4", "BACKUP", 100, False, True, OK, False),
    ]
    plan = plan_actions(nodes, GRACE)
    assert plan.verdict == "waiting" and [(a.node, a.kind) for a in plan.actions] == [("n4", "demote")]


def test_silence_for_the_whole_grace_is_counted_down_and_reported() -> None:
    nodes = [
        NodeObservation("n1", "MASTER", 150, True, True, OK, True),
        NodeObservation("n2", None, None, None, None, NO_ANSWER, None, down_for=GRACE),
    ]
    plan = plan_actions(nodes, GRACE)
    assert [(a.node, a.kind) for a in plan.actions] == [("n1", "promote")] and plan.over_down == ("n2",)


def test_an_active_node_whose_vrrp_state_is_unknown_is_not_moved_away_from() -> None:
    """Seen in the lab: node1's /state blipped during a split brain; keeping node2 then demoted the
    rightful keeper, and the next look flapped back. Its picture unknown, it may be the keeper."""
    nodes = [
        NodeObservation("node1", None, None, None, None, OK, False),  # active, /state unread
        NodeObservation("node2", "MASTER", 100, True, True, OK, True),
    ]
    plan = plan_actions(nodes, GRACE)
    assert plan.verdict == "waiting" and plan.actions == () and "VRRP state is unknown" in plan.reason
    # with the keeper active, the unknown one is still demoted: two active is the worse state
    nodes[1] = replace(nodes[1], passive=False)
    assert [(a.node, a.kind) for a in plan_actions(nodes, GRACE).actions] == [("node1", "demote")]


@must_reach()
@PROPERTY
@given(clusters, st.integers(0, 3))
def test_a_node_in_locks_mode_means_no_action_at_all(nodes: list[NodeObservation], which: int) -> None:
    """A node config saying mode: locks in a passive cluster: this cluster's policy cannot tell, so it
    never acts there."""
    would_act = bool(plan_actions(nodes, GRACE).actions)
    nodes = [replace(n, mode="locks") if i == which % len(nodes) else n for i, n in enumerate(nodes)]
    plan = plan_actions(nodes, GRACE)
    reached(would_act, "a plan that would act")
    assert plan.actions == () and plan.verdict == "refused" and plan.refusal == "mode"


# -- the database view: the keeper's sight of the primary, and the locks --------------------------
def _releases(plan: Plan) -> list[str]:
    return [a.node for a in plan.actions if a.kind == "release" or a.release_locks]


def _may_release_to(keep: NodeObservation | None) -> bool:
    return (
        keep is not None
        and keep.locks not in (None, "none")
        and keep.lock_primary is False
        and keep.reaches_majority is True
        and not keep.relock_backoff
    )


def _locked(mode: str) -> st.SearchStrategy[list[NodeObservation]]:
    return situations(
        mode, only=("lock holder elsewhere", "lock holder elsewhere", "keeper", "split brain", "arbitrary")
    )


passive_or_locks = st.sampled_from(["passive", "locks"]).flatmap(lambda mode: st.tuples(st.just(mode), _locked(mode)))


def _in_mode(only: tuple[str, ...]) -> st.SearchStrategy[tuple[str, list[NodeObservation]]]:
    return st.sampled_from(["passive", "locks"]).flatmap(lambda mode: st.tuples(st.just(mode), situations(mode, only)))


@must_reach()
@SAFETY
@given(passive_or_locks)
def test_locks_are_released_only_by_a_lone_holder_to_a_keeper_that_can_take_them(
    case: tuple[str, list[NodeObservation]],
) -> None:
    """Both modes: never on a node not known to hold the locks, never when the keeper cannot lock
    them (no majority seen), at most one."""
    mode, nodes = case
    plan = plan_actions(nodes, GRACE, mode)
    released = _releases(plan)
    if not reached(bool(released), "a release"):
        return
    by_name = {n.name: n for n in nodes}
    assert len(released) == 1 and plan.keep not in released
    assert by_name[released[0]].lock_primary is True
    assert sum(1 for n in nodes if n.lock_primary is True) == 1
    assert _may_release_to(by_name.get(plan.keep or ""))


@must_reach()
@SAFETY
@given(_in_mode(("split brain", "keeper", "tie", "lock holder elsewhere")))
def test_never_releases_the_locks_of_the_vip_holder(case: tuple[str, list[NodeObservation]]) -> None:
    mode, nodes = case
    plan = plan_actions(nodes, GRACE, mode)
    holders = {n.name for n in nodes if n.holds_vip is True and n.lock_primary is True}
    reached(bool(holders), "a VIP holder holding the locks")
    keep = _keeper(nodes, plan)
    assert plan.keep not in _releases(plan)
    if keep is not None and keep.lock_primary is True:
        assert _releases(plan) == []


@must_reach()
@SAFETY
@given(_in_mode(("relock back-off", "relock back-off", "relock back-off", "lock holder elsewhere")))
def test_never_releases_the_locks_into_the_keepers_no_relock_back_off(case: tuple[str, list[NodeObservation]]) -> None:
    """Released then, nobody would hold the locks for up to a minute."""
    mode, nodes = case
    plan = plan_actions(nodes, GRACE, mode)
    keep = _keeper(nodes, plan)
    backoff = keep is not None and keep.relock_backoff
    lone = sum(1 for n in nodes if n.lock_primary is True and n.name != plan.keep) == 1
    if reached(
        backoff and lone and keep is not None and keep.lock_primary is False,
        "a lone holder elsewhere, keeper in back-off",
    ):
        assert _releases(plan) == []


@must_reach()
@PROPERTY
@given(_locked("locks"))
def test_locks_mode_never_changes_a_mode_and_acts_only_for_a_verified_keeper(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE, "locks")
    assert all(a.kind == "release" for a in plan.actions)
    if reached(bool(plan.actions), "a release"):
        keep = next(n for n in nodes if n.name == plan.keep)
        assert keep.is_candidate and plan.verdict == "corrected"


@must_reach()
@PROPERTY
@given(_locked("locks"), st.integers(0, 3))
def test_a_maxscale_contradicting_locks_mode_refuses_the_cluster(nodes: list[NodeObservation], which: int) -> None:
    """A MaxScale read passive, or with locks off, in a cluster configured mode: locks."""
    would_act = bool(plan_actions(nodes, GRACE, "locks").actions)
    i = which % len(nodes)
    bad = replace(
        nodes[i],
        maxscale=OK,
        passive=True if which % 2 else False,
        locks="none" if which % 2 == 0 else LOCKS,
    )
    nodes = [replace(n, mode="locks") for n in nodes[:i] + [bad] + nodes[i + 1 :]]
    plan = plan_actions(nodes, GRACE, "locks")
    reached(would_act, "a plan that would act")
    assert (plan.verdict, plan.refusal, plan.actions) == ("refused", "mode", ())


@must_reach()
@PROPERTY
@given(_in_mode(("split brain", "tie")))
def test_a_candidate_that_cannot_see_the_primary_is_not_kept_over_one_that_may(
    case: tuple[str, list[NodeObservation]],
) -> None:
    mode, nodes = case
    plan = plan_actions(nodes, GRACE, mode)
    candidates = [n for n in nodes if n.is_candidate]
    blind = any(c.sees_primary is False for c in candidates)
    if not reached(
        plan.keep is not None and blind and any(c.sees_primary is not False for c in candidates), "a blind candidate"
    ):
        return
    assert next(n for n in nodes if n.name == plan.keep).sees_primary is not False


@must_reach()
@PROPERTY
@given(_locked("locks"))
def test_locks_mode_choice_does_not_depend_on_order(nodes: list[NodeObservation]) -> None:
    a = plan_actions(nodes, GRACE, "locks")
    b = plan_actions(list(reversed(nodes)), GRACE, "locks")
    reached(bool(a.actions), "a release")
    assert (a.keep, a.actions, a.verdict) == (b.keep, b.actions, b.verdict)


def test_the_passive_lock_holder_of_the_tutorial_setup_is_released() -> None:
    """Seed tutorial + locks: the passive MaxScale kept the locks (recorded), the active one shows no
    primary. The keeper sees all three servers Running: release the passive holder's locks."""
    keeper = NodeObservation(
        "n1",
        "MASTER",
        150,
        True,
        True,
        OK,
        False,
        locks="majority_of_running",
        lock_primary=False,
        reaches_majority=True,
    )
    holder = NodeObservation(
        "n2",
        "BACKUP",
        100,
        False,
        True,
        OK,
        True,
        locks="majority_of_running",
        lock_primary=True,
        reaches_majority=True,
    )
    plan = plan_actions([keeper, holder], GRACE)
    assert [(a.node, a.kind) for a in plan.actions] == [("n2", "release")]
    assert plan_actions([keeper, replace(holder, lock_primary=False)], GRACE).actions == ()
    assert plan_actions([replace(keeper, relock_backoff=True), holder], GRACE).actions == ()


def test_a_tie_refusal_names_the_candidates_that_tie_not_the_highest_priority() -> None:
    """n1 has the top priority but cannot see the primary: n2 and n3 tie ahead of it, in both modes."""
    n1 = NodeObservation("n1", "MASTER", 150, True, True, OK, False, locks="majority_of_running", sees_primary=False)
    n2 = replace(n1, name="n2", priority=100, sees_primary=True)
    n3 = replace(n2, name="n3")
    for mode in ("passive", "locks"):
        plan = plan_actions([replace(n, mode=mode) for n in (n1, n2, n3)], GRACE, mode)
        assert (plan.verdict, plan.refusal) == ("refused", "priority_tie")
        assert "candidates n2, n3 share the highest VRRP priority 100 of those that may see the primary" in plan.reason


@pytest.mark.parametrize(
    "changes,why_not",
    [
        ({}, None),
        ({"holds_vip": False}, "does not hold the VIP as VRRP MASTER"),
        ({"vrrp_state": "BACKUP"}, "does not hold the VIP as VRRP MASTER"),
        ({"reaches_majority": None}, "does not see a majority of the servers Running"),
        ({"reaches_majority": False, "relock_backoff": True}, "does not see a majority of the servers Running"),
        ({"relock_backoff": True}, "is inside its no-relock back-off"),
    ],
)
def test_one_rule_says_whether_a_node_could_take_the_locks(changes: dict[str, Any], why_not: str | None) -> None:
    """The remediator asks it of its keeper, mxha notify of its peers."""
    taker = NodeObservation("n1", "MASTER", 150, True, True, OK, False, locks=LOCKS, reaches_majority=True)
    assert cannot_take_locks(replace(taker, **changes)) == why_not

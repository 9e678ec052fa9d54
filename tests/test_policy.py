"""Property tests of the remediation policy's safety rules over arbitrary node-state combinations."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from mxha.policy import NO_ANSWER, OK, UNKNOWN, NodeObservation, Plan, plan_actions

GRACE = 10.0

node_obs = st.builds(
    NodeObservation,
    name=st.sampled_from(["a", "b", "c", "d"]),
    vrrp_state=st.sampled_from([None, "INIT", "BACKUP", "MASTER", "FAULT", "STOP"]),
    priority=st.one_of(st.none(), st.sampled_from([50, 100, 150, 200])),
    holds_vip=st.one_of(st.none(), st.booleans()),
    check_ok=st.one_of(st.none(), st.booleans()),
    maxscale=st.sampled_from([OK, NO_ANSWER, UNKNOWN]),
    passive=st.one_of(st.none(), st.booleans()),
    locks=st.sampled_from([None, "none", "majority_of_all"]),
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


clusters = st.lists(node_obs, min_size=1, max_size=4, unique_by=lambda n: n.name).map(
    lambda nodes: [consistent(n) for n in nodes]
)


def apply(nodes: list[NodeObservation], plan: Plan) -> list[NodeObservation]:
    out = {n.name: n for n in nodes}
    for action in plan.actions:
        if action.kind in ("demote", "promote"):  # a release changes no mode
            out[action.node] = replace(out[action.node], passive=action.kind == "demote")
    return list(out.values())


def may_be_active(n: NodeObservation) -> bool:
    """Unknown mode counts as possibly active, and so does silence, unless it lasted the whole grace."""
    if n.maxscale == OK:
        return n.passive is not True
    return not n.counted_down(GRACE)


@settings(max_examples=400)
@given(clusters)
def test_a_promotion_leaves_exactly_one_possibly_active(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    if any(a.kind == "promote" for a in plan.actions):
        after = apply(nodes, plan)
        assert sum(may_be_active(n) for n in after) == 1


@settings(max_examples=400)
@given(clusters)
def test_with_a_keeper_every_other_reachable_node_ends_passive(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    if plan.keep is None or plan.verdict in ("refused", "waiting"):
        return
    for n in apply(nodes, plan):
        if n.name != plan.keep and n.mode_known:
            assert n.passive is True


@settings(max_examples=400)
@given(clusters)
def test_the_plan_never_leaves_none_active_where_one_was(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    before = sum(n.is_active for n in nodes)
    after = sum(n.is_active for n in apply(nodes, plan))
    assert after >= min(before, 1)


@settings(max_examples=400)
@given(clusters)
def test_a_node_of_unknown_mode_blocks_every_promotion(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    unknown = [n for n in nodes if n.name != plan.keep and n.maxscale == UNKNOWN]
    if unknown:
        assert not plan.promotes


@settings(max_examples=400)
@given(clusters)
def test_silence_shorter_than_the_grace_blocks_every_promotion(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    silent = [n for n in nodes if n.name != plan.keep and n.maxscale == NO_ANSWER and not n.counted_down(GRACE)]
    if silent:
        assert not plan.promotes
    assert set(plan.over_down) == {
        n.name for n in nodes if plan.promotes and n.name != plan.keep and n.counted_down(GRACE)
    }


@settings(max_examples=400)
@given(clusters)
def test_a_shared_top_priority_among_candidates_is_refused(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    candidates = sorted((n.priority or -1 for n in nodes if n.is_candidate), reverse=True)
    if len(candidates) > 1 and candidates[0] == candidates[1] and not any(n.config_sync for n in nodes):
        assert plan.verdict == "refused" and plan.refusal == "priority_tie" and plan.actions == ()


@settings(max_examples=250)
@given(clusters, st.sampled_from(["a", "b", "c", "d"]))
def test_a_state_from_the_wrong_node_refuses_the_cluster(nodes: list[NodeObservation], who: str) -> None:
    nodes = [replace(n, identity_ok=False) if n.name == who else n for n in nodes]
    plan = plan_actions(nodes, GRACE)
    if any(not n.identity_ok for n in nodes):
        assert plan.refusal == "node_identity" and plan.actions == ()


@settings(max_examples=400)
@given(clusters)
def test_the_plan_never_makes_more_nodes_active(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    before = sum(n.is_active for n in nodes)
    after = sum(n.is_active for n in apply(nodes, plan))
    assert after <= max(before, 1)


@settings(max_examples=400)
@given(clusters)
def test_demotions_before_promotions_and_at_most_one_promotion(nodes: list[NodeObservation]) -> None:
    kinds = [a.kind for a in plan_actions(nodes, GRACE).actions]
    assert kinds == sorted(kinds, key=lambda k: k != "demote")
    assert kinds.count("promote") <= 1


@settings(max_examples=400)
@given(clusters)
def test_never_promotes_a_node_without_the_vip_or_failing_its_check(nodes: list[NodeObservation]) -> None:
    by_name = {n.name: n for n in nodes}
    for action in plan_actions(nodes, GRACE).actions:
        if action.kind == "promote":
            n = by_name[action.node]
            assert n.holds_vip is True and n.check_ok is True and n.vrrp_state == "MASTER"


@settings(max_examples=400)
@given(clusters)
def test_no_candidate_or_config_sync_means_no_action(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    if not any(n.is_candidate for n in nodes) or any(n.config_sync for n in nodes):
        assert plan.actions == ()


@settings(max_examples=400)
@given(clusters)
def test_applying_twice_is_applying_once(nodes: list[NodeObservation]) -> None:
    once = apply(nodes, plan_actions(nodes, GRACE))
    second = plan_actions(once, GRACE)
    assert second.actions == () or second.verdict == "waiting"
    assert apply(once, second) == once or second.verdict == "waiting"


@settings(max_examples=250)
@given(clusters)
def test_choice_does_not_depend_on_order(nodes: list[NodeObservation]) -> None:
    a = plan_actions(nodes, GRACE)
    b = plan_actions(list(reversed(nodes)), GRACE)
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


@given(clusters, st.integers(0, 3))
def test_a_node_in_locks_mode_means_no_action_at_all(nodes: list[NodeObservation], which: int) -> None:
    """mode: locks keeps every MaxScale active; this policy only knows passive: it never acts there."""
    nodes = [replace(n, mode="locks") if i == which % len(nodes) else n for i, n in enumerate(nodes)]
    plan = plan_actions(nodes, GRACE)
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


@settings(max_examples=400)
@given(clusters, st.sampled_from(["passive", "locks"]))
def test_locks_are_released_only_by_a_lone_holder_to_a_keeper_that_can_take_them(
    nodes: list[NodeObservation], mode: str
) -> None:
    """Both modes: never on the keeper, never on a node not known to hold the locks, never when the
    keeper cannot lock them (no majority seen, or inside its no-relock back-off), at most one."""
    plan = plan_actions(nodes, GRACE, mode)
    released = _releases(plan)
    if not released:
        return
    by_name = {n.name: n for n in nodes}
    keep = by_name.get(plan.keep or "")
    assert len(released) == 1 and plan.keep not in released
    assert by_name[released[0]].lock_primary is True
    assert sum(1 for n in nodes if n.lock_primary is True) == 1
    assert _may_release_to(keep)


@settings(max_examples=400)
@given(clusters)
def test_locks_mode_never_changes_a_mode_and_acts_only_for_a_verified_keeper(nodes: list[NodeObservation]) -> None:
    nodes = [replace(n, mode="locks") for n in nodes]
    plan = plan_actions(nodes, GRACE, "locks")
    assert all(a.kind == "release" for a in plan.actions)
    if plan.actions:
        keep = next(n for n in nodes if n.name == plan.keep)
        assert keep.is_candidate and plan.verdict == "corrected"


@settings(max_examples=250)
@given(clusters, st.integers(0, 3))
def test_a_maxscale_contradicting_locks_mode_refuses_the_cluster(nodes: list[NodeObservation], which: int) -> None:
    """A MaxScale read passive, or with locks off, in a cluster configured mode: locks."""
    i = which % len(nodes)
    bad = replace(
        nodes[i],
        maxscale=OK,
        passive=True if which % 2 else False,
        locks="none" if which % 2 == 0 else "majority_of_all",
    )
    nodes = [replace(n, mode="locks") for n in nodes[:i] + [bad] + nodes[i + 1 :]]
    plan = plan_actions(nodes, GRACE, "locks")
    assert (plan.verdict, plan.refusal, plan.actions) == ("refused", "mode", ())


@settings(max_examples=250)
@given(clusters, st.sampled_from(["passive", "locks"]))
def test_a_candidate_that_cannot_see_the_primary_is_not_kept_over_one_that_may(
    nodes: list[NodeObservation], mode: str
) -> None:
    nodes = [replace(n, mode=mode) for n in nodes]
    plan = plan_actions(nodes, GRACE, mode)
    candidates = [n for n in nodes if n.is_candidate]
    if plan.keep is None or not any(c.sees_primary is not False for c in candidates):
        return
    assert next(n for n in nodes if n.name == plan.keep).sees_primary is not False


@settings(max_examples=250)
@given(clusters)
def test_locks_mode_choice_does_not_depend_on_order(nodes: list[NodeObservation]) -> None:
    nodes = [replace(n, mode="locks") for n in nodes]
    a = plan_actions(nodes, GRACE, "locks")
    b = plan_actions(list(reversed(nodes)), GRACE, "locks")
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

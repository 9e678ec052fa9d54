"""Property tests of the remediation policy's safety rules over arbitrary node-state combinations."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from mxha.remediator.policy import NodeObservation, Plan, plan_actions

GRACE = 10.0

node_obs = st.builds(
    NodeObservation,
    name=st.sampled_from(["a", "b", "c", "d"]),
    vrrp_state=st.sampled_from([None, "INIT", "BACKUP", "MASTER", "FAULT", "STOP"]),
    priority=st.one_of(st.none(), st.integers(0, 255)),
    holds_vip=st.one_of(st.none(), st.booleans()),
    check_ok=st.one_of(st.none(), st.booleans()),
    maxscale_up=st.booleans(),
    passive=st.one_of(st.none(), st.booleans()),
    locks=st.sampled_from([None, "none", "majority_of_all"]),
    config_sync=st.one_of(st.none(), st.booleans()),
    unreachable_for=st.one_of(st.none(), st.floats(0, 100)),
)


def consistent(n: NodeObservation) -> NodeObservation:
    """A node whose MaxScale does not answer has no known mode."""
    if not n.maxscale_up:
        return replace(n, passive=None)
    return replace(n, unreachable_for=None)


clusters = st.lists(node_obs, min_size=1, max_size=4, unique_by=lambda n: n.name).map(
    lambda nodes: [consistent(n) for n in nodes]
)


def apply(nodes: list[NodeObservation], plan: Plan) -> list[NodeObservation]:
    out = {n.name: n for n in nodes}
    for action in plan.actions:
        out[action.node] = replace(out[action.node], passive=action.kind == "demote")
    return list(out.values())


def may_be_active(n: NodeObservation) -> bool:
    """Unknown mode counts as possibly active, unless down past the grace."""
    if n.maxscale_up:
        return n.passive is not True
    return (n.unreachable_for or 0.0) < GRACE


@settings(max_examples=600)
@given(clusters)
def test_a_promotion_leaves_exactly_one_possibly_active(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    if any(a.kind == "promote" for a in plan.actions):
        after = apply(nodes, plan)
        assert sum(may_be_active(n) for n in after) == 1


@settings(max_examples=600)
@given(clusters)
def test_with_a_keeper_every_other_reachable_node_ends_passive(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    if plan.keep is None or plan.verdict == "refused":
        return
    for n in apply(nodes, plan):
        if n.name != plan.keep and n.maxscale_up and n.passive is not None:
            assert n.passive is True


@settings(max_examples=600)
@given(clusters)
def test_the_plan_never_makes_more_nodes_active(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    before = sum(n.is_active for n in nodes)
    after = sum(n.is_active for n in apply(nodes, plan))
    assert after <= max(before, 1)


@settings(max_examples=600)
@given(clusters)
def test_demotions_before_promotions_and_at_most_one_promotion(nodes: list[NodeObservation]) -> None:
    kinds = [a.kind for a in plan_actions(nodes, GRACE).actions]
    assert kinds == sorted(kinds, key=lambda k: k != "demote")
    assert kinds.count("promote") <= 1


@settings(max_examples=600)
@given(clusters)
def test_never_promotes_a_node_without_the_vip_or_failing_its_check(nodes: list[NodeObservation]) -> None:
    by_name = {n.name: n for n in nodes}
    for action in plan_actions(nodes, GRACE).actions:
        if action.kind == "promote":
            n = by_name[action.node]
            assert n.holds_vip is True and n.check_ok is True and n.vrrp_state == "MASTER"


@settings(max_examples=600)
@given(clusters)
def test_no_candidate_or_config_sync_means_no_action(nodes: list[NodeObservation]) -> None:
    plan = plan_actions(nodes, GRACE)
    if not any(n.is_candidate for n in nodes) or any(n.config_sync for n in nodes):
        assert plan.actions == ()


@settings(max_examples=600)
@given(clusters)
def test_applying_twice_is_applying_once(nodes: list[NodeObservation]) -> None:
    once = apply(nodes, plan_actions(nodes, GRACE))
    second = plan_actions(once, GRACE)
    assert second.actions == () or second.verdict == "waiting"
    assert apply(once, second) == once or second.verdict == "waiting"


@settings(max_examples=300)
@given(clusters)
def test_choice_does_not_depend_on_order(nodes: list[NodeObservation]) -> None:
    a = plan_actions(nodes, GRACE)
    b = plan_actions(list(reversed(nodes)), GRACE)
    assert (a.keep, a.actions) == (b.keep, b.actions)


def test_split_brain_keeps_the_higher_priority() -> None:
    nodes = [
        NodeObservation("n1", "MASTER", 150, True, True, True, False),
        NodeObservation("n2", "MASTER", 100, True, True, True, False),
    ]
    plan = plan_actions(nodes, GRACE)
    assert plan.keep == "n1" and [(a.node, a.kind) for a in plan.actions] == [("n2", "demote")]

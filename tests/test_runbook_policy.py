"""The runbooks' decision sentences, held to the policy that makes the decisions: each sentence an
operator reads about what the remediator does is quoted here with a situation that shows it, and
the policy must decide that way. (The split-brain runbook once said ties went to "the smallest node
name" while the policy refused them.)"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from conftest import REPO

from mxha.policy import OK, NodeObservation, Plan, plan_actions


def master(name: str, priority: int, sees_primary: bool | None = None) -> NodeObservation:
    """A node in a split brain: VRRP MASTER with the VIP, check passing, MaxScale active."""
    return NodeObservation(name, "MASTER", priority, True, True, OK, False, sees_primary=sees_primary)


def kept(plan: Plan, keep: str, demoted: set[str]) -> bool:
    return plan.keep == keep and {a.node for a in plan.actions if a.kind == "demote"} == demoted


CLAIMS: list[tuple[str, str, list[NodeObservation], Callable[[Plan], bool]]] = [
    (
        "MaxScaleVRRPSplitBrain",
        "It keeps the node whose MaxScale sees the primary server Running, then the one with the highest "
        "effective priority.",
        [master("n1", 150, sees_primary=False), master("n2", 100, sees_primary=True)],
        lambda p: kept(p, "n2", {"n1"}),
    ),
    (
        "MaxScaleVRRPSplitBrain",
        "It keeps the node whose MaxScale sees the primary server Running, then the one with the highest "
        "effective priority.",
        [master("n1", 100), master("n2", 150), master("n3", 50)],
        lambda p: kept(p, "n2", {"n1", "n3"}),
    ),
    (
        "MaxScaleVRRPSplitBrain",
        "When two share the best rank it refuses to choose (`priority_tie`, see MaxScaleRemediationRefused) "
        "and changes nothing.",
        [master("a", 100), master("b", 100)],
        lambda p: p.verdict == "refused" and p.refusal == "priority_tie" and not p.actions,
    ),
    (
        "MaxScaleRemediationRefused",
        "`priority_tie`: two nodes are VRRP MASTER with the VIP and a passing check (split brain) and share the "
        "highest effective priority.",
        [master("n1", 150), master("n2", 150), master("n3", 100)],
        lambda p: p.verdict == "refused" and p.refusal == "priority_tie" and not p.actions,
    ),
]


def section(name: str) -> str:
    text = (REPO / "alerts" / "runbooks.md").read_text()
    match = re.search(rf"^## {name}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"runbooks.md has no section {name}"
    return " ".join(match.group(1).split())


@pytest.mark.parametrize("alert,sentence,nodes,decided", CLAIMS, ids=lambda v: v if isinstance(v, str) else "")
def test_the_runbook_says_what_the_policy_does(
    alert: str, sentence: str, nodes: list[NodeObservation], decided: Callable[[Plan], bool]
) -> None:
    assert sentence in section(alert), f"the {alert} runbook no longer says: {sentence}"
    plan = plan_actions(nodes, unreachable_grace=15.0)
    assert decided(plan), plan


def test_no_runbook_claims_a_tie_break_the_policy_does_not_make() -> None:
    text = " ".join((REPO / "alerts" / "runbooks.md").read_text().split())
    assert "smallest node name" not in text and "lowest node name" not in text

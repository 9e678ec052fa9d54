"""The one builder of a node's observation (``mxha.node_observation``), shared by the remediator and
the notify hook's peers, on a real ``/state`` document (the golden one)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import REPO

from mxha.maxscale import MaxScaleStatus
from mxha.model import NodeState, NotifyView
from mxha.node_observation import maxscale_answer, observe_node, released_within, unknown
from mxha.policy import NO_ANSWER, OK, UNKNOWN

STATE = NodeState.from_json(json.loads((REPO / "tests/golden/state.json").read_text()))
EXPORTER_SILENT = replace(STATE, maxscale=replace(STATE.maxscale, up=False, passive=None, error_kind=NO_ANSWER))
EXPORTER_AUTH = replace(STATE, maxscale=replace(STATE.maxscale, up=False, passive=None, error_kind="auth"))


def direct(passive: bool | None) -> MaxScaleStatus:
    return MaxScaleStatus(passive, False, "24.02.4", "abc", None, ())


@pytest.mark.parametrize(
    "read,read_no_answer,state,state_no_answer,answer",
    [
        (direct(True), False, STATE, False, OK),
        (direct(None), False, STATE, False, UNKNOWN),  # answered without saying its mode
        (None, True, None, True, NO_ANSWER),  # nothing answered, the exporter neither
        (None, True, EXPORTER_SILENT, False, NO_ANSWER),  # its exporter saw it silent too
        (None, True, STATE, False, UNKNOWN),  # its exporter got an answer: not down
        (None, True, EXPORTER_AUTH, False, UNKNOWN),  # its exporter got a refusal: an answer
        (None, True, None, False, UNKNOWN),  # the /state answered with an error
        (None, False, None, True, UNKNOWN),  # the MaxScale answered with an error
    ],
)
def test_only_no_answer_counts_toward_down(
    read: MaxScaleStatus | None, read_no_answer: bool, state: NodeState | None, state_no_answer: bool, answer: str
) -> None:
    assert maxscale_answer(read, read_no_answer, state, state_no_answer) == answer


def test_a_node_read_whole() -> None:
    obs = observe_node("node1", STATE, direct(False), maxscale=OK)
    assert (obs.vrrp_state, obs.priority, obs.holds_vip, obs.check_ok) == ("MASTER", 150, True, True)
    assert (obs.maxscale, obs.passive, obs.identity_ok, obs.mode, obs.config_sync) == (
        OK,
        False,
        True,
        "passive",
        False,
    )
    assert obs.is_candidate and obs.is_active


def test_the_exporters_view_stands_for_a_maxscale_not_read_directly() -> None:
    obs = observe_node("node1", STATE, None, maxscale=OK, exporter_view=True)
    assert (obs.passive, obs.locks) == (STATE.maxscale.passive, STATE.maxscale.locks)
    assert observe_node("node1", STATE, None, maxscale=UNKNOWN).passive is None  # not asked, not the exporter's


def test_a_state_naming_another_node_and_an_unread_one() -> None:
    assert observe_node("node2", STATE, direct(True), maxscale=OK).identity_ok is False
    assert observe_node("node2", None, None, maxscale=NO_ANSWER) == replace(unknown("node2"), maxscale=NO_ANSWER)


def test_the_hook_leaves_out_what_its_decision_does_not_weigh() -> None:
    obs = observe_node("node1", STATE, direct(False), maxscale=OK, plan_facts=False)
    assert (obs.mode, obs.lock_primary, obs.sees_primary, obs.reaches_majority) == (None, None, None, None)


def test_a_hooks_release_is_inside_the_back_off_for_its_length() -> None:
    notify = NotifyView(999.0, "BACKUP", True, True, "passive=true set", locks_released_at=1000.0)
    released = replace(STATE, notify=notify)
    assert released_within(released, 60.0, 1059.0) and not released_within(released, 60.0, 1060.0)
    assert not released_within(STATE, 60.0, 1059.0) and not released_within(None, 60.0, 0.0)

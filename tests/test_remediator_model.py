"""The remediator's documents (``mxha.remediator_model``): written and read through one model each."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxha.policy import NO_ANSWER, OK, UNKNOWN, NodeObservation
from mxha.remediator_model import (
    ActionTaken,
    AuditRecord,
    ClusterGuardrails,
    DocumentFormatError,
    Guardrails,
    NodeReading,
    RemediatorStatus,
    UnsettledWriteSent,
)

_WALL = st.floats(1.7e9, 1.8e9)
_NODE = st.sampled_from(["node1", "node2", "node3"])
guardrails = st.builds(
    Guardrails,
    st.one_of(st.none(), st.sampled_from(["r1", "r2"])),
    st.dictionaries(
        st.sampled_from(["mx-prod", "lab"]),
        st.builds(
            ClusterGuardrails,
            st.lists(st.builds(ActionTaken, _NODE, _WALL), max_size=3).map(tuple),
            st.one_of(st.none(), _WALL),
            st.dictionaries(_NODE, _WALL),
            st.lists(
                st.builds(UnsettledWriteSent, _NODE, st.sampled_from(["demote", "promote"]), _WALL), max_size=2
            ).map(tuple),
        ),
        max_size=2,
    ),
)


@given(guardrails)
def test_guardrails_round_trip_through_json(doc: Guardrails) -> None:
    assert Guardrails.from_json(json.loads(json.dumps(doc.to_json()))) == doc


def test_a_guardrails_reader_skips_what_it_cannot_use_and_keeps_the_rest() -> None:
    doc: dict[str, Any] = {
        "replica": "r2",
        "future_key": 1,
        "clusters": {
            "c": {
                "actions": [{"node": "a", "at": 5}, {"node": 3, "at": 5}, "x", {"node": "b"}],
                "circuit_open_until": "soon",
                "answered": {"a": 7.5, "b": "never"},
                "unsettled": [{"node": "a", "action": "promote", "until": 9}, {"node": "b", "until": 9}],
            },
            "broken": [],
        },
    }
    read = Guardrails.from_json(doc)
    assert read == Guardrails(
        "r2",
        {
            "c": ClusterGuardrails(
                (ActionTaken("a", 5.0),), None, {"a": 7.5}, (UnsettledWriteSent("a", "promote", 9.0),)
            )
        },
    )


@pytest.mark.parametrize("doc", [None, [], {"replica": "r1"}, {"clusters": []}])
def test_what_is_not_a_guardrails_document_is_refused_whole(doc: Any) -> None:
    with pytest.raises(DocumentFormatError, match="not a /guardrails document"):
        Guardrails.from_json(doc)


_MAYBE_BOOL = st.sampled_from([None, True, False])
_TEXT = st.one_of(st.none(), st.text(max_size=12))
readings = st.builds(
    NodeReading,
    st.builds(
        NodeObservation,
        _NODE,
        st.sampled_from([None, "MASTER", "BACKUP", "FAULT"]),
        st.one_of(st.none(), st.integers(0, 255)),
        _MAYBE_BOOL,
        _MAYBE_BOOL,
        maxscale=st.sampled_from([OK, NO_ANSWER, UNKNOWN]),
        passive=_MAYBE_BOOL,
        locks=st.sampled_from([None, "none", "majority_of_all"]),
        config_sync=_MAYBE_BOOL,
        down_for=st.one_of(st.none(), st.floats(0, 100)),
        identity_ok=st.booleans(),
        mode=st.sampled_from([None, "passive", "locks"]),
        lock_primary=_MAYBE_BOOL,
        sees_primary=_MAYBE_BOOL,
        reaches_majority=_MAYBE_BOOL,
        relock_backoff=st.booleans(),
    ),
    st.sampled_from(["ok", "no_answer", "error", "budget"]),
    _TEXT,
    st.one_of(st.none(), _NODE),
    st.sampled_from([None, "up", "no_answer", "error"]),
    _TEXT,
    st.sampled_from([None, "no_answer", "auth", "timeout"]),
    st.lists(st.sampled_from(["mon-a", "mon-b"]), max_size=2).map(tuple),
)


@given(readings)
def test_a_node_reading_round_trips_through_json(reading: NodeReading) -> None:
    assert NodeReading.from_json(json.loads(json.dumps(reading.to_json()))) == reading


def test_a_node_reading_is_one_flat_object_the_lab_and_the_runbooks_read() -> None:
    """The document /status (``last_observed``) and the audit trail (``observed``) have always shown:
    the observation's keys, then how each source answered, side by side."""
    reading = NodeReading(
        NodeObservation("node2", "BACKUP", 100, False, True, maxscale=OK, passive=True, locks="none"),
        "ok",
        state_node="node2",
        exporter_maxscale="up",
        monitors_with_locks=("mon",),
    )
    assert json.dumps(reading.to_json()) == json.dumps(
        {
            "name": "node2",
            "vrrp_state": "BACKUP",
            "priority": 100,
            "holds_vip": False,
            "check_ok": True,
            "maxscale": "ok",
            "passive": True,
            "locks": "none",
            "config_sync": None,
            "down_for": None,
            "identity_ok": True,
            "mode": None,
            "lock_primary": None,
            "sees_primary": None,
            "reaches_majority": None,
            "relock_backoff": False,
            "state_status": "ok",
            "state_error": None,
            "state_node": "node2",
            "exporter_maxscale": "up",
            "maxscale_error": None,
            "maxscale_error_kind": None,
            "monitors_with_locks": ["mon"],
        }
    )


@pytest.mark.parametrize("doc", [None, [], {"name": "a"}, {"name": "a", "state_status": "ok"}, {"state_status": "ok"}])
def test_what_is_not_a_node_reading_is_refused(doc: Any) -> None:
    with pytest.raises(DocumentFormatError, match="not a node reading"):
        NodeReading.from_json(doc)


def test_an_audit_record_round_trips_and_a_cut_line_is_skipped() -> None:
    node1 = NodeReading(NodeObservation("node1", "MASTER", 150, True, True, maxscale=OK, passive=False), "ok")
    record = AuditRecord(
        1.75e9,
        "mx-prod",
        [{"status": "firing", "alertname": "MaxScaleMultipleActive"}],
        False,
        [node1],
        {"verdict": "corrected", "reason": "keep node1 active: demote node2", "keep": "node1", "actions": []},
        None,
        [{"node": "node2", "action": "demote", "result": "success", "reason": "", "time": 1.75e9}],
        200,
        False,
        "r1",
        None,
    )
    line = record.to_line()
    assert line.endswith("\n") and json.loads(line)["plan"]["verdict"] == "corrected"
    text = line + '{"cluster": "mx-prod", "pla' + "\n" + line
    assert AuditRecord.read_lines(text) == [record, record]


def test_a_status_is_read_back_as_it_was_written() -> None:
    from mxha.remediator.config import parse_remediator_config
    from mxha.remediator.engine import Reconciler

    node = {"state_url": "http://127.0.0.1:1/state", "maxscale": {"url": "http://127.0.0.1:1"}}
    cfg = parse_remediator_config(
        {"allow_no_auth": True, "clusters": {"c": {"nodes": [{"name": "a", **node}, {"name": "b", **node}]}}}
    )
    reconciler = Reconciler(cfg)
    try:
        status = reconciler.status()
        doc = json.loads(json.dumps(status.to_json()))
        assert set(doc) == {"dry_run", "clusters"} and "lock_store" not in doc["clusters"]["c"]
        assert RemediatorStatus.from_json(doc) == status
        assert status.clusters["c"].nodes == ["a", "b"] and status.clusters["c"].circuit.open is False
    finally:
        reconciler.close()


@pytest.mark.parametrize("doc", [None, {"clusters": {"c": {"nodes": []}}}, {"clusters": {}, "peers": [1]}])
def test_what_is_not_a_status_document_is_refused(doc: Any) -> None:
    with pytest.raises(DocumentFormatError):
        RemediatorStatus.from_json(doc)


def test_a_decision_record_shows_the_plan_as_it_was_and_what_became_of_it() -> None:
    from dataclasses import asdict

    from mxha.policy import Action, Plan
    from mxha.remediator.runtime import VERDICTS, DecisionRecord

    plan = Plan(
        "corrected", "keep n1 active: demote n2, promote n1", "n1", (Action("n2", "demote"), Action("n1", "promote"))
    )
    record = DecisionRecord.of(plan)
    assert record.to_json() == {**asdict(plan), "actions": [asdict(a) for a in plan.actions]}
    refused = record.noted("a note").instead("cooldown", "cooldown: not running any of it; wanted: " + plan.reason)
    assert (refused.verdict, refused.notes, refused.actions) == ("cooldown", ("a note",), plan.actions)
    assert record.verdict == "corrected"  # replaced whole, never edited
    # every refusal the guards and the lock can give is a verdict the record knows
    refusals = ("cooldown", "circuit_open", "unsettled_write", "peer_sees_node", "lock_busy", "lock_unavailable")
    assert {r.replace("_", "-") for r in refusals} <= set(VERDICTS)

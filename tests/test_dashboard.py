"""The Grafana dashboard's conventions (its queries run against a real Prometheus in test_lab_e2e)."""

from __future__ import annotations

import json
import re
from typing import Any

from conftest import REPO

from mxha.dashboards.build import FLEET_PANELS, SCHEMA_VERSION, UID, render

DASH: dict[str, Any] = json.loads((REPO / "dashboards" / "mxha-pair.json").read_text())
PANELS = [p for p in DASH["panels"] if p["type"] != "row"]


def test_generated_file_is_current() -> None:
    assert (REPO / "dashboards" / "mxha-pair.json").read_text() == render(), "run `make rules` and commit"


def test_identity_and_variables() -> None:
    assert DASH["uid"] == UID and DASH["schemaVersion"] == SCHEMA_VERSION
    variables = {v["name"]: v for v in DASH["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "label_values(" in variables["cluster"]["definition"] and "cluster" in variables["cluster"]["definition"]
    assert "__inputs" not in DASH


def test_every_panel_uses_the_datasource_variable_and_has_unit_title_description() -> None:
    for panel in PANELS:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            if panel["id"] in FLEET_PANELS:  # every cluster at once: the point of the fleet row
                assert "$cluster" not in target["expr"] and "by (cluster" in target["expr"], panel["title"]
            else:
                assert 'cluster="$cluster"' in target["expr"], panel["title"]


def test_rates_use_rate_interval() -> None:
    for panel in PANELS:
        for target in panel["targets"]:
            for window in re.findall(r"(?:rate|increase|irate)\([^\[]+\[([^\]]+)\]", target["expr"]):
                assert window == "$__rate_interval", panel["title"]


def test_the_pair_at_a_glance() -> None:
    by_title = {p["title"]: p for p in PANELS}
    timelines = {p["title"] for p in PANELS if p["type"] == "state-timeline"}
    assert {"VRRP state (governing instance)", "VIP present", "MaxScale mode"} <= timelines
    steps = by_title["Active MaxScales"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps] == [("red", None), ("green", 1), ("red", 2)]
    assert "VIP holder" in by_title and "Remediator actions" in by_title and "Firing alerts" in by_title
    ids = [p["id"] for p in DASH["panels"]]
    assert len(ids) == len(set(ids))

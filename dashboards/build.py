"""The Grafana dashboard of a MaxScale pair, built as data: ``python -m mxha.dashboards.build``.

Conventions (tested): a ``datasource`` variable that every panel and target uses, a ``cluster``
variable, stable ``uid``, pinned ``schemaVersion``, units and descriptions on every panel,
``$__rate_interval`` in every rate()/increase().
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

UID = "mxha-pair"
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
C = 'cluster="$cluster"'
FLEET_PANELS = (21, 22)  # the fleet row: every cluster, never filtered by $cluster
OUT = Path(__file__).with_name("mxha-pair.json")
# green at exactly 1 (one active MaxScale, one VRRP master), red at 0 and at 2 or more
EXACTLY_ONE = {
    "mode": "absolute",
    "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}, {"color": "red", "value": 2}],
}


def _target(expr: str, legend: str = "", instant: bool = False, ref: str = "A") -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t.update(instant=True, range=False, format="table")
    return t


def _mappings(values: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "value",
            "options": {
                str(k): {"text": text, "color": color, "index": i}
                for i, (k, (text, color)) in enumerate(values.items())
            },
        }
    ]


def _row(pid: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


def _panel(
    pid: int,
    kind: str,
    title: str,
    description: str,
    grid: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    unit: str = "none",
    **extra: Any,
) -> dict[str, Any]:
    x, y, w, h = grid
    panel: dict[str, Any] = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, **extra.pop("defaults", {})}, "overrides": []},
        "options": extra.pop("options", {}),
    }
    panel.update(extra)
    return panel


VRRP_STATE_EXPR = (
    f'max by (instance) (mxha_vrrp_state{{{C},state="BACKUP"}} * 1 '
    f'+ ignoring(state) mxha_vrrp_state{{{C},state="MASTER"}} * 2 '
    f'+ ignoring(state) mxha_vrrp_state{{{C},state="FAULT"}} * 3 '
    f'+ ignoring(state) mxha_vrrp_state{{{C},state="STOP"}} * 4 '
    f'and on (instance, vrrp_instance) max by (instance, vrrp_instance) (mxha_vip_present{{{C},governing="true"}}))'
)
DISTINCT_PRIMARIES_EXPR = f"count by (monitor) (count by (monitor, server) (mxha_maxscale_monitor_master{{{C}}} == 1))"
# Down 0, Running 1, Slave (and Running) 2, Master (and Running) 3
SERVER_VIEW_EXPR = (
    f'max by (instance, server) (mxha_maxscale_server_state{{{C},state="Running"}} '
    f'+ ignoring(state) mxha_maxscale_server_state{{{C},state="Slave"}} '
    f'+ ignoring(state) mxha_maxscale_server_state{{{C},state="Master"}} * 2)'
)
# 1 lock primary, 0 secondary, 2 locks off
LOCK_PRIMARY_EXPR = (
    f"max by (instance, monitor) (mxha_maxscale_monitor_primary{{{C}}}) "
    f'or max by (instance, monitor) (mxha_maxscale_monitor_locks_mode{{{C},mode="none"}}) * 2'
)
MODE_EXPR = f"max by (instance) (mxha_maxscale_passive{{{C}}}) or max by (instance) (mxha_maxscale_up{{{C}}} == 0) + 2"


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = [
        _row(1, "The pair", 0),
        _panel(
            2,
            "stat",
            "VIP holder",
            "Nodes whose kernel has the governing VIP now. Exactly one is healthy.",
            (0, 1, 6, 4),
            [_target(f'max by (instance) (mxha_vip_present{{{C},governing="true"}}) == 1', "{{instance}}")],
            options={"textMode": "name", "colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
            defaults={"color": {"mode": "fixed", "fixedColor": "green"}, "noValue": "nobody"},
        ),
        _panel(
            3,
            "stat",
            "Active MaxScales",
            "MaxScales with passive=false. Green at exactly 1.",
            (6, 1, 6, 4),
            [_target(f"sum(cluster:mxha_maxscale_active:sum{{{C}}})")],
            options={"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
            defaults={"thresholds": EXACTLY_ONE},
        ),
        _panel(
            4,
            "stat",
            "VRRP masters",
            "Nodes in VRRP MASTER per vrid; more than one is a split brain.",
            (12, 1, 6, 4),
            [_target(f"cluster_vrid:mxha_vrrp_masters:sum{{{C}}}", "vrid {{vrid}}")],
            options={"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
            defaults={"thresholds": EXACTLY_ONE},
        ),
        _panel(
            5,
            "stat",
            "Health checks",
            "Per node: the MaxScale health check keepalived relies on.",
            (18, 1, 6, 4),
            [_target(f"mxha_check_success{{{C}}}", "{{instance}}")],
            options={"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
            defaults={"mappings": _mappings({0: ("failing", "red"), 1: ("passing", "green")})},
        ),
        _row(6, "Per node", 5),
        _panel(
            7,
            "state-timeline",
            "VRRP state (governing instance)",
            "keepalived's state of the instance that governs MaxScale's mode, per node.",
            (0, 6, 24, 5),
            [_target(VRRP_STATE_EXPR, "{{instance}}")],
            defaults={
                "mappings": _mappings(
                    {
                        0: ("INIT", "purple"),
                        1: ("BACKUP", "blue"),
                        2: ("MASTER", "green"),
                        3: ("FAULT", "red"),
                        4: ("STOP", "orange"),
                    }
                )
            },
        ),
        _panel(
            8,
            "state-timeline",
            "VIP present",
            "Whether the node's kernel holds the governing VIP.",
            (0, 11, 24, 5),
            [_target(f'max by (instance) (mxha_vip_present{{{C},governing="true"}})', "{{instance}}")],
            defaults={"mappings": _mappings({0: ("absent", "transparent"), 1: ("held", "green")})},
        ),
        _panel(
            9,
            "state-timeline",
            "MaxScale mode",
            "active, passive, or down (REST API not answering).",
            (0, 16, 24, 5),
            [_target(MODE_EXPR, "{{instance}}")],
            defaults={"mappings": _mappings({0: ("active", "green"), 1: ("passive", "blue"), 2: ("down", "red")})},
        ),
        _row(10, "Changes", 21),
        _panel(
            11,
            "timeseries",
            "VRRP transitions",
            "Times each node became VRRP MASTER, per interval.",
            (0, 22, 12, 7),
            [
                _target(
                    f"sum by (instance) (increase(mxha_vrrp_became_master_total{{{C}}}[$__rate_interval]))",
                    "{{instance}}",
                )
            ],
            unit="short",
        ),
        _panel(
            12,
            "timeseries",
            "Remediator actions",
            "Demotions and promotions by the remediator, by outcome.",
            (12, 22, 12, 7),
            [
                _target(
                    f"sum by (node, action, result) (increase(mxha_remediator_actions_total{{{C}}}[$__rate_interval]))",
                    "{{node}} {{action}} {{result}}",
                )
            ],
            unit="short",
        ),
        _panel(
            13,
            "stat",
            "Remediator circuit",
            "Open: the remediator stopped acting after too many corrections.",
            (0, 29, 6, 5),
            [_target(f"max(mxha_remediator_circuit_open{{{C}}})")],
            options={"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
            defaults={"mappings": _mappings({0: ("closed", "green"), 1: ("OPEN", "red")})},
        ),
        _panel(
            14,
            "table",
            "Firing alerts",
            "maxscale-ha alerts firing now for this cluster.",
            (6, 29, 18, 5),
            [_target(f'ALERTS{{{C},alertstate="firing",alertname=~"MaxScale.*"}}', instant=True)],
            options={"showHeader": True},
        ),
        _row(15, "Database view (what each MaxScale believes)", 34),
        _panel(
            16,
            "stat",
            "Primaries named",
            "How many different primary servers the MaxScales of this cluster name, per monitor "
            "(monitor_diagnostics.master). 1 is agreement; 2 or more means writes can go to two servers.",
            (0, 35, 6, 6),
            [_target(DISTINCT_PRIMARIES_EXPR, "{{monitor}}")],
            options={"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
            defaults={"thresholds": EXACTLY_ONE},
        ),
        _panel(
            17,
            "table",
            "Primary named by each MaxScale",
            "The server each MaxScale's monitor calls the primary, now.",
            (6, 35, 18, 6),
            [_target(f"max by (instance, monitor, server) (mxha_maxscale_monitor_master{{{C}}})", instant=True)],
            options={"showHeader": True},
        ),
        _panel(
            18,
            "state-timeline",
            "Servers as each MaxScale sees them",
            "Each server's state in each MaxScale: Down, Running, Slave or Master. A server Down for one "
            "MaxScale and Running for another means one is cut off from it; no Master at the VIP holder "
            "means writes through the VIP fail.",
            (0, 41, 24, 8),
            [_target(SERVER_VIEW_EXPR, "{{instance}}: {{server}}")],
            defaults={
                "mappings": _mappings(
                    {0: ("Down", "red"), 1: ("Running", "yellow"), 2: ("Slave", "blue"), 3: ("Master", "green")}
                )
            },
        ),
        _panel(
            19,
            "state-timeline",
            "Cooperative-lock primary",
            "Which MaxScale holds the cooperative monitoring locks (the one that may fail over), or that "
            "locks are off. No primary while locks are on: nobody fails over.",
            (0, 49, 24, 5),
            [_target(LOCK_PRIMARY_EXPR, "{{instance}} {{monitor}}")],
            defaults={
                "mappings": _mappings(
                    {0: ("secondary", "blue"), 1: ("LOCK PRIMARY", "green"), 2: ("locks off", "transparent")}
                )
            },
        ),
        _row(20, "Fleet (every cluster this data source sees, whatever $cluster is)", 54),
        _panel(
            21,
            "table",
            "Clusters with alerts firing",
            "Every cluster with a maxscale-ha alert firing now, by alert and severity: the clusters to look at "
            "first. Empty is healthy. Needs one Prometheus (or a federation/long-term store) that sees every "
            "cluster.",
            (0, 55, 12, 8),
            [
                _target(
                    'count by (cluster, alertname, severity) (ALERTS{alertstate="firing",alertname=~"MaxScale.*"})',
                    instant=True,
                )
            ],
            options={"showHeader": True, "sortBy": [{"displayName": "cluster"}]},
        ),
        _panel(
            22,
            "table",
            "Every cluster at a glance",
            "Per cluster: active MaxScales (passive mode: 1 is healthy; locks mode: every node), VRRP masters "
            "and governing-VIP holders (1 each is healthy).",
            (12, 55, 12, 8),
            [
                _target("max by (cluster) (cluster:mxha_maxscale_active:sum)", "active", instant=True, ref="A"),
                _target("max by (cluster) (cluster_vrid:mxha_vrrp_masters:sum)", "masters", instant=True, ref="B"),
                _target("max by (cluster) (cluster:mxha_governing_vip_holders:sum)", "vip", instant=True, ref="C"),
            ],
            options={"showHeader": True},
            transformations=[{"id": "merge", "options": {}}],
        ),
        _row(23, "Setup hazards (mxha doctor's rules, as each exporter last found them)", 63),
        _panel(
            24,
            "table",
            "Setup hazards per node",
            "Each setup hazard a node's exporter reports now (mxha_setup_hazard), with its severity: setups "
            "that work today and fail on the day it matters. Empty is healthy. The evidence is in the node's "
            "/state; `mxha doctor --peers` adds the cluster-wide ones; the runbook's MaxScaleSetupHazard "
            "section says what to change.",
            (0, 64, 24, 6),
            [_target(f"max by (instance, hazard, severity) (mxha_setup_hazard{{{C}}})", instant=True)],
            options={"showHeader": True, "sortBy": [{"displayName": "severity"}]},
        ),
    ]
    return {
        "uid": UID,
        "title": "MaxScale pair (maxscale-ha)",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "tags": ["maxscale", "keepalived", "maxscale-ha"],
        "timezone": "",
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "cluster",
                    "label": "Cluster",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": "label_values(mxha_maxscale_up, cluster)", "refId": "cluster"},
                    "definition": "label_values(mxha_maxscale_up, cluster)",
                    "refresh": 2,
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                    "sort": 1,
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Write the Grafana dashboard of a MaxScale pair.")
    # relative to where it runs: an installed package's own folder (site-packages) is no place to write
    parser.add_argument(
        "--out", default=f"dashboards/{OUT.name}", help=f"output file (default: ./dashboards/{OUT.name})"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The alert rules: promtool lint and unit tests (fires / near miss for every alert, both variants,
two clusters), the generated files match their source, runbooks cover every alert."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, requires_program

from mxha.alerts.generate import FILES, render
from mxha.alerts.rules import VARIANTS, Durations, build_rules

pytestmark = requires_program("promtool")
CONTRACT_ALERTS = {
    "MaxScaleVRRPSplitBrain": "critical",
    "MaxScaleVIPConflict": "critical",
    "MaxScaleVIPMissing": "critical",
    "MaxScaleMultipleActive": "critical",
    "MaxScaleMasterPassive": "critical",
    "MaxScaleBackupActive": "warning",
    "MaxScaleActiveNodeDown": "critical",
    "MaxScaleHealthCheckFailing": "warning",
    "MaxScaleExporterDown": "warning",
    "MaxScaleConfigSyncPassiveHazard": "warning",
    "MaxScaleRemediationFailing": "critical",
    "MaxScaleRemediationRefused": "warning",
    "MaxScaleRemediatorNoLockQuorum": "warning",
    "MaxScalePrimaryDisagreement": "critical",
    "MaxScaleServerViewsDiffer": "warning",
    "MaxScaleVIPHolderSeesNoPrimary": "critical",
    "MaxScaleMultiplePrimaryMonitors": "critical",
    "MaxScaleNoPrimaryMonitor": "critical",
    "MaxScalePassiveHoldsLocks": "warning",
    "MaxScaleLockPrimaryNotVIPHolder": "warning",
    "MaxScaleSetupHazard": "{{ $labels.severity }}",  # the hazard's severity: warning or critical
}
JOB = "mxha-exporter"
STALE = -1.0e300  # a staleness marker: the series ends there (a missing sample "_" does not end it)
VIP = "198.51.100.100"


def seconds(d: str) -> int:
    m = re.fullmatch(r"(\d+)(s|m|h)", d)
    assert m, d
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


def alert_rules(d: Durations) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in build_rules(d)["groups"][1]["rules"]}


def render_template(text: str, labels: dict[str, str], value: str) -> str:
    text = text.replace("{{ $value }}", value)
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)


class Case:
    """A promtool test case written in scrape steps, so one case serves both variants."""

    def __init__(self, d: Durations, steps: int = 0) -> None:
        self.d = d
        self.i = seconds(d.scrape_interval)
        self.steps = steps or 40
        self.series: list[dict[str, str]] = []
        self.checks: list[dict[str, Any]] = []

    def for_steps(self, alert: str) -> int:
        rule = alert_rules(self.d)[alert]
        return seconds(rule["for"]) // self.i if "for" in rule else 0

    def add(self, metric: str, labels: dict[str, str], values: list[float | None]) -> Case:
        body = ",".join(f'{k}="{v}"' for k, v in labels.items())
        padded = values + [values[-1]] * (self.steps - len(values))
        text = " ".join("_" if v is None else "stale" if v == STALE else f"{v:g}" for v in padded)
        self.series.append({"series": f"{metric}{{{body}}}", "values": text})
        return self

    def node(self, metric: str, node: str, values: list[float | None], cluster: str = "c1", **extra: str) -> Case:
        return self.add(metric, {"cluster": cluster, "instance": f"{node}:9843", "job": JOB, **extra}, values)

    def expect(self, alert: str, step: int, fired: list[tuple[dict[str, str], str]]) -> Case:
        rule = alert_rules(self.d)[alert]
        exp = []
        for labels, value in fired:
            full = {**labels, "severity": render_template(rule["labels"]["severity"], labels, value)}
            exp.append(
                {
                    "exp_labels": full,
                    "exp_annotations": {k: render_template(v, full, value) for k, v in rule["annotations"].items()},
                }
            )
        self.checks.append({"eval_time": f"{step * self.i}s", "alertname": alert, "exp_alerts": exp})
        return self

    def to_test(self) -> dict[str, Any]:
        return {"interval": f"{self.i}s", "input_series": self.series, "alert_rule_test": self.checks}


def vrrp(case: Case, node: str, values: list[float | None], cluster: str = "c1") -> Case:
    return case.node(
        "mxha_vrrp_state", node, values, cluster, state="MASTER", vrid="51", vrrp_instance="VI_1", interface="eth0"
    )


def vip(case: Case, node: str, values: list[float | None], cluster: str = "c1", governing: str = "true") -> Case:
    return case.node("mxha_vip_present", node, values, cluster, vip=VIP, vrrp_instance="VI_1", governing=governing)


def passive(case: Case, node: str, values: list[float | None], cluster: str = "c1") -> Case:
    return case.node("mxha_maxscale_passive", node, values, cluster)


def cases(d: Durations) -> list[Case]:
    out = []
    c1 = {"cluster": "c1"}

    def late(alert: str, case: Case) -> int:
        return case.for_steps(alert) + 3

    # split brain: fires; a VRRP transition shorter than for: does not
    c = Case(d)
    vrrp(c, "node1", [1])
    vrrp(c, "node2", [1])
    out.append(c.expect("MaxScaleVRRPSplitBrain", late("MaxScaleVRRPSplitBrain", c), [({**c1, "vrid": "51"}, "2")]))
    c = Case(d)
    f = c.for_steps("MaxScaleVRRPSplitBrain")
    vrrp(c, "node1", [1])
    vrrp(c, "node2", [1] * f + [0])
    out.append(c.expect("MaxScaleVRRPSplitBrain", f, []).expect("MaxScaleVRRPSplitBrain", f + 3, []))

    # two clusters: one cluster's split brain never fires for the other
    c = Case(d)
    for cl in ("a", "b"):
        vrrp(c, "node1", [1], cl)
        vrrp(c, "node2", [1] if cl == "a" else [0], cl)
    out.append(
        c.expect("MaxScaleVRRPSplitBrain", late("MaxScaleVRRPSplitBrain", c), [({"cluster": "a", "vrid": "51"}, "2")])
    )

    # VIP conflict / missing
    c = Case(d)
    vip(c, "node1", [1])
    vip(c, "node2", [1])
    out.append(c.expect("MaxScaleVIPConflict", late("MaxScaleVIPConflict", c), [({**c1, "vip": VIP}, "2")]))
    c = Case(d)
    vip(c, "node1", [1, 1, 1, 1, 0])
    vip(c, "node2", [0, 0, 0, 1, 1])  # one scrape of overlap during a failover
    out.append(c.expect("MaxScaleVIPConflict", 6, []).expect("MaxScaleVIPMissing", 6, []))
    c = Case(d)
    vip(c, "node1", [0])
    vip(c, "node2", [0])
    out.append(c.expect("MaxScaleVIPMissing", late("MaxScaleVIPMissing", c), [({**c1, "vip": VIP}, "0")]))
    c = Case(d)
    f = c.for_steps("MaxScaleVIPMissing")
    vip(c, "node1", [1, 1] + [0] * (f + 5))
    vip(c, "node2", [0, 0] + [0] * (f - 1) + [1])  # the VIP moves within for:
    out.append(c.expect("MaxScaleVIPMissing", f + 4, []))
    # a second, non-governing VRRP instance is still checked for conflicts and missing VIPs
    c = Case(d)
    c.node("mxha_vip_present", "node1", [1], vip="198.51.100.101", vrrp_instance="VI_2", governing="false")
    c.node("mxha_vip_present", "node2", [1], vip="198.51.100.101", vrrp_instance="VI_2", governing="false")
    out.append(
        c.expect("MaxScaleVIPConflict", late("MaxScaleVIPConflict", c), [({**c1, "vip": "198.51.100.101"}, "2")])
    )

    # multiple active
    c = Case(d)
    passive(c, "node1", [0])
    passive(c, "node2", [0])
    out.append(c.expect("MaxScaleMultipleActive", late("MaxScaleMultipleActive", c), [(c1, "2")]))
    c = Case(d)
    passive(c, "node1", [0])
    passive(c, "node2", [1, 0, 1])  # notify flips it back within a scrape
    out.append(c.expect("MaxScaleMultipleActive", 5, []))

    # master passive: the VIP holder's MaxScale is passive and nobody active serves it
    c = Case(d)
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    passive(c, "node1", [1])
    passive(c, "node2", [1])
    out.append(c.expect("MaxScaleMasterPassive", late("MaxScaleMasterPassive", c), [(c1, "1")]))
    c = Case(d)
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    passive(c, "node1", [1, 0])  # notify catches up one scrape later
    passive(c, "node2", [1])
    out.append(c.expect("MaxScaleMasterPassive", 5, []).expect("MaxScaleBackupActive", 5, []))
    c = Case(d)  # a second VRRP instance held by a passive node is not "the VIP"
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    c.node("mxha_vip_present", "node2", [1], vip="198.51.100.101", vrrp_instance="VI_2", governing="false")
    passive(c, "node1", [0])
    passive(c, "node2", [1])
    out.append(c.expect("MaxScaleMasterPassive", 6, []).expect("MaxScaleBackupActive", 6, []))

    # backup active
    c = Case(d)
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    passive(c, "node1", [0])
    passive(c, "node2", [0])
    node2 = {**c1, "instance": "node2:9843", "job": JOB}
    out.append(c.expect("MaxScaleBackupActive", late("MaxScaleBackupActive", c), [(node2, "0")]))
    c = Case(d)  # a backup restarted active, set passive by notify one scrape later
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    passive(c, "node1", [0])
    passive(c, "node2", [1, 1, None, 0, 1])
    out.append(c.expect("MaxScaleBackupActive", 6, []))

    # active node down: check failing / MaxScale down on the VIP holder; exporter gone after holding it
    node1 = {**c1, "instance": "node1:9843"}
    c = Case(d)
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    c.node("mxha_check_success", "node1", [0])
    c.node("mxha_check_success", "node2", [1])
    c.node("mxha_maxscale_up", "node1", [1])
    c.node("mxha_maxscale_up", "node2", [1])
    out.append(
        c.expect("MaxScaleActiveNodeDown", late("MaxScaleActiveNodeDown", c), [(node1, "1")]).expect(
            "MaxScaleHealthCheckFailing", late("MaxScaleHealthCheckFailing", c), [({**node1, "job": JOB}, "0")]
        )
    )
    c = Case(d)
    vip(c, "node1", [1, 1, 1, None])
    c.node("up", "node1", [1, 1, 1, 0])
    c.node("up", "node2", [1])
    out.append(c.expect("MaxScaleActiveNodeDown", 3 + late("MaxScaleActiveNodeDown", c), [(node1, "1")]))
    c = Case(d)  # the backup failing its check is not the active node going down
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    c.node("mxha_check_success", "node1", [1])
    c.node("mxha_check_success", "node2", [0])
    c.node("mxha_maxscale_up", "node1", [1])
    c.node("mxha_maxscale_up", "node2", [0])
    out.append(c.expect("MaxScaleActiveNodeDown", late("MaxScaleActiveNodeDown", c), []))

    # health check failing: fires; a node restart (a few failed checks) does not
    c = Case(d)
    f = c.for_steps("MaxScaleHealthCheckFailing")
    c.node("mxha_check_success", "node2", [1, 0] + [0] * (f - 1) + [1])
    out.append(c.expect("MaxScaleHealthCheckFailing", f + 3, []))

    # exporter down: fires; a single failed scrape does not
    c = Case(d)
    c.node("up", "node2", [0])
    out.append(
        c.expect(
            "MaxScaleExporterDown",
            late("MaxScaleExporterDown", c),
            [({**c1, "instance": "node2:9843", "job": JOB}, "0")],
        )
    )
    c = Case(d)
    c.node("up", "node2", [1, 0, 1])
    out.append(c.expect("MaxScaleExporterDown", c.for_steps("MaxScaleExporterDown") + 3, []))

    # config sync
    c = Case(d)
    c.node("mxha_maxscale_config_sync_enabled", "node1", [1])
    c.node("mxha_maxscale_config_sync_enabled", "node2", [0])
    out.append(
        c.expect(
            "MaxScaleConfigSyncPassiveHazard",
            late("MaxScaleConfigSyncPassiveHazard", c),
            [({**c1, "instance": "node1:9843", "job": JOB}, "1")],
        )
    )

    # setup hazards: warning and critical ones alert with their own severity; info ones and a hazard
    # shorter than for: do not
    c = Case(d, steps=60)
    n1 = {**c1, "instance": "node1:9843"}
    c.node("mxha_setup_hazard", "node1", [1], hazard="notify_unordered", severity="warning")
    c.node("mxha_setup_hazard", "node1", [1], hazard="locks_not_partition_safe", severity="critical")
    c.node("mxha_setup_hazard", "node2", [1], hazard="locks_need_semisync", severity="info")
    out.append(
        c.expect(
            "MaxScaleSetupHazard",
            late("MaxScaleSetupHazard", c),
            [
                ({**n1, "hazard": "locks_not_partition_safe", "severity": "critical"}, "1"),
                ({**n1, "hazard": "notify_unordered", "severity": "warning"}, "1"),
            ],
        )
    )
    c = Case(d)
    blip = [1.0] * max(1, c.for_steps("MaxScaleSetupHazard") - 2) + [STALE]
    c.node("mxha_setup_hazard", "node1", blip, hazard="follow_up_missing", severity="warning")
    out.append(c.expect("MaxScaleSetupHazard", c.for_steps("MaxScaleSetupHazard") + 3, []))

    # cluster-wide setup hazards from per-node metrics: equal configured priorities of the governing
    # instance, node configs in different modes; distinct priorities and one mode do not fire
    for tie, modes, fired in (
        (True, ("passive", "passive"), [({**c1, "hazard": "priority_tie", "severity": "warning"}, "1")]),
        (False, ("passive", "locks"), [({**c1, "hazard": "mode_mismatch", "severity": "critical"}, "1")]),
        (False, ("locks", "locks"), []),
    ):
        c = Case(d)
        for node, prio, mode in (("node1", 150, modes[0]), ("node2", 150 if tie else 100, modes[1])):
            c.node("mxha_vrrp_base_priority", node, [prio], vrrp_instance="VI_1", vrid="51")
            c.node("mxha_vrrp_base_priority", node, [100], vrrp_instance="VI_OTHER", vrid="52")  # not governing
            vip(c, node, [1 if node == "node1" else 0])
            c.node("mxha_node_mode", node, [1], mode=mode)
        out.append(c.expect("MaxScaleSetupHazard", late("MaxScaleSetupHazard", c), fired))

    # remediation failing: a failed action, or the circuit open; the remediator's own job has no cluster
    # target label, so `cluster` is the metric's own label
    rem = {"instance": "mon:9844", "job": "mxha-remediator"}
    c = Case(d)
    c.add(
        "mxha_remediator_actions_total",
        {**rem, "cluster": "c1", "node": "node2", "action": "demote", "result": "failure"},
        [0, 0, 1],
    )
    c.add("mxha_remediator_circuit_open", {**rem, "cluster": "c1"}, [0])
    out.append(c.expect("MaxScaleRemediationFailing", 4, [(c1, "1")]))
    c = Case(d)
    c.add(
        "mxha_remediator_actions_total",
        {**rem, "cluster": "c1", "node": "node2", "action": "demote", "result": "failure"},
        [0],
    )
    c.add(
        "mxha_remediator_actions_total",
        {**rem, "cluster": "c1", "node": "node2", "action": "demote", "result": "success"},
        [0, 1, 2, 3],
    )
    c.add("mxha_remediator_circuit_open", {**rem, "cluster": "c1"}, [0, 0, 1])
    out.append(c.expect("MaxScaleRemediationFailing", 1, []).expect("MaxScaleRemediationFailing", 4, [(c1, "1")]))

    # the remediator refusing a cluster: fires after its `for`; a single refused look does not
    c = Case(d)
    refused = {**rem, "cluster": "c1"}
    c.add("mxha_remediator_cluster_refused", {**refused, "reason": "priority_tie"}, [0, 1])
    c.add("mxha_remediator_cluster_refused", {**refused, "reason": "node_identity"}, [0])
    steps = c.for_steps("MaxScaleRemediationRefused")
    out.append(
        c.expect("MaxScaleRemediationRefused", steps, []).expect(
            "MaxScaleRemediationRefused", steps + 2, [({**c1, "reason": "priority_tie"}, "1")]
        )
    )
    c = Case(d)
    c.add("mxha_remediator_cluster_refused", {**refused, "reason": "node_identity"}, [0, 1] + [0] * 40)
    out.append(c.expect("MaxScaleRemediationRefused", steps + 3, []))

    # replicas: one replica without a majority of the lock servers fires for it alone, after its `for`
    c = Case(d)
    c.add("mxha_remediator_lock_quorum", {**rem, "cluster": "c1", "instance": "rem1:9844"}, [1, 0] + [0] * 10)
    c.add("mxha_remediator_lock_quorum", {**rem, "cluster": "c1", "instance": "rem2:9844"}, [1] * 12)
    steps = c.for_steps("MaxScaleRemediatorNoLockQuorum")
    out.append(
        c.expect("MaxScaleRemediatorNoLockQuorum", steps, []).expect(
            "MaxScaleRemediatorNoLockQuorum", steps + 2, [({**c1, "instance": "rem1:9844"}, "1")]
        )
    )
    c = Case(d)
    c.add("mxha_remediator_lock_quorum", {**rem, "cluster": "c1", "instance": "rem1:9844"}, [0, 1] + [1] * 10)
    out.append(c.expect("MaxScaleRemediatorNoLockQuorum", steps + 3, []))
    out += database_view_cases(d)
    return out


MON = "MariaDB-Monitor"


def master(case: Case, node: str, server: str, values: list[float | None], cluster: str = "c1") -> Case:
    return case.node("mxha_maxscale_monitor_master", node, values, cluster, monitor=MON, server=server)


def server_state(case: Case, node: str, server: str, state: str, values: list[float | None]) -> Case:
    return case.node("mxha_maxscale_server_state", node, values, server=server, state=state)


def lock_primary(case: Case, node: str, values: list[float | None], cluster: str = "c1") -> Case:
    return case.node("mxha_maxscale_monitor_primary", node, values, cluster, monitor=MON)


def locks_mode(case: Case, node: str, mode: str, cluster: str = "c1") -> Case:
    return case.node("mxha_maxscale_monitor_locks_mode", node, [1], cluster, monitor=MON, mode=mode)


def database_view_cases(d: Durations) -> list[Case]:
    """SYNTHETIC series for the database-view alerts: fires, and a near miss each. (The recorded
    pair is replayed in tests/test_alerts_pair.py.)"""
    out = []
    c1 = {"cluster": "c1"}

    # two different primaries named: fires (synthetic: never recorded); a follow-the-leader lag does not
    c = Case(d)
    f = c.for_steps("MaxScalePrimaryDisagreement")
    master(c, "node1", "server2", [1])
    master(c, "node2", "server1", [1])
    out.append(c.expect("MaxScalePrimaryDisagreement", f + 3, [({**c1, "monitor": MON}, "2")]))
    c = Case(d)
    master(c, "node1", "server1", [1, 1, STALE])
    master(c, "node1", "server2", [None, None, 1])
    master(c, "node2", "server1", [1] * 4 + [STALE])
    master(c, "node2", "server2", [None] * 4 + [1])
    out.append(c.expect("MaxScalePrimaryDisagreement", f + 6, []))
    # the same primary named by two MaxScales in two clusters is no disagreement
    c = Case(d)
    master(c, "node1", "server1", [1], cluster="c1")
    master(c, "node1", "server2", [1], cluster="c2")
    out.append(c.expect("MaxScalePrimaryDisagreement", f + 3, []))

    # a server Down for one MaxScale and Running for another: fires; Down for both (an outage) does not
    c = Case(d)
    f = c.for_steps("MaxScaleServerViewsDiffer")
    for node, down in (("node1", 0), ("node2", 1)):
        server_state(c, node, "server1", "Down", [down])
        server_state(c, node, "server1", "Running", [1 - down])
    out.append(c.expect("MaxScaleServerViewsDiffer", f + 3, [({**c1, "server": "server1"}, "1")]))
    c = Case(d)
    for node in ("node1", "node2"):
        server_state(c, node, "server1", "Down", [1])
        server_state(c, node, "server1", "Running", [0])
    out.append(c.expect("MaxScaleServerViewsDiffer", f + 3, []))

    # the VIP holder's MaxScale marks no server Master: fires; the backup's doing so does not
    c = Case(d)
    f = c.for_steps("MaxScaleVIPHolderSeesNoPrimary")
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    for node in ("node1", "node2"):
        c.node("mxha_maxscale_up", node, [1])
        server_state(c, node, "server1", "Master", [0 if node == "node1" else 1])
        server_state(c, node, "server2", "Master", [0])
    out.append(c.expect("MaxScaleVIPHolderSeesNoPrimary", f + 3, [({**c1, "instance": "node1:9843"}, "1")]))
    c = Case(d)
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    for node in ("node1", "node2"):
        c.node("mxha_maxscale_up", node, [1])
        server_state(c, node, "server1", "Master", [1 if node == "node1" else 0])
    out.append(c.expect("MaxScaleVIPHolderSeesNoPrimary", f + 3, []))

    # two lock primaries: fires; a handover (one step of overlap) does not
    c = Case(d)
    f = c.for_steps("MaxScaleMultiplePrimaryMonitors")
    lock_primary(c, "node1", [1])
    lock_primary(c, "node2", [1])
    out.append(c.expect("MaxScaleMultiplePrimaryMonitors", f + 3, [({**c1, "monitor": MON}, "2")]))
    c = Case(d)
    lock_primary(c, "node1", [1, 1, 0])
    lock_primary(c, "node2", [0, 1, 1])
    out.append(c.expect("MaxScaleMultiplePrimaryMonitors", f + 3, []))

    # locks on and no lock primary: fires (the release-locks trap); a one-second handover does not;
    # locks off never
    c = Case(d)
    f = c.for_steps("MaxScaleNoPrimaryMonitor")
    for node in ("node1", "node2"):
        locks_mode(c, node, "majority_of_all")
        lock_primary(c, node, [0])
    out.append(c.expect("MaxScaleNoPrimaryMonitor", f + 3, [({**c1, "monitor": MON}, "1")]))
    c = Case(d)
    for node in ("node1", "node2"):
        locks_mode(c, node, "majority_of_running")
    lock_primary(c, "node1", [1, 0, 0, 0])
    lock_primary(c, "node2", [0, 0, 1])
    out.append(c.expect("MaxScaleNoPrimaryMonitor", f + 3, []))
    c = Case(d)
    for node in ("node1", "node2"):
        locks_mode(c, node, "none")
    out.append(c.expect("MaxScaleNoPrimaryMonitor", f + 3, []))

    # a passive lock primary: fires; an active lock primary with a passive secondary does not
    c = Case(d)
    f = c.for_steps("MaxScalePassiveHoldsLocks")
    lock_primary(c, "node2", [1])
    passive(c, "node2", [1])
    out.append(
        c.expect(
            "MaxScalePassiveHoldsLocks", f + 3, [({**c1, "instance": "node2:9843", "job": JOB, "monitor": MON}, "1")]
        )
    )
    c = Case(d)
    lock_primary(c, "node1", [1])
    passive(c, "node1", [0])
    lock_primary(c, "node2", [0])
    passive(c, "node2", [1])
    out.append(c.expect("MaxScalePassiveHoldsLocks", f + 3, []))

    # the lock primary does not hold the VIP: fires; the VIP holder being the lock primary does not
    c = Case(d)
    f = c.for_steps("MaxScaleLockPrimaryNotVIPHolder")
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    lock_primary(c, "node1", [0])
    lock_primary(c, "node2", [1])
    out.append(
        c.expect(
            "MaxScaleLockPrimaryNotVIPHolder",
            f + 3,
            [({**c1, "instance": "node2:9843", "job": JOB, "monitor": MON}, "1")],
        )
    )
    c = Case(d)
    vip(c, "node1", [1])
    vip(c, "node2", [0])
    lock_primary(c, "node1", [1])
    lock_primary(c, "node2", [0])
    out.append(c.expect("MaxScaleLockPrimaryNotVIPHolder", f + 3, []))

    # locks mode: every MaxScale active is the normal state; the passive-mode rules stay quiet
    c = Case(d)
    for node, on_vip in (("node1", 1), ("node2", 0)):
        c.node("mxha_node_mode", node, [1], mode="locks")
        vip(c, node, [on_vip])
        passive(c, node, [0])
    late = c.for_steps("MaxScaleMultipleActive") + c.for_steps("MaxScaleBackupActive") + 3
    out.append(c.expect("MaxScaleMultipleActive", late, []).expect("MaxScaleBackupActive", late, []))
    c = Case(d)
    for node, on_vip in (("node1", 1), ("node2", 0)):
        c.node("mxha_node_mode", node, [1], mode="locks")
        vip(c, node, [on_vip])
        passive(c, node, [1])
    out.append(c.expect("MaxScaleMasterPassive", c.for_steps("MaxScaleMasterPassive") + 3, []))
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_promtool_unit_tests(variant: str, tmp_path: Path) -> None:
    d = VARIANTS[variant]
    rules = REPO / "alerts" / FILES[variant]
    suite = {
        "rule_files": [str(rules)],
        "evaluation_interval": d.scrape_interval,
        "tests": [c.to_test() for c in cases(d)],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(suite, sort_keys=False))
    proc = subprocess.run(
        ["promtool", "test", "rules", str(tmp_path / "tests.yml")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_every_alert_has_a_firing_and_a_near_miss_case() -> None:
    for variant in VARIANTS.values():
        fired: set[str] = set()
        missed: set[str] = set()
        for c in cases(variant):
            for check in c.checks:
                (fired if check["exp_alerts"] else missed).add(check["alertname"])
        assert fired == set(CONTRACT_ALERTS)
        assert missed >= set(CONTRACT_ALERTS) - {"MaxScaleConfigSyncPassiveHazard"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_promtool_check_rules_and_generated_files_are_current(variant: str) -> None:
    path = REPO / "alerts" / FILES[variant]
    assert path.read_text() == render(variant), "run `make rules` and commit the result"
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_contract_names_severities_annotations_and_runbooks() -> None:
    runbooks = (REPO / "alerts" / "runbooks.md").read_text()
    anchors = {m.lower() for m in re.findall(r"^## (\w+)", runbooks, re.M)}
    for d in VARIANTS.values():
        rules = alert_rules(d)
        assert {n: r["labels"]["severity"] for n, r in rules.items()} == CONTRACT_ALERTS
        for name, rule in rules.items():
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
            assert "$labels.cluster" in rule["annotations"]["description"]
            assert rule["annotations"]["runbook_url"].endswith("#" + name.lower())
            assert name.lower() in anchors, f"runbooks.md has no section for {name}"
            if "vip_present" in rule["expr"] and name not in ("MaxScaleVIPConflict", "MaxScaleVIPMissing"):
                assert 'governing="true"' in rule["expr"], name


def test_example_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    text = (REPO / "examples/prometheus/prometheus.yml").read_text()
    text = text.replace("/etc/prometheus/rules/mxha-rules.yml", str(REPO / "alerts/mxha-rules.yml"))
    (tmp_path / "prometheus.yml").write_text(text)
    proc = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = yaml.safe_load(text)
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert all("cluster" in g["labels"] for g in jobs["mxha-exporter"]["static_configs"])
    assert all("cluster" not in g.get("labels", {}) for g in jobs["mxha-remediator"]["static_configs"])


def test_example_fleet_config_passes_promtool_and_labels_every_cluster(tmp_path: Path) -> None:
    text = (REPO / "examples/prometheus/fleet.yml").read_text()
    text = text.replace("/etc/prometheus/rules/mxha-rules.yml", str(REPO / "alerts/mxha-rules.yml"))
    text = text.replace("/etc/prometheus/mxha-clusters/", str(REPO / "examples/prometheus/mxha-clusters") + "/")
    (tmp_path / "fleet.yml").write_text(text)
    proc = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "fleet.yml")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    clusters = {}
    for path in sorted((REPO / "examples/prometheus/mxha-clusters").glob("*.yml")):
        groups = yaml.safe_load(path.read_text())
        assert all(g["labels"]["cluster"] == path.stem for g in groups), path.name
        clusters[path.stem] = sum(len(g["targets"]) for g in groups)
    assert clusters == {"mx-prod": 2, "mx-reporting": 3}
    doc = yaml.safe_load(text)
    assert doc["alerting"]["alert_relabel_configs"][0] == {"action": "labeldrop", "regex": "replica"}


@requires_program("amtool")
def test_example_alertmanager_config_passes_amtool(tmp_path: Path) -> None:
    text = (REPO / "examples/alertmanager/alertmanager.yml").read_text()
    token = tmp_path / "token"
    token.write_text("x\n")
    text = text.replace("/etc/alertmanager/mxha-webhook.token", str(token))
    (tmp_path / "am.yml").write_text(text)
    proc = subprocess.run(
        ["amtool", "check-config", str(tmp_path / "am.yml")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    route = yaml.safe_load(text)["route"]["routes"][0]
    assert route["receiver"] == "mxha-remediator" and route["group_by"] == ["cluster", "alertname"]


def test_generate_writes_where_it_runs_not_into_the_installed_package(tmp_path: Path) -> None:
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "mxha.alerts.generate"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "alerts").iterdir()) == sorted(FILES.values())
    assert (tmp_path / "alerts" / FILES["production"]).read_text() == render("production")
    help_text = subprocess.run(
        [sys.executable, "-m", "mxha.alerts.generate", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "./alerts" in help_text

"""The alert and recording rules, generated from ONE source with the durations as parameters.

``for:`` is wall time, so production (scrapes every 15-30 s) and the lab (every 1 s) need
different durations; everything else is shared. ``python -m mxha.alerts.generate`` writes
``mxha-rules.yml`` (production) and ``mxha-rules-lab.yml`` (lab); a test regenerates them
and compares with what is committed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_RUNBOOK_BASE = "https://github.com/maxscale-ha/maxscale-ha/blob/main/alerts/runbooks.md"


@dataclass(frozen=True)
class Durations:
    """Why these numbers: see alerts/runbooks.md, 'Choosing the durations'."""

    name: str
    scrape_interval: str
    split_brain_for: str
    vip_conflict_for: str
    vip_missing_for: str
    multiple_active_for: str
    master_passive_for: str
    backup_active_for: str
    active_node_down_for: str
    check_failing_for: str
    exporter_down_for: str
    config_sync_for: str
    remediation_failure_window: str
    remediation_refused_for: str
    lock_quorum_lost_for: str  # replicas: a lock store blip shorter than this is not worth a page
    primary_disagreement_for: str  # longer than MaxScale's own follow-the-lock-holder delay (~1-2 s)
    server_views_differ_for: str
    vip_holder_no_primary_for: str
    multiple_primary_monitors_for: str
    no_primary_monitor_for: str  # longer than a lock handover (about 1 s in the recordings)
    passive_holds_locks_for: str
    lock_primary_not_vip_holder_for: str
    setup_hazard_for: str  # a setup hazard is not urgent, and some show for a moment while a node starts
    keep_firing_for: str  # for alerts that trigger the remediator: a one-scrape gap must not resolve them
    recent_vip_window: str  # how long a node that held the VIP counts as "the active node" once unscrapeable


PRODUCTION = Durations(
    name="production",
    scrape_interval="15s",
    split_brain_for="30s",
    vip_conflict_for="30s",
    vip_missing_for="1m",
    multiple_active_for="30s",
    master_passive_for="1m",
    backup_active_for="1m",
    active_node_down_for="1m",
    check_failing_for="2m",
    exporter_down_for="2m",
    config_sync_for="10m",
    remediation_failure_window="10m",
    remediation_refused_for="2m",
    lock_quorum_lost_for="1m",
    primary_disagreement_for="30s",
    server_views_differ_for="30s",
    vip_holder_no_primary_for="30s",
    multiple_primary_monitors_for="30s",
    no_primary_monitor_for="30s",
    passive_holds_locks_for="1m",
    lock_primary_not_vip_holder_for="2m",
    setup_hazard_for="10m",
    keep_firing_for="1m",
    recent_vip_window="5m",
)

LAB = Durations(
    name="lab",
    scrape_interval="1s",
    split_brain_for="2s",
    vip_conflict_for="2s",
    vip_missing_for="4s",
    multiple_active_for="2s",
    master_passive_for="3s",
    backup_active_for="3s",
    active_node_down_for="3s",
    check_failing_for="5s",
    exporter_down_for="5s",
    config_sync_for="10s",
    remediation_failure_window="1m",
    remediation_refused_for="3s",
    lock_quorum_lost_for="3s",
    primary_disagreement_for="3s",
    server_views_differ_for="3s",
    vip_holder_no_primary_for="3s",
    multiple_primary_monitors_for="3s",
    no_primary_monitor_for="3s",
    passive_holds_locks_for="3s",
    lock_primary_not_vip_holder_for="4s",
    setup_hazard_for="10s",
    keep_firing_for="5s",
    recent_vip_window="1m",
)

VARIANTS = {"production": PRODUCTION, "lab": LAB}

RECORDING: list[dict[str, Any]] = [
    {
        "record": "cluster_vrid:mxha_vrrp_masters:sum",
        "expr": 'sum by (cluster, vrid) (mxha_vrrp_state{state="MASTER"})',
    },
    {"record": "cluster_vip:mxha_vip_holders:sum", "expr": "sum by (cluster, vip) (mxha_vip_present)"},
    {"record": "cluster:mxha_maxscale_active:sum", "expr": "sum by (cluster) (mxha_maxscale_passive == bool 0)"},
    {
        "record": "cluster:mxha_governing_vip_holders:sum",
        "expr": 'sum by (cluster) (max by (cluster, instance) (mxha_vip_present{governing="true"}))',
    },
    # the cluster-wide setup hazards that per-node metrics show (mxha doctor --peers finds these and
    # the ones no metric carries: clock_skew, clients_see_different_services, identical_version_string)
    {
        # two nodes with the same configured priority for the governing instance
        "record": "cluster:mxha_setup_hazard:group",
        "expr": 'group by (cluster) (count_values by (cluster, vrid) ("base_priority", max by (cluster, instance, '
        'vrid) (mxha_vrrp_base_priority and on (cluster, instance, vrrp_instance) mxha_vip_present{governing="true"}'
        ")) > 1)",
        "labels": {"hazard": "priority_tie", "severity": "warning"},
    },
    {
        # node configs that say different modes (passive, locks)
        "record": "cluster:mxha_setup_hazard:group",
        "expr": "group by (cluster) (count by (cluster) (group by (cluster, mode) (mxha_node_mode == 1)) > 1)",
        "labels": {"hazard": "mode_mismatch", "severity": "critical"},
    },
]


def _alert(
    name: str,
    expr: str,
    duration: str,
    severity: str,
    summary: str,
    description: str,
    runbook_base: str,
    keep_firing_for: str | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr.strip()}
    if duration != "0s":
        rule["for"] = duration
    if keep_firing_for:
        rule["keep_firing_for"] = keep_firing_for
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": f"{runbook_base}#{name.lower()}",
    }
    return rule


def build_rules(
    d: Durations, runbook_base: str = DEFAULT_RUNBOOK_BASE, exporter_job: str = "mxha-exporter"
) -> dict[str, Any]:
    job = f'job="{exporter_job}"'
    keep = d.keep_firing_for
    gov_holder = 'max by (cluster, instance) (mxha_vip_present{governing="true"}) == 1'
    # a cluster whose node configs say `mode: locks`: every MaxScale is meant to be active there
    locks_mode = 'max by (cluster) (mxha_node_mode{mode="locks"}) == 1'
    locks_on = 'mxha_maxscale_monitor_locks_mode{mode!="none"} == 1'
    alerts = [
        _alert(
            "MaxScaleVRRPSplitBrain",
            "cluster_vrid:mxha_vrrp_masters:sum > 1",
            d.split_brain_for,
            "critical",
            "{{ $value }} VRRP masters for vrid {{ $labels.vrid }} in cluster {{ $labels.cluster }}",
            "More than one node of cluster {{ $labels.cluster }} is VRRP MASTER for vrid {{ $labels.vrid }}: "
            "VRRP adverts are not crossing. Both nodes may hold the VIP and both MaxScales may be active.",
            runbook_base,
            keep,
        ),
        _alert(
            "MaxScaleVIPConflict",
            "cluster_vip:mxha_vip_holders:sum > 1",
            d.vip_conflict_for,
            "critical",
            "VIP {{ $labels.vip }} is on {{ $value }} nodes in cluster {{ $labels.cluster }}",
            "The kernel of more than one node of cluster {{ $labels.cluster }} has {{ $labels.vip }} on an "
            "interface: clients reach whichever answers ARP last.",
            runbook_base,
            keep,
        ),
        _alert(
            "MaxScaleVIPMissing",
            "cluster_vip:mxha_vip_holders:sum == 0",
            d.vip_missing_for,
            "critical",
            "VIP {{ $labels.vip }} is on no node in cluster {{ $labels.cluster }}",
            "No node of cluster {{ $labels.cluster }} has {{ $labels.vip }}: clients cannot connect.",
            runbook_base,
            keep,
        ),
        _alert(
            "MaxScaleMultipleActive",
            f"(cluster:mxha_maxscale_active:sum > 1) unless on (cluster) ({locks_mode})",
            d.multiple_active_for,
            "critical",
            "{{ $value }} active MaxScales in cluster {{ $labels.cluster }}",
            "More than one MaxScale of cluster {{ $labels.cluster }} has passive=false: each may fail over, "
            "switch over or rejoin servers on its own, and two can promote two different primaries.",
            runbook_base,
            keep,
        ),
        _alert(
            "MaxScaleMasterPassive",
            f"""
(cluster:mxha_governing_vip_holders:sum > 0)
unless on (cluster)
  count by (cluster) (({gov_holder}) and on (cluster, instance) (mxha_maxscale_passive == 0))
and on (cluster)
  count by (cluster) (({gov_holder}) and on (cluster, instance) (mxha_maxscale_passive == 1))
unless on (cluster) ({locks_mode})""",
            d.master_passive_for,
            "critical",
            "The VIP of cluster {{ $labels.cluster }} is served only by passive MaxScales",
            "Every node of cluster {{ $labels.cluster }} that holds the governing VIP has a passive MaxScale: "
            "nobody will fail over when the primary dies.",
            runbook_base,
            keep,
        ),
        _alert(
            "MaxScaleBackupActive",
            f"""
(mxha_maxscale_passive == 0) unless on (cluster, instance) ({gov_holder})
unless on (cluster) ({locks_mode})""",
            d.backup_active_for,
            "warning",
            "MaxScale on {{ $labels.instance }} is active without holding the VIP (cluster {{ $labels.cluster }})",
            "{{ $labels.instance }} in cluster {{ $labels.cluster }} does not hold the governing VIP but its "
            "MaxScale is active (a restart brings back the persisted mode).",
            runbook_base,
            keep,
        ),
        # -- the database view: what each MaxScale believes about the servers, and the locks --------
        _alert(
            "MaxScalePrimaryDisagreement",
            """
count by (cluster, monitor) (
  count by (cluster, monitor, server) (mxha_maxscale_monitor_master == 1)
) > 1""",
            d.primary_disagreement_for,
            "critical",
            "MaxScales of cluster {{ $labels.cluster }} name {{ $value }} different primaries ({{ $labels.monitor }})",
            "The MaxScales of cluster {{ $labels.cluster }} that answer name different primary servers for "
            "monitor {{ $labels.monitor }}: writes can go to two servers and the cluster diverges.",
            runbook_base,
        ),
        _alert(
            "MaxScaleServerViewsDiffer",
            """
max by (cluster, server) (mxha_maxscale_server_state{state="Down"} == 1)
and on (cluster, server)
max by (cluster, server) (mxha_maxscale_server_state{state="Running"} == 1)""",
            d.server_views_differ_for,
            "warning",
            "Server {{ $labels.server }} is Down for one MaxScale and Running for another (cluster "
            "{{ $labels.cluster }})",
            "A MaxScale of cluster {{ $labels.cluster }} is cut off from {{ $labels.server }} while another "
            "reaches it: if that server is the primary and the cut-off MaxScale may fail over, it will do so "
            "needlessly.",
            runbook_base,
        ),
        _alert(
            "MaxScaleVIPHolderSeesNoPrimary",
            f"""
max by (cluster, instance) ({gov_holder})
and on (cluster, instance) (mxha_maxscale_up == 1)
unless on (cluster, instance) (max by (cluster, instance) (mxha_maxscale_server_state{{state="Master"}}) == 1)""",
            d.vip_holder_no_primary_for,
            "critical",
            "The MaxScale behind the VIP, {{ $labels.instance }}, marks no server Master (cluster "
            "{{ $labels.cluster }})",
            "{{ $labels.instance }} holds the governing VIP of cluster {{ $labels.cluster }} but its MaxScale "
            "marks no server Master: writes through the VIP fail.",
            runbook_base,
        ),
        _alert(
            "MaxScaleMultiplePrimaryMonitors",
            "count by (cluster, monitor) (mxha_maxscale_monitor_primary == 1) > 1",
            d.multiple_primary_monitors_for,
            "critical",
            "{{ $value }} MaxScales claim the cooperative-lock primary of {{ $labels.monitor }} (cluster "
            "{{ $labels.cluster }})",
            "More than one MaxScale of cluster {{ $labels.cluster }} says it is the primary monitor of "
            "{{ $labels.monitor }} (possible with majority_of_running in a partition): each may fail over.",
            runbook_base,
        ),
        _alert(
            "MaxScaleNoPrimaryMonitor",
            f"""
max by (cluster, monitor) ({locks_on})
unless on (cluster, monitor) (max by (cluster, monitor) (mxha_maxscale_monitor_primary == 1))""",
            d.no_primary_monitor_for,
            "critical",
            "No MaxScale holds the cooperative locks of {{ $labels.monitor }} (cluster {{ $labels.cluster }})",
            "Cooperative monitoring locks are on in cluster {{ $labels.cluster }} but no MaxScale is the primary "
            "monitor of {{ $labels.monitor }}: nobody will fail over (a release-locks keeps the releaser from "
            "locking again for a minute).",
            runbook_base,
        ),
        _alert(
            "MaxScalePassiveHoldsLocks",
            "(mxha_maxscale_monitor_primary == 1) and on (cluster, instance) (mxha_maxscale_passive == 1)",
            d.passive_holds_locks_for,
            "warning",
            "Passive MaxScale {{ $labels.instance }} holds the cooperative locks (cluster {{ $labels.cluster }})",
            "{{ $labels.instance }} is passive but the primary monitor of {{ $labels.monitor }} in cluster "
            "{{ $labels.cluster }} (passive does not release the locks): it cannot fail over, and the active "
            "MaxScale cannot either.",
            runbook_base,
        ),
        _alert(
            "MaxScaleLockPrimaryNotVIPHolder",
            f"(mxha_maxscale_monitor_primary == 1) unless on (cluster, instance) ({gov_holder})",
            d.lock_primary_not_vip_holder_for,
            "warning",
            "The cooperative-lock primary {{ $labels.instance }} does not hold the VIP (cluster {{ $labels.cluster }})",
            "{{ $labels.instance }} manages cluster {{ $labels.cluster }} (primary monitor of "
            "{{ $labels.monitor }}) but another MaxScale receives the traffic: keep them together.",
            runbook_base,
        ),
        _alert(
            "MaxScaleActiveNodeDown",
            f"""
max by (cluster, instance) (
  ({gov_holder}) and on (cluster, instance) ((mxha_check_success == 0) or (mxha_maxscale_up == 0))
)
or
max by (cluster, instance) (
  (up{{{job}}} == 0)
  and on (cluster, instance) (max_over_time(mxha_vip_present{{governing="true"}}[{d.recent_vip_window}]) == 1)
)""",
            d.active_node_down_for,
            "critical",
            "The node holding the VIP, {{ $labels.instance }}, is down or unhealthy (cluster {{ $labels.cluster }})",
            "{{ $labels.instance }} holds (or last held) the governing VIP of cluster {{ $labels.cluster }} and "
            "fails its health check, or its MaxScale or its exporter does not answer.",
            runbook_base,
            keep,
        ),
        _alert(
            "MaxScaleHealthCheckFailing",
            "mxha_check_success == 0",
            d.check_failing_for,
            "warning",
            "Health check failing on {{ $labels.instance }} (cluster {{ $labels.cluster }})",
            "The MaxScale health check (mxha check) fails on {{ $labels.instance }} in cluster "
            "{{ $labels.cluster }}; keepalived will not let this node hold the VIP.",
            runbook_base,
        ),
        _alert(
            "MaxScaleExporterDown",
            f"up{{{job}}} == 0",
            d.exporter_down_for,
            "warning",
            "mxha exporter on {{ $labels.instance }} cannot be scraped (cluster {{ $labels.cluster }})",
            "Prometheus cannot scrape the mxha exporter on {{ $labels.instance }} in cluster "
            "{{ $labels.cluster }}: the pair is partly blind.",
            runbook_base,
        ),
        _alert(
            "MaxScaleConfigSyncPassiveHazard",
            "mxha_maxscale_config_sync_enabled == 1",
            d.config_sync_for,
            "warning",
            "MaxScale config sync is on at {{ $labels.instance }} (cluster {{ $labels.cluster }})",
            "With config_sync_cluster set, a runtime passive change can spread to every MaxScale of cluster "
            "{{ $labels.cluster }}; the remediator refuses to act there.",
            runbook_base,
        ),
        _alert(
            "MaxScaleRemediationFailing",
            f"""
max by (cluster) (increase(mxha_remediator_actions_total{{result="failure"}}[{d.remediation_failure_window}]) > 0)
or
max by (cluster) (mxha_remediator_circuit_open == 1)""",
            "0s",
            "critical",
            "The remediator cannot correct cluster {{ $labels.cluster }}",
            "Remediator actions on cluster {{ $labels.cluster }} failed recently, or its circuit breaker "
            "stopped acting after too many corrections.",
            runbook_base,
            keep,
        ),
        _alert(
            "MaxScaleRemediationRefused",
            "max by (cluster, reason) (mxha_remediator_cluster_refused == 1)",
            d.remediation_refused_for,
            "warning",
            "The remediator refuses to act on cluster {{ $labels.cluster }} ({{ $labels.reason }})",
            "The remediator's last look at cluster {{ $labels.cluster }} found a reason not to act at all: "
            "{{ $labels.reason }} (node_identity: a node's /state names another node; priority_tie: two "
            "candidates share the top VRRP priority; config_sync: passive would spread to every node; mode: "
            "what the nodes or their MaxScales report contradicts the cluster's configured mode). "
            "Until it is fixed, nothing corrects this cluster automatically.",
            runbook_base,
        ),
        _alert(
            "MaxScaleRemediatorNoLockQuorum",
            "max by (cluster, instance) (mxha_remediator_lock_quorum == 0)",
            d.lock_quorum_lost_for,
            "warning",
            "Remediator {{ $labels.instance }} cannot reach a majority of the lock servers of cluster "
            "{{ $labels.cluster }}",
            "Remediator replica {{ $labels.instance }} reached fewer than a majority of the lock servers of "
            "cluster {{ $labels.cluster }} when it last asked. It corrects nothing there until it can: if every "
            "replica says so, nothing corrects the cluster automatically.",
            runbook_base,
        ),
        _alert(
            "MaxScaleSetupHazard",
            'max by (cluster, instance, hazard, severity) (mxha_setup_hazard{severity=~"warning|critical"} '
            'or cluster:mxha_setup_hazard:group{severity=~"warning|critical"}) == 1',
            d.setup_hazard_for,
            "{{ $labels.severity }}",  # the hazard's own: warning, or critical for critical hazards
            # no instance on the cluster-wide ones (from rules over every node's metrics): the text reads
            # either way
            "Setup hazard {{ $labels.hazard }} in cluster {{ $labels.cluster }} {{ $labels.instance }}",
            "{{ $labels.hazard }}: a setup that works today and fails on the day it matters, in cluster "
            "{{ $labels.cluster }} {{ $labels.instance }}. The node's /state (or, for a cluster-wide hazard, "
            "mxha doctor --peers) says what was seen; the runbook says what to change.",
            runbook_base,
        ),
    ]
    return {
        "groups": [
            {"name": "mxha.recording", "rules": RECORDING},
            {"name": "mxha.alerts", "rules": alerts},
        ]
    }


def header(d: Durations) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in asdict(d).items() if k != "name")
    return f"# Generated by `python -m mxha.alerts.generate` ({d.name} durations): do not edit by hand.\n# {fields}\n"

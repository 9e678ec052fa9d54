"""Setup hazards: a setup that works today and fails on the day it matters, found from its config
and its files. Each hazard has a name (``mxha_setup_hazard{hazard}``, ``/state``'s ``hazards``),
a severity, the evidence seen, and what to change; the runbook (``alerts/runbooks.md``, section
``MaxScaleSetupHazard``) has a paragraph per name.

The node's own hazards are pure functions of its config and a few facts the caller gathers (the
exporter, on every snapshot: a config look and one ``stat``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mxha.config import NodeConfig

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Hazard:
    hazard: str  # its name, e.g. notify_unordered
    severity: str  # info, warning or critical
    evidence: str  # what was seen, one line

    def to_json(self) -> dict[str, str]:
        return {"hazard": self.hazard, "severity": self.severity, "evidence": self.evidence}


def node_hazards(
    cfg: NodeConfig,
    *,
    follow_up_age: float | None,
    follow_up_error: str | None,
    running_for: float,
    stale_after: float,
) -> tuple[Hazard, ...]:
    """The hazards of one node's own setup.

    ``follow_up_age``: seconds since ``mxha check --follow-up`` last ran (None: never, as far as its
    marker shows); ``follow_up_error``: the marker could not be looked at (then nothing is claimed);
    ``running_for``: how long the caller has been watching (no follow-up is expected before
    ``stale_after`` has passed)."""
    found: list[Hazard] = []
    if not cfg.keepalived.vips:
        found.append(
            Hazard(
                "notify_unordered",
                "warning",
                "keepalived.vips is not set: mxha notify acts on the event's STATE, and overlapping "
                "notify calls can end in the older state",
            )
        )
    elif cfg.check.follow_up and follow_up_error is None:
        if follow_up_age is None and running_for >= stale_after:
            found.append(
                Hazard(
                    "follow_up_missing",
                    "warning",
                    f"no mxha check --follow-up has marked its run in the {running_for:.0f}s this exporter has "
                    "watched (keepalived's check line lacks the flag, runs as another user than the state "
                    "directory's owner, or does not run): a MaxScale restarted active on the backup, or a lost "
                    "notify, stays uncorrected",
                )
            )
        elif follow_up_age is not None and follow_up_age >= stale_after:
            found.append(
                Hazard(
                    "follow_up_missing",
                    "warning",
                    f"the last mxha check --follow-up marked its run {follow_up_age:.0f}s ago: a MaxScale "
                    "restarted active on the backup, or a lost notify, stays uncorrected",
                )
            )
    return tuple(found)


# -- what each hazard means for a person: the fix and where the rule comes from ------------------
@dataclass(frozen=True)
class HazardInfo:
    fix: str
    source: str


MARIADB_MULTI = "MariaDB: MaxScale, Failover With Multiple MaxScales"
MARIADB_COOP = "MariaDB: MariaDB Monitor, Cooperative Monitoring"
RUNBOOK = "alerts/runbooks.md#maxscalesetuphazard"

CATALOGUE: dict[str, HazardInfo] = {
    "notify_unordered": HazardInfo("list the governing instance's VIPs under keepalived.vips", "this project"),
    "follow_up_missing": HazardInfo(
        "add --follow-up to keepalived's vrrp_script line (run as the state directory's owner)", "this project"
    ),
    "state_dir_owner": HazardInfo(
        "chown the hooks' state directory and its files to keepalived's script_user "
        "(global_defs script_user), the one user that writes there",
        "this project; keepalived: global_defs script_user",
    ),
    "passive_with_locks": HazardInfo(
        "use one way: mode: locks keeps passive=false and moves the locks (release-locks); mode: passive "
        "sets cooperative_monitoring_locks=none",
        MARIADB_COOP,
    ),
    "failover_without_read_only_enforcement": HazardInfo(
        "set enforce_read_only_servers=true and enforce_writable_master=true in the monitor, read_only=1 "
        "in every server's config, gtid_strict_mode=1 and log_slave_updates=1",
        MARIADB_MULTI,
    ),
    "locks_not_partition_safe": HazardInfo(
        "use cooperative_monitoring_locks=majority_of_all with at least three monitored servers (a "
        "tiebreaker kept out of routing and in servers_no_promotion) and semisynchronous replication",
        MARIADB_COOP,
    ),
    "locks_no_fault_tolerance": HazardInfo(
        "monitor a third server as tiebreaker: listed in the monitor, in servers_no_promotion, left out "
        "of every service's servers= list (not cluster=)",
        MARIADB_COOP,
    ),
    "locks_need_semisync": HazardInfo(
        "run semisynchronous replication that never falls back to asynchronous "
        "(rpl_semi_sync_master_timeout high, rpl_semi_sync_master_wait_point=AFTER_SYNC)",
        MARIADB_COOP,
    ),
    "failcount_below_lock_minimum": HazardInfo(
        "raise failcount (or monitor_interval) until failcount x monitor_interval exceeds the lock "
        "connections' wait_timeout plus one interval",
        "MaxScale's mariadbmon (wait_timeout = interval + 2 x backend timeout, at least 5 s); recorded pair",
    ),
    "clients_see_different_services": HazardInfo(
        "give every MaxScale the same services, routers, server lists and listeners (ports)",
        "MariaDB: MaxScale HA with Keepalived (both MaxScales look identical to connecting clients)",
    ),
    "identical_version_string": HazardInfo(
        "give each node's services a version_string of its own, so clients can tell which node answered",
        "MariaDB: MaxScale HA with Keepalived",
    ),
    "priority_tie": HazardInfo(
        "give the governing VRRP instance a different priority on every node", "keepalived; this project"
    ),
    "clock_skew": HazardInfo("run NTP (chrony, systemd-timesyncd) on every node", "this project"),
    "mode_mismatch": HazardInfo(
        "set the same mode: in every node config and the remediator's, matching the monitor's "
        "cooperative_monitoring_locks (none for passive, majority_of_* for locks)",
        "this project",
    ),
}


def info(hazard: str) -> HazardInfo:
    return CATALOGUE.get(hazard, HazardInfo("see the runbook", RUNBOOK))


@dataclass(frozen=True)
class NotChecked:
    """Something a look could not check: listed, never silently passed."""

    what: str  # a hazard's name, or the document it needed
    why: str


# -- MaxScale's own setup, from its REST documents (pure) ---------------------------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: Any, bare_unit: str) -> float | None:
    """A MaxScale duration (``"1000ms"``, ``"3s"``; a bare number is in ``bare_unit``, as MaxScale
    reads it for that parameter); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) * _UNIT_SECONDS[bare_unit]
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or bare_unit]


def auto_failover_on(value: Any) -> bool | None:
    """``auto_failover``: a JSON boolean in 24.02, a string (``true``, ``false``, ``safe``) from
    25.01; ``safe`` still fails over (only when no transaction is lost). None: not a known form."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "safe"):
        return value.lower() != "false"
    return None


def lock_wait_timeout(params: dict[str, Any]) -> int | None:
    """The wait_timeout MaxScale's MariaDB Monitor sets on its connections while locks are on: what
    a lock of a cut-off MaxScale lives for. Its rule (mariadbmon, ``calc_standard_wait_timeout``):
    the interval rounded up to whole seconds plus twice the longer of the backend read and write
    timeouts (24.02; ``backend_timeout`` where a version has that one parameter), at least 5 s.
    The recorded 24.02.4 pair (1 s interval, 3 s timeouts) logged 7 s."""
    interval = duration_seconds(params.get("monitor_interval"), "ms")
    if interval is None:
        return None
    interval_s = math.ceil(interval - 1e-9)
    if params.get("backend_timeout") is not None:
        timeout = duration_seconds(params.get("backend_timeout"), "s")
    else:
        read = duration_seconds(params.get("backend_read_timeout"), "s")
        write = duration_seconds(params.get("backend_write_timeout"), "s")
        timeout = None if read is None or write is None else max(read, write)
    if timeout is None:
        return None
    longest = math.ceil(timeout - 1e-9)
    if longest <= 0:  # no timeout: MaxScale adds the larger of the interval and 10 s instead
        longest = max(interval_s, 10)
    return min(max(interval_s + 2 * longest, 5), 28800)


def _data_objects(doc: Any) -> list[dict[str, Any]] | None:
    """A REST document's ``data`` as a list of objects (a collection, or one object); None when the
    document is not one."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return [d for d in data if isinstance(d, dict)]
    return None


def _monitor_servers(monitor: dict[str, Any]) -> list[str]:
    rel = monitor.get("relationships", {}).get("servers", {}).get("data")
    if isinstance(rel, list):
        return [str(s.get("id")) for s in rel if isinstance(s, dict)]
    diag = monitor.get("attributes", {}).get("monitor_diagnostics", {})
    info_list = diag.get("server_info") if isinstance(diag, dict) else None
    return [str(s.get("name")) for s in info_list or [] if isinstance(s, dict)]


def maxscale_hazards(maxscale_doc: Any, monitors_doc: Any) -> tuple[tuple[Hazard, ...], tuple[NotChecked, ...]]:
    """The hazards of one MaxScale's own setup, from its ``/v1/maxscale`` and ``/v1/monitors``
    documents as MaxScale serves them (a single monitor's document is taken too). A document that
    is missing or not MaxScale's shape makes the rules needing it "not checked"."""
    found: list[Hazard] = []
    skipped: list[NotChecked] = []
    attrs = maxscale_doc.get("data", {}).get("attributes") if isinstance(maxscale_doc, dict) else None
    params = attrs.get("parameters") if isinstance(attrs, dict) else None
    passive = params.get("passive") if isinstance(params, dict) else None
    if not isinstance(passive, bool):
        skipped.append(NotChecked("passive_with_locks", "/v1/maxscale gave no parameters.passive"))
    monitors = _data_objects(monitors_doc)
    if monitors is None:
        for name in (
            "failover_without_read_only_enforcement",
            "locks_not_partition_safe",
            "locks_no_fault_tolerance",
            "locks_need_semisync",
            "failcount_below_lock_minimum",
        ):
            skipped.append(NotChecked(name, "/v1/monitors was not read"))
        if isinstance(passive, bool):
            skipped.append(NotChecked("passive_with_locks", "/v1/monitors was not read"))
        return tuple(found), tuple(skipped)
    for mon in sorted(monitors, key=lambda m: str(m.get("id"))):
        m_attrs = mon.get("attributes", {})
        if not isinstance(m_attrs, dict) or m_attrs.get("module") != "mariadbmon":
            continue
        name = str(mon.get("id"))
        mp = m_attrs.get("parameters")
        if not isinstance(mp, dict):
            skipped.append(NotChecked(f"monitor {name}", "its document has no parameters"))
            continue
        found.extend(_monitor_hazards(name, mp, _monitor_servers(mon), passive, skipped))
    return tuple(found), tuple(skipped)


def _monitor_hazards(
    name: str, mp: dict[str, Any], servers: list[str], passive: Any, skipped: list[NotChecked]
) -> list[Hazard]:
    found: list[Hazard] = []
    locks = mp.get("cooperative_monitoring_locks", "none")
    failover = auto_failover_on(mp.get("auto_failover"))
    if failover is None:
        skipped.append(NotChecked(f"{name} auto_failover", f"not a known form: {mp.get('auto_failover')!r}"))
    where = f"{name}: cooperative_monitoring_locks={locks}"
    if locks == "none":
        unenforced = [k for k in ("enforce_read_only_servers", "enforce_writable_master") if mp.get(k) is not True]
        if failover and unenforced:
            found.append(
                Hazard(
                    "failover_without_read_only_enforcement",
                    "warning",
                    f"{name}: auto_failover={mp.get('auto_failover')} with locks off and "
                    f"{', '.join(f'{k}={mp.get(k)}' for k in unenforced)}: an old primary that returns "
                    "during or after a failover takes writes beside the new one",
                )
            )
        return found
    if passive is True:
        found.append(
            Hazard(
                "passive_with_locks",
                "warning",
                f"passive=true and {where}: a passive MaxScale keeps the locks it holds, and holding them "
                "it still performs no failover, so nobody does",
            )
        )
    if locks == "majority_of_running":
        found.append(
            Hazard(
                "locks_not_partition_safe",
                "critical",
                f"{where}: each side of a partition counts only the servers it reaches, so both can hold "
                "a majority and fail over: two primaries",
            )
        )
    elif locks == "majority_of_all":
        if len(servers) < 3:
            found.append(
                Hazard(
                    "locks_no_fault_tolerance",
                    "warning",
                    f"{where} over {len(servers)} servers ({', '.join(servers) or 'none listed'}): a majority "
                    "of all needs every one of them, so any server down stops failover",
                )
            )
        found.append(
            Hazard(
                "locks_need_semisync",
                "info",
                f"{where}: safe from divergence only with semisynchronous replication that never falls back "
                "to asynchronous, which the REST API does not show",
            )
        )
    if failover:
        wait = lock_wait_timeout(mp)
        interval = duration_seconds(mp.get("monitor_interval"), "ms")
        failcount = mp.get("failcount")
        if wait is None or interval is None or not isinstance(failcount, int) or isinstance(failcount, bool):
            skipped.append(
                NotChecked(
                    "failcount_below_lock_minimum", f"{name}: monitor_interval, failcount or timeouts unreadable"
                )
            )
        elif failcount * interval <= wait + interval:
            found.append(
                Hazard(
                    "failcount_below_lock_minimum",
                    "warning",
                    f"{name}: failcount {failcount} x monitor_interval {interval:g}s = {failcount * interval:g}s, "
                    f"not more than the lock connections' wait_timeout {wait}s + one interval: a cut-off "
                    "lock primary's locks outlive the failure detection, so a failover can start before "
                    "they are freed",
                )
            )
    return found


# -- what clients see through the VIP, across every node (pure) ----------------------------------
CLIENT_VIEW_HAZARDS = ("clients_see_different_services", "identical_version_string")


def _ids(obj: dict[str, Any], relation: str) -> tuple[str, ...]:
    data = obj.get("relationships", {}).get(relation, {}).get("data")
    return tuple(sorted(str(d.get("id")) for d in data if isinstance(d, dict))) if isinstance(data, list) else ()


def client_view(services_doc: Any, listeners_doc: Any) -> dict[str, Any] | None:
    """What a client reaching this MaxScale sees: each service's router and servers (or cluster),
    each listener's port and service; ``version_string`` left out (it should differ). None when a
    document is not MaxScale's shape."""
    services = _data_objects(services_doc)
    listeners = _data_objects(listeners_doc)
    if services is None or listeners is None:
        return None
    view: dict[str, Any] = {}
    for svc in services:
        attrs = svc.get("attributes", {})
        params = attrs.get("parameters", {}) if isinstance(attrs, dict) else {}
        params = params if isinstance(params, dict) else {}
        view[f"service {svc.get('id')}"] = (
            attrs.get("router") if isinstance(attrs, dict) else None,
            params.get("cluster"),
            _ids(svc, "servers"),
        )
    for lst in listeners:
        attrs = lst.get("attributes", {})
        params = attrs.get("parameters", {}) if isinstance(attrs, dict) else {}
        params = params if isinstance(params, dict) else {}
        view[f"listener {lst.get('id')}"] = (params.get("port"), params.get("protocol"), _ids(lst, "services"))
    return view


def _version_strings(services_doc: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for svc in _data_objects(services_doc) or []:
        params = svc.get("attributes", {}).get("parameters", {})
        out[str(svc.get("id"))] = params.get("version_string") if isinstance(params, dict) else None
    return out


def client_view_hazards(
    documents: dict[str, tuple[Any, Any]],
) -> tuple[tuple[Hazard, ...], tuple[NotChecked, ...]]:
    """``documents``: node name -> (its MaxScale's ``/v1/services``, ``/v1/listeners``), None for a
    document not read. The seed tutorial wants both MaxScales to look identical to clients, apart
    from ``version_string``, which it recommends to differ."""
    missing = sorted(
        f"{node}'s {what}"
        for node, docs in documents.items()
        for what, doc in zip(("/v1/services", "/v1/listeners"), docs, strict=True)
        if _data_objects(doc) is None
    )
    if len(documents) < 2 or missing:
        why = "needs every node's MaxScale (--peers, with each peer's maxscale URL in the node config)"
        if missing:
            why = f"not read: {', '.join(missing)}"
        return (), tuple(NotChecked(name, why) for name in CLIENT_VIEW_HAZARDS)
    found: list[Hazard] = []
    views = {node: client_view(*docs) or {} for node, docs in sorted(documents.items())}
    keys = sorted(set().union(*views.values()))
    differ = [k for k in keys if len({repr(v.get(k)) for v in views.values()}) > 1]
    if differ:
        nodes = list(views)
        found.append(
            Hazard(
                "clients_see_different_services",
                "warning",
                f"{', '.join(differ[:4])}{' ...' if len(differ) > 4 else ''} differ between {', '.join(nodes)}: "
                "a client moved by a VIP failover finds another service",
            )
        )
    versions = {node: _version_strings(docs[0]) for node, docs in sorted(documents.items())}
    shared = sorted(set.intersection(*(set(v) for v in versions.values())))
    same = [s for s in shared if len({repr(v[s]) for v in versions.values()}) == 1]
    if same:
        found.append(
            Hazard(
                "identical_version_string",
                "info",
                f"service {', '.join(same)} has the same version_string (or none) on every node: a client "
                "cannot tell which MaxScale answered",
            )
        )
    return tuple(found), ()


# -- the node's host and the cluster's nodes (pure) ---------------------------------------------
def state_dir_hazards(
    path: str, owner_uid: int, files: dict[str, int], script_uid: int | None, user_name: Callable[[int], str]
) -> tuple[Hazard, ...]:
    """The hooks' state directory: ``files`` maps each file in it to its owner's uid;
    ``script_uid`` is the uid keepalived runs scripts as (its dump's "Default script uid:gid"),
    None when it could not be read. Only the directory's owner may write there."""
    problems = [f"{name} is {user_name(uid)}'s" for name, uid in sorted(files.items()) if uid != owner_uid]
    if script_uid is not None and script_uid != owner_uid:
        problems.insert(0, f"keepalived runs scripts as {user_name(script_uid)}")
    if not problems:
        return ()
    return (
        Hazard(
            "state_dir_owner",
            "warning",
            f"{path} belongs to {user_name(owner_uid)} but {'; '.join(problems[:4])}: the hooks run by keepalived "
            "cannot replace those files, so notify records and locks go stale",
        ),
    )


def priority_tie_hazards(priorities: dict[str, int | None]) -> tuple[Hazard, ...]:
    """``priorities``: node -> configured (base) priority of its governing VRRP instance."""
    by_value: dict[int, list[str]] = {}
    for node, prio in sorted(priorities.items()):
        if prio is not None:
            by_value.setdefault(prio, []).append(node)
    ties = {p: nodes for p, nodes in by_value.items() if len(nodes) > 1}
    if not ties:
        return ()
    said = "; ".join(f"{', '.join(nodes)} at {p}" for p, nodes in sorted(ties.items()))
    return (
        Hazard(
            "priority_tie",
            "warning",
            f"equal configured priorities for the governing VRRP instance ({said}): the election falls to the "
            "highest address and the remediator refuses to pick a keeper",
        ),
    )


CLOCK_SKEW_LIMIT = 1.0


def clock_offset(peer_time: float, sent_at: float, received_at: float) -> float:
    """How far a peer's clock is outside the interval in which it answered (0 inside it): the
    answer was written between our send and our receipt, whatever the network's delay."""
    if peer_time < sent_at:
        return peer_time - sent_at
    if peer_time > received_at:
        return peer_time - received_at
    return 0.0


def clock_skew_hazards(offsets: dict[str, float], limit: float = CLOCK_SKEW_LIMIT) -> tuple[Hazard, ...]:
    """``offsets``: peer -> ``clock_offset`` of its ``/state`` ``time`` against this node's clock."""
    off = {node: o for node, o in sorted(offsets.items()) if abs(o) > limit}
    if not off:
        return ()
    said = ", ".join(f"{node} {o:+.1f}s" for node, o in off.items())
    return (
        Hazard(
            "clock_skew",
            "warning",
            f"clocks more than {limit:g}s from this node's ({said}): lock back-off windows and the replicas' "
            "shared guardrails compare wall-clock times",
        ),
    )


def lock_mode_word(locks: str | None) -> str | None:
    """The project's mode a MaxScale's lock mode goes with: none -> passive, majority_* -> locks."""
    if locks is None:
        return None
    return "passive" if locks == "none" else "locks"


def mode_mismatch_hazards(configured: dict[str, str], maxscale_locks: dict[str, str | None]) -> tuple[Hazard, ...]:
    """``configured``: who -> ``mode`` in its config (nodes, the remediator); ``maxscale_locks``:
    node -> its MaxScale's cooperative_monitoring_locks (None: not read)."""
    said = [f"{who} mode: {mode}" for who, mode in sorted(configured.items())]
    said += [f"{node}'s MaxScale locks={locks}" for node, locks in sorted(maxscale_locks.items()) if locks is not None]
    modes = set(configured.values()) | {
        m for m in (lock_mode_word(v) for v in maxscale_locks.values()) if m is not None
    }
    if len(modes) <= 1:
        return ()
    return (
        Hazard(
            "mode_mismatch",
            "critical",
            f"{'; '.join(said)}: the hooks and the remediator would move passive and the locks against each other",
        ),
    )

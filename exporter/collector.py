"""Turn a node snapshot into Prometheus metric families, fresh at every scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mxha import __version__
from mxha.exporter.keepalived import STATES
from mxha.exporter.node import Snapshot
from mxha.maxscale import SERVER_STATE_FLAGS

# name -> help; docs/exporter.md's metrics table is tested against this (tests/test_docs.py).
METRICS: dict[str, str] = {
    "mxha_keepalived_up": "1 if keepalived's state was read this scrape, else 0.",
    "mxha_vrrp_state": "1 for the VRRP instance's current state, 0 for each other state.",
    "mxha_vrrp_priority": "Effective VRRP priority.",
    "mxha_vrrp_base_priority": "Configured VRRP priority.",
    "mxha_vrrp_last_transition_timestamp_seconds": "When the instance last changed state (Unix time).",
    "mxha_vrrp_became_master_total": "Times the instance became MASTER (keepalived's stats).",
    "mxha_vrrp_script_status": "vrrp_script status: 1 GOOD, 0 BAD (text dumps only).",
    "mxha_vip_present": "1 if the VIP is on a local interface now (asked of the kernel).",
    "mxha_maxscale_up": "1 if the MaxScale REST API answered and accepted the credentials.",
    "mxha_maxscale_error_kind": "1 for why the MaxScale REST API is not up: no_answer (the only kind that may "
    "count toward down), auth, http, document, tls (absent while up).",
    "mxha_maxscale_passive": "1 passive, 0 active (absent while MaxScale is down).",
    "mxha_maxscale_info": "MaxScale version and commit; always 1.",
    "mxha_maxscale_activated_timestamp_seconds": "MaxScale's activated_at (Unix time).",
    "mxha_maxscale_config_sync_enabled": "1 if MaxScale's config_sync is not null.",
    "mxha_maxscale_server_up": "1 if the server's state has Running.",
    "mxha_maxscale_monitor_primary": "1 if THIS MaxScale holds the monitor's cooperative locks (a majority of the "
    "servers' locks: it is the one monitoring MaxScale), else 0; absent when locks are off. Not a server: see "
    "mxha_maxscale_monitor_master.",
    "mxha_maxscale_server_state": "1 for each part of the server's state as this MaxScale sees it (Master, Slave, "
    "Running, Down, Maintenance), else 0.",
    "mxha_maxscale_monitor_master": "1 for the database SERVER this MaxScale's monitor names its primary "
    "(monitor_diagnostics.master); absent when it names none. Not about MaxScale itself: see "
    "mxha_maxscale_monitor_primary.",
    "mxha_maxscale_server_lock_held": "1 if this MaxScale holds the server's cooperative lock, else 0 (absent when "
    "locks are off or the server is unreachable).",
    "mxha_maxscale_monitor_locks_mode": "1 for the monitor's cooperative_monitoring_locks mode (none, "
    "majority_of_all, majority_of_running).",
    "mxha_node_mode": "1 for the node config's coordination mode (passive or locks).",
    "mxha_check_success": "1 if the health check (the one mxha check runs) passed and is fresh.",
    "mxha_check_duration_seconds": "How long the last health check took.",
    "mxha_check_age_seconds": "Seconds since the last health check finished.",
    "mxha_keepalived_read_duration_seconds": "How long reading keepalived's state took this scrape.",
    "mxha_keepalived_signals_total": "Signals this exporter sent keepalived to dump its state.",
    "mxha_maxscale_read_duration_seconds": "How long reading MaxScale's REST API took this scrape.",
    "mxha_vip_lookup_up": "1 if the kernel's address list was read this scrape.",
    "mxha_notify_last_success": "1 if the last mxha notify that acted reached MaxScale, 0 if it gave up.",
    "mxha_notify_last_timestamp_seconds": "When mxha notify last acted (Unix time).",
    "mxha_notify_desired_passive": "The mode the last VRRP transition asked for: 1 passive, 0 active.",
    "mxha_notify_yielded": "1 while mxha notify keeps this MASTER's MaxScale passive for a better, active peer.",
    "mxha_setup_hazard": "1 for each setup hazard present on this node (absent when none); see the "
    "MaxScaleSetupHazard runbook.",
    "mxha_build_info": "The mxha release this exporter runs (label version); always 1.",
}


def _g(name: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name], labels=labels)


def _c(name: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    """A counter: ``name`` is its sample's, with ``_total``."""
    return CounterMetricFamily(name.removesuffix("_total"), METRICS[name], labels=labels)


class KeepalivedCollector:
    """keepalived: whether it was read, each VRRP instance's state and priorities, its scripts."""

    def render(self, snap: Snapshot) -> Iterator[Metric]:
        ka = snap.keepalived
        up = _g("mxha_keepalived_up")
        up.add_metric([], 1 if ka is not None else 0)
        dur = _g("mxha_keepalived_read_duration_seconds")
        dur.add_metric([], snap.keepalived_duration)
        sig = _c("mxha_keepalived_signals_total")
        sig.add_metric([], snap.signals_sent)
        yield from (up, dur, sig)
        if ka is None:
            return
        state = _g("mxha_vrrp_state", ("vrrp_instance", "vrid", "interface", "state"))
        prio = _g("mxha_vrrp_priority", ("vrrp_instance", "vrid"))
        base = _g("mxha_vrrp_base_priority", ("vrrp_instance", "vrid"))
        last = _g("mxha_vrrp_last_transition_timestamp_seconds", ("vrrp_instance", "vrid"))
        became = _c("mxha_vrrp_became_master_total", ("vrrp_instance", "vrid"))
        for inst in ka.instances:
            vrid = str(inst.vrid)
            for s in STATES:
                state.add_metric([inst.name, vrid, inst.interface, s], 1 if inst.state == s else 0)
            prio.add_metric([inst.name, vrid], inst.priority)
            base.add_metric([inst.name, vrid], inst.base_priority)
            if inst.last_transition is not None:
                last.add_metric([inst.name, vrid], inst.last_transition)
            if inst.became_master is not None:
                became.add_metric([inst.name, vrid], inst.became_master)
        yield from (state, prio, base, last, became)
        if ka.scripts:
            scripts = _g("mxha_vrrp_script_status", ("script",))
            for script in ka.scripts:
                if script.status is not None:
                    scripts.add_metric([script.name], 1 if script.status == "GOOD" else 0)
            yield scripts


class VipCollector:
    """The kernel: which VIPs are on this host now."""

    def render(self, snap: Snapshot) -> Iterator[Metric]:
        lookup = _g("mxha_vip_lookup_up")
        lookup.add_metric([], 0 if snap.vip_error else 1)
        yield lookup
        if snap.vip_error is None:
            vip = _g("mxha_vip_present", ("vip", "vrrp_instance", "governing"))
            for v in snap.vips:
                vip.add_metric([v.address, v.vrrp_instance, "true" if v.governing else "false"], 1 if v.present else 0)
            yield vip


class MaxScaleCollector:
    """MaxScale's REST API: up, mode, version, config sync, servers, lock-holding monitors."""

    def render(self, snap: Snapshot) -> Iterator[Metric]:
        ms = snap.maxscale
        up = _g("mxha_maxscale_up")
        up.add_metric([], 1 if ms.up else 0)
        dur = _g("mxha_maxscale_read_duration_seconds")
        dur.add_metric([], ms.duration_seconds)
        yield from (up, dur)
        if not ms.up:
            if ms.error_kind is not None:
                kind = _g("mxha_maxscale_error_kind", ("kind",))
                kind.add_metric([ms.error_kind], 1)
                yield kind
            return
        if ms.passive is not None:
            passive = _g("mxha_maxscale_passive")
            passive.add_metric([], 1 if ms.passive else 0)
            yield passive
        info = _g("mxha_maxscale_info", ("version", "commit"))
        info.add_metric([ms.version or "", ms.commit or ""], 1)
        yield info
        if ms.activated_at is not None:
            act = _g("mxha_maxscale_activated_timestamp_seconds")
            act.add_metric([], ms.activated_at)
            yield act
        sync = _g("mxha_maxscale_config_sync_enabled")
        sync.add_metric([], 1 if ms.config_sync else 0)
        yield sync
        servers = _g("mxha_maxscale_server_up", ("server",))
        states = _g("mxha_maxscale_server_state", ("server", "state"))
        for server in ms.servers:
            servers.add_metric([server.name], 1 if server.running else 0)
            for flag in SERVER_STATE_FLAGS:
                states.add_metric([server.name, flag], 1 if server.has(flag) else 0)
        yield from (servers, states)
        primary = _g("mxha_maxscale_monitor_primary", ("monitor",))
        master = _g("mxha_maxscale_monitor_master", ("monitor", "server"))
        held = _g("mxha_maxscale_server_lock_held", ("monitor", "server"))
        mode = _g("mxha_maxscale_monitor_locks_mode", ("monitor", "mode"))
        for mon in ms.monitors:
            if mon.primary is not None:
                primary.add_metric([mon.name], 1 if mon.primary else 0)
            if mon.master is not None:
                master.add_metric([mon.name, mon.master], 1)
            for lock in mon.locks:
                if lock.held is not None:
                    held.add_metric([mon.name, lock.server], 1 if lock.held else 0)
            if mon.module == "mariadbmon":
                mode.add_metric([mon.name, mon.lock_mode], 1)
        yield from (primary, master, held, mode)


class ModeCollector:
    """The node config's coordination mode, so rules can tell passive pairs from lock pairs."""

    def render(self, snap: Snapshot) -> Iterator[Metric]:
        mode = _g("mxha_node_mode", ("mode",))
        mode.add_metric([snap.mode], 1)
        yield mode


class NotifyCollector:
    """The notify record: the last transition ``mxha notify`` acted on, and whether it worked."""

    def render(self, snap: Snapshot) -> Iterator[Metric]:
        n = snap.notify
        if n is None:
            return
        last_ok = _g("mxha_notify_last_success")
        last_ok.add_metric([], 1 if n.ok else 0)
        last_t = _g("mxha_notify_last_timestamp_seconds")
        last_t.add_metric([], n.time)
        yield from (last_ok, last_t)
        if n.desired_passive is not None:
            desired = _g("mxha_notify_desired_passive")
            desired.add_metric([], 1 if n.desired_passive else 0)
            yield desired
        yielded = _g("mxha_notify_yielded", ("peer",))
        if n.yielded_to is not None:
            yielded.add_metric([n.yielded_to], 1)
        yield yielded


class HazardCollector:
    """The node's setup hazards (``mxha.hazards``): one sample per hazard present."""

    def render(self, snap: Snapshot) -> Iterator[Metric]:
        family = _g("mxha_setup_hazard", ("hazard", "severity"))
        for hazard in snap.hazards:
            family.add_metric([hazard.hazard, hazard.severity], 1)
        yield family


class CheckCollector:
    """The health check the exporter keeps fresh on its own loop (never run by a scrape)."""

    def render(self, snap: Snapshot) -> Iterator[Metric]:
        ok = _g("mxha_check_success")
        ok.add_metric([], 1 if snap.check_success() else 0)
        yield ok
        if snap.check is not None:
            cd = _g("mxha_check_duration_seconds")
            cd.add_metric([], snap.check.duration_seconds)
            age = _g("mxha_check_age_seconds")
            age.add_metric([], max(0.0, snap.time - snap.check.checked_at))
            yield from (cd, age)


class SourceCollector(Protocol):
    def render(self, snap: Snapshot) -> Iterator[Metric]: ...


SOURCES: tuple[SourceCollector, ...] = (
    KeepalivedCollector(),
    VipCollector(),
    MaxScaleCollector(),
    ModeCollector(),
    NotifyCollector(),
    CheckCollector(),
    HazardCollector(),
)


class NodeCollector:
    """Takes ONE snapshot per scrape (its sources are read concurrently under one deadline) and
    lets each source's collector render its part of it."""

    def __init__(self, snapshot: Callable[[], Snapshot], sources: tuple[SourceCollector, ...] = SOURCES) -> None:
        self._snapshot = snapshot
        self._sources = sources

    def describe(self) -> Iterator[Metric]:
        """Every family it may yield, without reading anything: the registry learns the names
        (for ``name[]`` filtering) without a scrape at start-up."""
        for name in METRICS:
            if name != BUILD_INFO:  # BuildInfoCollector's
                yield _c(name) if name.endswith("_total") else _g(name)

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        for source in self._sources:
            yield from source.render(snap)


BUILD_INFO = "mxha_build_info"


class BuildInfoCollector:
    """Which mxha release runs (the ``*_build_info`` convention: join it onto other series by instance)."""

    def __init__(self, version: str = __version__) -> None:
        self._version = version

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        info = _g(BUILD_INFO, ("version",))
        info.add_metric([self._version], 1)
        yield info


def node_registry(snapshot: Callable[[], Snapshot], version: str = __version__) -> CollectorRegistry:
    """The exporter's registry: the node's families, its build, and what prometheus_client gives any
    Python process (``process_*``: CPU, memory, open files; ``python_info``)."""
    registry = CollectorRegistry(auto_describe=True)  # the library's collectors learn their names by a collect
    registry.register(NodeCollector(snapshot))
    registry.register(BuildInfoCollector(version))
    registry.register(ProcessCollector(registry=None))
    registry.register(PlatformCollector(registry=None))
    return registry

"""Lab scenarios: inject a real fault, sample every node's mode every 100 ms, report a
timeline, the figures (time to detect, time to heal, two-active seconds, VIP without an
active MaxScale) and a verdict; then bring the pair back to its baseline."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from mxha.lab.lab import NODES, Lab
from mxha.model import NodeState
from mxha.notify_record import NotifyRecord

SAMPLE_PERIOD = 0.1
LIMIT = 60.0  # generous: the targets are reported, not asserted


@dataclass
class Sample:
    t: float  # seconds since the scenario's start
    nodes: dict[str, dict[str, Any]]  # name -> {"vrrp", "vip", "passive"} (None: could not read)

    def active(self) -> list[str]:
        return [n for n, v in self.nodes.items() if v["passive"] is False]

    def vip_holders(self) -> list[str]:
        return [n for n, v in self.nodes.items() if v["vip"]]


@dataclass
class Report:
    name: str
    passed: bool = False
    checks: list[tuple[str, bool]] = field(default_factory=list)
    figures: dict[str, float | None] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    alerts: dict[str, float] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)

    def check(self, what: str, ok: bool) -> bool:
        self.checks.append((what, ok))
        return ok

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "checks": self.checks,
            "figures": self.figures,
            "events": self.events,
            "alerts": self.alerts,
            "actions": self.actions,
            "samples": [{"t": s.t, "nodes": s.nodes} for s in self.samples],
        }


class Sampler:
    """Reads both nodes every 100 ms and the firing alerts every 250 ms, in the background."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.t0 = time.monotonic()
        self.t0_wall = time.time()
        self.samples: list[Sample] = []
        self.alerts: dict[str, float] = {}
        self.marks: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._nodes, daemon=True),
            threading.Thread(target=self._alerts, daemon=True),
        ]
        self.http = requests.Session()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def mark(self, text: str) -> None:
        self.marks.append((round(self.now(), 2), text))

    def start(self) -> Sampler:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)

    def read_node(self, name: str) -> dict[str, Any]:
        addr = self.lab.layout.node(name)
        out: dict[str, Any] = {"vrrp": None, "vip": None, "passive": None}
        try:
            emu = self.http.get(f"http://{addr}:8989/__emulator__/state", timeout=0.3).json()
            out["passive"] = emu["passive"]
        except (requests.RequestException, ValueError, KeyError):
            pass
        try:
            state = NodeState.from_json(self.http.get(f"http://{addr}:9843/state", timeout=0.5).json())
            out["vrrp"] = state.governing_vrrp_state()
            out["vip"] = state.holds_governing_vip()
        except (requests.RequestException, ValueError):
            pass
        return out

    def _nodes(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.samples.append(Sample(round(self.now(), 3), {n: self.read_node(n) for n in NODES}))
            self._stop.wait(max(0.0, SAMPLE_PERIOD - (time.monotonic() - started)))

    def _alerts(self) -> None:
        """Alerts that became active after this scenario started (earlier ones may still be
        kept firing by keep_firing_for)."""
        from datetime import datetime

        url = f"http://{self.lab.layout.monitor}:9090/api/v1/alerts"
        while not self._stop.is_set():
            try:
                for alert in self.http.get(url, timeout=1).json()["data"]["alerts"]:
                    active_at = datetime.fromisoformat(alert["activeAt"].replace("Z", "+00:00")).timestamp()
                    if alert["state"] == "firing" and active_at >= self.t0_wall - 0.5:
                        self.alerts.setdefault(alert["labels"]["alertname"], round(self.now(), 2))
            except (requests.RequestException, ValueError, KeyError):
                pass
            self._stop.wait(0.25)

    def wait(
        self, what: str, predicate: Callable[[Sample], bool], timeout: float = LIMIT, since: float | None = None
    ) -> float | None:
        """Seconds (since start) of the first sample satisfying ``predicate`` from now on (or from
        ``since``, in scenario seconds), or None."""
        start = len(self.samples) if since is None else 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.samples[start:]:
                if predicate(s) and (since is None or s.t >= since):
                    return s.t
            time.sleep(0.05)
        self.mark(f"timed out waiting for {what}")
        return None

    def hold(self, seconds: float) -> None:
        time.sleep(seconds)


def two_active_seconds(samples: list[Sample], since: float = 0.0) -> float:
    total = 0.0
    for a, b in zip(samples, samples[1:], strict=False):
        if a.t >= since and len(a.active()) > 1:
            total += b.t - a.t
    return round(total, 2)


def longest_vip_without_active(samples: list[Sample]) -> float:
    longest = 0.0
    start: float | None = None
    for s in samples:
        holders = s.vip_holders()
        bad = bool(holders) and not any(s.nodes[h]["passive"] is False for h in holders)
        if bad and start is None:
            start = s.t
        elif not bad and start is not None:
            longest = max(longest, s.t - start)
            start = None
    if start is not None and samples:
        longest = max(longest, samples[-1].t - start)
    return round(longest, 2)


def timeline(samples: list[Sample]) -> list[tuple[float, str]]:
    events: list[tuple[float, str]] = []
    prev: dict[str, dict[str, Any]] = {}
    for s in samples:
        for name, view in s.nodes.items():
            before = prev.get(name, {})
            for key, label in (("vrrp", "VRRP"), ("vip", "VIP"), ("passive", "MaxScale")):
                if key in before and before[key] == view[key]:
                    continue
                if key == "passive":
                    value = {True: "passive", False: "ACTIVE", None: "down"}[view[key]]
                elif key == "vip":
                    value = {True: "held", False: "absent", None: "?"}[view[key]]
                else:
                    value = view[key] or "?"
                events.append((s.t, f"{name} {label} {value}"))
        prev = s.nodes
    return events


class Scenario:
    name = ""
    description = ""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.report = Report(self.name)

    def token(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.lab.token()}"}

    def set_passive(self, node: str, passive: bool) -> None:
        url = f"http://{self.lab.layout.node(node)}:8989/v1/maxscale"
        requests.patch(
            url,
            auth=("admin", "mariadb"),
            timeout=2,
            json={"data": {"attributes": {"parameters": {"passive": passive}}}},
        ).raise_for_status()

    def remediator_actions(self, since_wall: float) -> list[dict[str, Any]]:
        """From the audit trail (it survives a remediator restart); shared reconciles repeat
        their results, so only the reconciles that ran are read."""
        assert self.lab.harness is not None
        path = self.lab.harness.nodes["monitor"].workdir / "audit.jsonl"
        actions = []
        for line in path.read_text().splitlines() if path.exists() else []:
            record = json.loads(line)
            if record.get("shared"):
                continue
            actions += [a for a in record.get("results", []) if a["time"] >= since_wall]
        return sorted(actions, key=lambda a: a["time"])

    def wait_alerts_clear(self, timeout: float = 30.0) -> None:
        """So the next scenario starts with no alert of this one still kept firing."""
        url = f"http://{self.lab.layout.monitor}:9090/api/v1/alerts"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not requests.get(url, timeout=1).json()["data"]["alerts"]:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.5)

    def run(self) -> Report:
        started_wall = time.time()
        sampler = Sampler(self.lab).start()
        time.sleep(0.5)
        try:
            self.inject_and_observe(sampler)
        finally:
            try:
                self.restore(sampler)
            finally:
                sampler.stop()
        r = self.report
        r.samples = sampler.samples
        r.alerts = sampler.alerts
        r.actions = [{**a, "t": round(a["time"] - started_wall, 2)} for a in self.remediator_actions(started_wall)]
        r.events = sorted(
            timeline(sampler.samples)
            + sampler.marks
            + [(t, f"alert {name} firing") for name, t in sampler.alerts.items()]
            + [
                (a["t"], f"remediator {a['action']} {a['node']}: {a['result']} {a['reason']}".strip())
                for a in r.actions
            ]
        )
        r.figures["vip_without_active_max_s"] = longest_vip_without_active(sampler.samples)
        r.check("no remediator promotion left two MaxScales active", self._no_bad_promotion(r))
        r.passed = all(ok for _, ok in r.checks)
        return r

    def _no_bad_promotion(self, r: Report) -> bool:
        for action in r.actions:
            if action["action"] != "promote" or action["result"] != "success":
                continue
            window = [s for s in r.samples if action["t"] - 0.2 <= s.t <= action["t"] + 1.0]
            if any(len(s.active()) > 1 for s in window):
                return False
        return True

    def inject_and_observe(self, sampler: Sampler) -> None:
        raise NotImplementedError

    def restore(self, sampler: Sampler) -> None:
        t = sampler.wait("baseline", lambda s: baseline(s))
        self.report.check("pair back to baseline (node1 MASTER + VIP + active, node2 passive)", t is not None)
        self.wait_alerts_clear()


def baseline(s: Sample) -> bool:
    n1, n2 = s.nodes["node1"], s.nodes["node2"]
    return (
        n1["vrrp"] == "MASTER"
        and n1["vip"] is True
        and n1["passive"] is False
        and n2["vrrp"] == "BACKUP"
        and n2["vip"] is False
        and n2["passive"] is True
    )


class SplitBrain(Scenario):
    name = "split-brain"
    description = (
        "VRRP dropped into node2 (nftables): both become MASTER; node2's notify asks node1 over TCP "
        "and yields to it (node1 is the better keeper and active)"
    )
    heal_wait = 6.0

    def inject_and_observe(self, sampler: Sampler) -> None:
        r = self.report
        assert self.lab.harness is not None
        sampler.mark("inject: drop VRRP into node2 (nft)")
        since = sampler.now()
        self.lab.harness.block_vrrp("node2")
        t_both_master = sampler.wait("both MASTER", lambda s: all(v["vrrp"] == "MASTER" for v in s.nodes.values()))
        r.check("both nodes became VRRP MASTER", t_both_master is not None)
        self.observe_partition(sampler, since)
        sampler.mark("heal: VRRP allowed again")
        self.lab.harness.unblock_vrrp("node2")

    def observe_partition(self, sampler: Sampler, since: float) -> None:
        r = self.report
        sampler.hold(self.heal_wait)
        record = self.notify_record("node2")
        r.check("node2's notify yielded to node1 (its notify record)", record.yielded_to == "node1")
        view = self.node_state("node2")
        r.check(
            "node2's /state says it yielded to node1",
            view is not None and view.notify is not None and view.notify.yielded_to == "node1",
        )
        last = [s for s in sampler.samples if s.t >= sampler.now() - 4.0]
        r.check(
            "exactly one active (node1) during the partition",
            bool(last) and all(s.active() == ["node1"] for s in last),
        )
        r.figures["two_active_s"] = two_active_seconds(sampler.samples, since)
        r.figures["detect_s"] = (
            sampler.alerts["MaxScaleMultipleActive"] - since if "MaxScaleMultipleActive" in sampler.alerts else None
        )

    def notify_record(self, name: str) -> NotifyRecord:
        assert self.lab.harness is not None
        return NotifyRecord.read(str(self.lab.harness.nodes[name].workdir / "notify-state.json"))

    def node_state(self, name: str) -> NodeState | None:
        try:
            url = f"http://{self.lab.layout.node(name)}:9843/state"
            return NodeState.from_json(requests.get(url, timeout=2).json())
        except (requests.RequestException, ValueError):
            return None


class YieldThenKeeperDies(SplitBrain):
    name = "yield-then-keeper-dies"
    description = (
        "VRRP dropped into node2, node2 yields to node1; then node1's MaxScale dies (node1 goes FAULT). "
        "node2 stays MASTER, so keepalived runs no notify there: its check's follow-up must end the yield"
    )
    heal_wait = 3.0

    def observe_partition(self, sampler: Sampler, since: float) -> None:
        r = self.report
        sampler.hold(self.heal_wait)
        r.check("node2 yielded to node1", self.notify_record("node2").yielded_to == "node1")
        sampler.mark("inject: kill node1's MaxScale (SIGKILL)")
        killed_wall = time.time()
        t_kill = sampler.now()
        self.lab.stop_emulator("node1", hard=True)
        t_active = sampler.wait("node2 active", lambda s: s.nodes["node2"]["passive"] is False)
        r.check("node2 went active by itself", t_active is not None)
        promoted = [
            a
            for a in self.remediator_actions(killed_wall)
            if a["action"] == "promote" and a["node"] == "node2" and a["result"] == "success"
        ]
        r.check("without the remediator (no promotion of node2 in its audit trail)", not promoted)
        r.check("node2's yield is over (its notify record)", self.notify_record("node2").yielded_to is None)
        r.figures["heal_s"] = round(t_active - t_kill, 2) if t_active is not None else None
        r.figures["two_active_s"] = two_active_seconds(sampler.samples, since)
        sampler.mark("restore: start node1's MaxScale again")
        self.lab.start_emulator("node1")


class SplitBrainTutorial(Scenario):
    name = "split-brain-tutorial"
    description = (
        "the same fault, with the seed tutorial's notify script on both nodes instead of mxha notify "
        "(OUTFILE moved into the lab folder, maxctrl = mxha lab maxctrl): the baseline"
    )

    def inject_and_observe(self, sampler: Sampler) -> None:
        r = self.report
        assert self.lab.harness is not None
        self.lab.use_tutorial_notify(True)
        sampler.mark("setup: both nodes' notify is the tutorial's script (keepalived reloaded)")
        time.sleep(1.0)
        sampler.mark("inject: drop VRRP into node2 (nft)")
        since = sampler.now()
        self.lab.harness.block_vrrp("node2")
        t_both_master = sampler.wait("both MASTER", lambda s: all(v["vrrp"] == "MASTER" for v in s.nodes.values()))
        r.check("both nodes became VRRP MASTER", t_both_master is not None)
        t_both_active = sampler.wait("both active", lambda s: len(s.active()) > 1, timeout=15)
        r.check("the tutorial's script made both MaxScales active", t_both_active is not None)
        start = t_both_active if t_both_active is not None else since
        t_one = sampler.wait("one active again", lambda s: s.active() == ["node1"])
        r.check("the remediator left exactly one MaxScale active", t_one is not None)
        sampler.hold(3.0)
        r.figures["two_active_s"] = two_active_seconds(sampler.samples, since)
        r.figures["detect_s"] = (
            sampler.alerts["MaxScaleMultipleActive"] - start if "MaxScaleMultipleActive" in sampler.alerts else None
        )
        r.figures["heal_s"] = (t_one - start) if t_one is not None else None
        sampler.mark("heal: VRRP allowed again")
        self.lab.harness.unblock_vrrp("node2")

    def restore(self, sampler: Sampler) -> None:
        sampler.wait("node2 BACKUP", lambda s: s.nodes["node2"]["vrrp"] == "BACKUP", timeout=15)
        self.lab.use_tutorial_notify(False)
        sampler.mark("restore: mxha notify back on both nodes (keepalived reloaded)")
        super().restore(sampler)


class IsolatedNode(Scenario):
    name = "isolated-node"
    description = (
        "ALL traffic into node2 dropped (only the observing host still reaches it): node2 cannot ask "
        "node1, so it goes active after its peer budget (a dead peer must never block a takeover); "
        "two MaxScales are active until the partition ends: the price, stated"
    )
    partition_s = 8.0

    def inject_and_observe(self, sampler: Sampler) -> None:
        r = self.report
        assert self.lab.harness is not None
        sampler.mark("inject: drop all traffic into node2 but the observer's (nft)")
        since = sampler.now()
        self.lab.harness.isolate("node2", observer=self.lab.layout.host(1))
        t_master = sampler.wait("node2 MASTER", lambda s: s.nodes["node2"]["vrrp"] == "MASTER")
        r.check("node2 became VRRP MASTER", t_master is not None)
        t_two = sampler.wait("both active", lambda s: len(s.active()) > 1, timeout=15)
        r.check("node2 went active although it could not ask node1 (never blocked)", t_two is not None)
        if t_master is not None and t_two is not None:
            r.figures["node2_active_after_master_s"] = round(t_two - t_master, 2)
        sampler.hold(self.partition_s)
        t_heal = sampler.now()
        sampler.mark("heal: node2 reachable again")
        self.lab.harness.unblock_vrrp("node2")
        t_one = sampler.wait("one active again", lambda s: s.active() == ["node1"], timeout=20)
        r.check("two-active ended once the partition did", t_one is not None)
        r.figures["two_active_after_heal_s"] = round(t_one - t_heal, 2) if t_one is not None else None
        r.figures["two_active_s"] = two_active_seconds(sampler.samples, since)
        r.figures["partition_s"] = round(t_heal - since, 2)


class ActiveDies(Scenario):
    name = "active-dies"
    description = "node1's MaxScale killed: its check fails, the VIP and the active role move to node2"

    def inject_and_observe(self, sampler: Sampler) -> None:
        r = self.report
        sampler.mark("inject: kill node1's MaxScale (SIGKILL)")
        self.lab.stop_emulator("node1", hard=True)
        t_vip = sampler.wait("VIP on node2", lambda s: s.nodes["node2"]["vip"] is True)
        t_active = sampler.wait(
            "node2 active", lambda s: s.nodes["node2"]["passive"] is False and s.nodes["node2"]["vip"] is True
        )
        r.check("node2 took the VIP", t_vip is not None)
        r.check("node2's MaxScale became active", t_active is not None)
        r.figures["new_holder_active_after_vip_s"] = (
            (t_active - t_vip) if t_vip is not None and t_active is not None else None
        )
        r.figures["heal_s"] = t_active
        r.figures["two_active_s"] = two_active_seconds(sampler.samples)
        sampler.hold(2.0)
        sampler.mark("restore: start node1's MaxScale again (state file kept)")
        self.lab.start_emulator("node1")


class RestartActiveBackup(Scenario):
    name = "restart-active-backup"
    description = "node2's MaxScale restarted with passive=false persisted, as MaxScale really does"

    def inject_and_observe(self, sampler: Sampler) -> None:
        r = self.report
        assert self.lab.harness is not None
        state_file = self.lab.harness.nodes["node2"].workdir / "maxscale.state"
        sampler.mark("inject: restart node2's MaxScale with passive=false persisted")
        t_inject = sampler.now()
        self.lab.stop_emulator("node2")
        doc = json.loads(state_file.read_text()) if state_file.exists() else {}
        doc.setdefault("maxscale", {})["passive"] = False
        state_file.write_text(json.dumps(doc))
        inject_wall = time.time()
        self.lab.start_emulator("node2")
        t_started = sampler.now()
        t_up = sampler.wait(
            "node2 back active", lambda s: s.nodes["node2"]["passive"] is False, timeout=10, since=t_inject
        )
        if t_up is None and any(
            a["node"] == "node2" and a["action"] == "demote" and a["result"] == "success"
            for a in self.remediator_actions(inject_wall)
        ):
            # demoted before the 100 ms sampler saw it active (a delivery was already in flight)
            sampler.mark("node2 came back active and was demoted between two samples")
            t_up = t_started
        by_notify = False
        if t_up is None:
            # its check failed while MaxScale restarted (FAULT), and its own notify, retrying until
            # MaxScale answered, made it passive before the 100 ms sampler saw it active
            record = NotifyRecord.read(str(self.lab.harness.nodes["node2"].workdir / "notify-state.json"))
            by_notify = any(
                e.time >= inject_wall and e.ok is True and e.state in ("FAULT", "BACKUP") for e in record.history
            )
            if by_notify:
                sampler.mark("node2 came back active and its own notify (FAULT/BACKUP) made it passive")
                t_up = t_started
        t_demoted = sampler.wait(
            "node2 demoted", lambda s: s.nodes["node2"]["passive"] is True, since=t_up if t_up is not None else t_inject
        )
        r.check("node2 came back active (persisted mode)", t_up is not None)
        r.check("node2 was demoted (by the remediator, or by its own notify)", t_demoted is not None)
        r.figures["heal_s"] = (t_demoted - t_up) if t_up is not None and t_demoted is not None else None
        r.figures["two_active_s"] = two_active_seconds(sampler.samples)
        r.figures["detect_s"] = (
            sampler.alerts["MaxScaleMultipleActive"] - t_up
            if t_up is not None and "MaxScaleMultipleActive" in sampler.alerts
            else None
        )


class MasterPassive(Scenario):
    name = "master-passive"
    description = "the VIP holder's MaxScale set passive by hand"

    def inject_and_observe(self, sampler: Sampler) -> None:
        r = self.report
        sampler.mark("inject: maxctrl alter maxscale passive true on node1")
        self.set_passive("node1", True)
        t0 = sampler.wait("node1 passive", lambda s: s.nodes["node1"]["passive"] is True, timeout=5) or sampler.now()
        t_promoted = sampler.wait(
            "node1 active again", lambda s: s.nodes["node1"]["passive"] is False and s.nodes["node2"]["passive"] is True
        )
        r.check("the remediator promoted node1 again", t_promoted is not None)
        r.figures["heal_s"] = (t_promoted - t0) if t_promoted is not None else None
        r.figures["detect_s"] = (
            sampler.alerts["MaxScaleMasterPassive"] - t0 if "MaxScaleMasterPassive" in sampler.alerts else None
        )
        r.figures["two_active_s"] = two_active_seconds(sampler.samples)


class PrimaryUnseen(Scenario):
    name = "primary-unseen"
    description = (
        "node1's MaxScale (active, behind the VIP) cut off from the primary server, which node2's still "
        "sees (the emulators' shared backend; locks off, the seed's setup): node1's check fails "
        "(check.primary_seen_by_peers), keepalived moves the VIP and the hooks the active role before "
        "node1's MaxScale can fail the healthy primary over (6 ticks); the database-view alert fires "
        "and clears once the path is back"
    )
    watched = ("MaxScaleServerViewsDiffer", "MaxScaleVIPHolderSeesNoPrimary", "MaxScalePrimaryDisagreement")

    def backend(self) -> dict[str, Any]:
        url = f"http://{self.lab.layout.node('node1')}:8989/__emulator__/backend"
        return dict(requests.get(url, timeout=2).json())

    def reach(self, node: str, unreachable: list[str]) -> None:
        url = f"http://{self.lab.layout.node(node)}:8989/__emulator__/reach"
        requests.post(url, json={"unreachable": unreachable}, timeout=2).raise_for_status()

    def master(self) -> str | None:
        return next((s for s, i in self.backend()["servers"].items() if i["role"] == "master"), None)

    def firing(self) -> set[str]:
        url = f"http://{self.lab.layout.monitor}:9090/api/v1/alerts"
        alerts = requests.get(url, timeout=2).json()["data"]["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def inject_and_observe(self, sampler: Sampler) -> None:
        r = self.report
        before = self.master()
        sampler.mark(f"inject: node1's MaxScale cannot reach {before} (the primary); node2's still can")
        t0 = sampler.now()
        self.reach("node1", [before] if before else [])
        t_moved = sampler.wait(
            "node2 active with the VIP", lambda s: s.active() == ["node2"] and s.nodes["node2"]["vip"] is True, 30
        )
        r.check("the VIP and the active role moved to node2 (node1's check failed)", t_moved is not None)
        r.figures["active_moved_after_s"] = round(t_moved - t0, 2) if t_moved is not None else None
        t_alert = self._wait(sampler, lambda: "MaxScaleServerViewsDiffer" in sampler.alerts, 30)
        r.check("MaxScaleServerViewsDiffer fired", t_alert is not None)
        r.figures["views_differ_alert_after_s"] = (
            round(sampler.alerts["MaxScaleServerViewsDiffer"] - t0, 2) if t_alert is not None else None
        )
        sampler.hold(8.0)  # longer than node1's failover would take (6 ticks)
        r.check(f"no needless failover: {before} is still the primary", self.master() == before)
        r.check("MaxScalePrimaryDisagreement never fired", "MaxScalePrimaryDisagreement" not in sampler.alerts)
        sampler.mark("restore: node1's MaxScale reaches every server again")
        t1 = sampler.now()
        self.reach("node1", [])
        t_clear = self._wait(sampler, lambda: not (self.firing() & set(self.watched)), 40)
        r.check("the database-view alerts cleared", t_clear is not None)
        r.figures["clear_after_restore_s"] = round(t_clear - t1, 2) if t_clear is not None else None
        r.figures["two_active_s"] = two_active_seconds(sampler.samples)

    @staticmethod
    def _wait(sampler: Sampler, predicate: Callable[[], bool], timeout: float) -> float | None:
        """Scenario seconds when ``predicate`` first held, or None."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if predicate():
                    return sampler.now()
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.1)
        return None


class CircuitBreaker(Scenario):
    name = "circuit-breaker"
    description = "something keeps re-activating node2's MaxScale; the remediator gives up and says so"

    def inject_and_observe(self, sampler: Sampler) -> None:
        r = self.report
        stop = threading.Event()

        def saboteur() -> None:
            while not stop.wait(0.1):  # faster than the hooks' own once-a-check-interval fix
                try:
                    emu = requests.get(
                        f"http://{self.lab.layout.node('node2')}:8989/__emulator__/state", timeout=1
                    ).json()
                    if emu["passive"]:
                        self.set_passive("node2", False)
                except (requests.RequestException, ValueError, KeyError):
                    pass

        # a fresh remediator, so earlier scenarios' actions do not count in its circuit window
        self.lab.restart_remediator()
        sampler.mark("inject: a script re-activates node2's MaxScale whenever it is passive")
        thread = threading.Thread(target=saboteur, daemon=True)
        thread.start()
        t0 = sampler.now()
        status_url = f"http://{self.lab.layout.monitor}:9844/status"
        opened: float | None = None
        deadline = time.monotonic() + LIMIT
        while time.monotonic() < deadline and opened is None:
            try:
                if requests.get(status_url, headers=self.token(), timeout=2).json()["clusters"]["lab"]["circuit"][
                    "open"
                ]:
                    opened = sampler.now()
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.2)
        r.check("the circuit breaker opened (/status)", opened is not None)
        metric_ok = (
            'mxha_remediator_circuit_open{cluster="lab"} 1.0'
            in requests.get(f"http://{self.lab.layout.monitor}:9844/metrics", timeout=2).text
        )
        r.check("mxha_remediator_circuit_open is 1", metric_ok)
        t_alert = None
        end = time.monotonic() + 30
        while time.monotonic() < end and "MaxScaleRemediationFailing" not in sampler.alerts:
            time.sleep(0.2)
        t_alert = sampler.alerts.get("MaxScaleRemediationFailing")
        r.check("MaxScaleRemediationFailing fired", t_alert is not None)
        r.figures["circuit_open_after_s"] = (opened - t0) if opened is not None else None
        r.figures["detect_s"] = (t_alert - t0) if t_alert is not None else None
        stop.set()
        thread.join(3)
        sampler.mark("restore: saboteur stopped, remediator restarted (circuit reset), node2 set passive")
        self.lab.restart_remediator()
        self.set_passive("node2", True)
        r.figures["two_active_s"] = two_active_seconds(sampler.samples)


SCENARIOS: dict[str, type[Scenario]] = {
    c.name: c
    for c in (
        SplitBrain,
        SplitBrainTutorial,
        YieldThenKeeperDies,
        IsolatedNode,
        ActiveDies,
        RestartActiveBackup,
        MasterPassive,
        PrimaryUnseen,
        CircuitBreaker,
    )
}
TARGETS = {
    "split-brain": ("two_active_s", 0.5),
    "restart-active-backup": ("heal_s", 10.0),
    "active-dies": ("new_holder_active_after_vip_s", 1.0),
}


def print_report(r: Report) -> None:
    print(f"\n=== scenario {r.name}: {SCENARIOS[r.name].description}")
    for t, text in r.events:
        print(f"  {t:7.2f}s  {text}")
    figs = ", ".join(f"{k}={'n/a' if v is None else f'{v:.2f}'}" for k, v in r.figures.items())
    print(f"  figures: {figs}")
    for what, ok in r.checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {what}")
    print(f"  verdict: {'PASSED' if r.passed else 'FAILED'}")


def write_outputs(r: Report, out: Path) -> None:
    from mxha.lab.timeline_svg import render_svg

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{r.name}.json").write_text(json.dumps(r.to_json(), indent=1))
    (out / f"{r.name}.svg").write_text(render_svg(r))


def run_named(lab: Lab, name: str, out: Path | None) -> int:
    if not lab.is_up():
        print("the lab is not up: run `mxha lab up` first")
        return 1
    names = list(SCENARIOS) if name == "all" else [name]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario {unknown[0]}; choose from {', '.join(SCENARIOS)} or all")
        return 2
    reports = []
    for n in names:
        report = SCENARIOS[n](lab).run()
        print_report(report)
        if out:
            write_outputs(report, out)
        reports.append(report)
    if len(reports) > 1:
        print_summary(reports)
    return 0 if all(r.passed for r in reports) else 1


def print_summary(reports: list[Report]) -> None:
    print("\n| scenario | verdict | detect (s) | heal (s) | two-active (s) | VIP w/o active max (s) | target |")
    print("|---|---|---|---|---|---|---|")
    for r in reports:
        f = r.figures

        def fmt(key: str, f: dict[str, float | None] = f) -> str:
            v = f.get(key)
            return "n/a" if v is None else f"{v:.2f}"

        target = ""
        if r.name in TARGETS:
            key, limit = TARGETS[r.name]
            v = f.get(key)
            target = f"{key} <= {limit:g}: {'met' if v is not None and v <= limit else 'MISSED'}"
        print(
            f"| {r.name} | {'PASSED' if r.passed else 'FAILED'} | {fmt('detect_s')} | {fmt('heal_s')} | "
            f"{fmt('two_active_s')} | {fmt('vip_without_active_max_s')} | {target} |"
        )


def demo(lab: Lab, out: Path) -> int:
    print("bringing the lab up (real keepalived, Prometheus, Alertmanager in network namespaces)...")
    lab.up()
    try:
        reports = []
        for name in SCENARIOS:
            report = SCENARIOS[name](lab).run()
            print_report(report)
            write_outputs(report, out)
            reports.append(report)
        print_summary(reports)
        print(f"\ntimelines (SVG) and raw samples (JSON) in {out}/")
        return 0 if all(r.passed for r in reports) else 1
    finally:
        lab.down()

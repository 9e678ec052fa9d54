"""The database-view alerts against the RECORDED pair: two real MaxScale 24.02.4 over three real
MariaDB servers with cooperative locks (``shared/fixtures/maxscale-24.02.4-pair``).

Every poll of ``timeline.log`` (both MaxScales' monitor and server views, 0.25-1 s apart) becomes
the series the exporter would have exported, sampled each second (the lab's scrape interval), and
promtool evaluates the lab rules over the whole 4.5-minute recording. The recording has no VIP:
the VIP is taken to be on A throughout, and the pair is declared `mode: locks` (both MaxScales
active, locks on; steps 4, 7 and 10 make one passive: the tutorial's mixed setup). What must hold:
the recordings never make MaxScalePrimaryDisagreement, MaxScaleMultiplePrimaryMonitors or
MaxScaleNoPrimaryMonitor fire (handovers take about a second), nor any passive-mode rule; and the
recorded faults make their alerts fire: the one-sided partitions (ServerViewsDiffer, and
VIPHolderSeesNoPrimary where A showed no Master), the passive lock holder, the lock primary away
from the VIP.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, SHARED, requires_program
from test_alerts import JOB, STALE, Case

from mxha.alerts.generate import FILES
from mxha.alerts.rules import LAB

pytestmark = requires_program("promtool")
PAIR = SHARED / "fixtures" / "maxscale-24.02.4-pair"
MON = "MariaDB-Monitor"
CLUSTER = "pair"
SERVERS = ("server1", "server2", "server3")
SIDE = re.compile(r"([AB])\[primary=(True|False) master=(\S+) locks=(\S+) state=\w+(?: \| ([^\]]*))?\]")


@dataclass
class View:
    up: bool = False
    primary: bool = False
    master: str | None = None
    servers: dict[str, str] = field(default_factory=dict)  # name -> "Master+Running"
    passive: bool = False


def seconds(stamp: str) -> float:
    t = datetime.strptime(stamp, "%H:%M:%S.%f")
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def recorded_timeline() -> tuple[list[tuple[float, dict[str, View]]], dict[str, float]]:
    """(time, both views) after every poll or event, and the events' times."""
    views = {"A": View(), "B": View()}
    frames: list[tuple[float, dict[str, View]]] = []
    events: dict[str, float] = {}
    passive_changes = {
        "018-A-patch-passive-true": ("A", True),
        "023-A-patch-passive-false": ("A", False),
        "049-B-patch-passive-true": ("B", True),
        "074-B-patch-passive-false": ("B", False),
        "087-B-patch-passive-true": ("B", True),
        "094-B-patch-passive-false": ("B", False),
    }
    for line in (PAIR / "timeline.log").read_text().splitlines():
        m = re.match(r"^(\d\d:\d\d:\d\d\.\d+) (.*)$", line)
        if not m:
            continue
        t, rest = seconds(m.group(1)), m.group(2)
        if rest.startswith("EVENT "):
            name = rest.split()[1]
            events[name] = t
            if name in ("A-stopped", "B-stopped"):
                views[name[0]].up = False
        elif rest.startswith("SAVED ") and rest.split()[1].removesuffix(".json") in passive_changes:
            side, value = passive_changes[rest.split()[1].removesuffix(".json")]
            views[side].passive = value
        elif not rest.startswith("SAVED "):
            for side, primary, master, _locks, servers in SIDE.findall(rest):
                v = views[side]
                v.up, v.primary, v.master = True, primary == "True", master
                if servers:
                    v.servers = dict(item.split("=") for item in servers.split())
        frames.append((t, {k: View(v.up, v.primary, v.master, dict(v.servers), v.passive) for k, v in views.items()}))
    return frames, events


def build_case() -> tuple[Case, float, dict[str, float]]:
    frames, events = recorded_timeline()
    start = next(t for t, v in frames if v["A"].up and v["B"].up)
    end = frames[-1][0]
    steps = int(end - start) + 1
    case = Case(LAB, steps=steps)

    def at(step: int) -> dict[str, View]:
        t = start + step
        return [v for ft, v in frames if ft <= t][-1]

    timeline = [at(i) for i in range(steps)]

    def series(metric: str, side: str, value: Any, **labels: str) -> None:
        values: list[float | None] = []
        for views in timeline:
            v = views[side]
            got = value(v) if v.up else None
            values.append(STALE if got is None else float(got))
        case.add(metric, {"cluster": CLUSTER, "instance": f"{side}:9843", "job": JOB, **labels}, values)

    for side in "AB":
        series("mxha_maxscale_up", side, lambda v: 1)
        series("mxha_node_mode", side, lambda v: 1, mode="locks")
        series("mxha_vip_present", side, lambda v, s=side: 1 if s == "A" else 0, vip="198.51.100.100",
               vrrp_instance="VI_1", governing="true")  # fmt: skip
        series("mxha_maxscale_passive", side, lambda v: 1 if v.passive else 0)
        series("mxha_maxscale_monitor_primary", side, lambda v: 1 if v.primary else 0, monitor=MON)
        series("mxha_maxscale_monitor_locks_mode", side, lambda v: 1, monitor=MON, mode="majority_of_running")
        for server in SERVERS:
            series("mxha_maxscale_monitor_master", side, lambda v, s=server: 1 if v.master == s else None,
                   monitor=MON, server=server)  # fmt: skip
            for flag in ("Master", "Running", "Down"):

                def flag_of(v: View, s: str = server, f: str = flag) -> int | None:
                    parts = v.servers.get(s, "").split("+")
                    if not v.servers:
                        return None
                    return 1 if (f in parts or (f == "Down" and "Running" not in parts)) else 0

                series("mxha_maxscale_server_state", side, flag_of, server=server, state=flag)
    return case, start, events


NEVER = (
    "MaxScalePrimaryDisagreement",
    "MaxScaleMultiplePrimaryMonitors",
    "MaxScaleNoPrimaryMonitor",
    "MaxScaleMultipleActive",
    "MaxScaleBackupActive",
    "MaxScaleMasterPassive",
)


def test_the_recorded_pair_fires_what_it_should_and_nothing_else(tmp_path: Path) -> None:
    case, start, events = build_case()
    a = {"cluster": CLUSTER, "instance": "A:9843"}
    b_lock = {"cluster": CLUSTER, "instance": "B:9843", "job": JOB, "monitor": MON}
    a_lock = {**b_lock, "instance": "A:9843"}

    def step(event: str, after: float) -> int:
        return int(events[event] + after - start)

    # what the recorded faults must fire (eval times inside each fault, after the lab `for:`)
    case.expect("MaxScaleLockPrimaryNotVIPHolder", step("release", -1), [(b_lock, "1")])  # step 1: B locked first
    case.expect("MaxScaleLockPrimaryNotVIPHolder", step("release", 8), [])  # A took the locks
    case.expect("MaxScalePassiveHoldsLocks", step("passive-on", 4.5), [(a_lock, "1")])  # step 4
    case.expect("MaxScaleServerViewsDiffer", step("s6-cut", 7), [({"cluster": CLUSTER, "server": "server1"}, "1")])
    case.expect("MaxScaleVIPHolderSeesNoPrimary", step("s6-cut", 7), [(a, "1")])  # A: all "Slave, Running"
    case.expect("MaxScaleVIPHolderSeesNoPrimary", step("s6-cut", 15), [])  # A follows B's failover
    case.expect("MaxScaleServerViewsDiffer", step("s7-cut", 20), [({"cluster": CLUSTER, "server": "server2"}, "1")])
    case.expect("MaxScaleVIPHolderSeesNoPrimary", step("s7-cut", 20), [(a, "1")])  # the 40 s with no primary
    case.expect("MaxScalePassiveHoldsLocks", step("s7-cut", 20), [(b_lock, "1")])  # passive B kept the locks
    case.expect("MaxScaleServerViewsDiffer", step("s10-cut", 8), [({"cluster": CLUSTER, "server": "server2"}, "1")])
    case.expect("MaxScaleVIPHolderSeesNoPrimary", step("s10-cut", 8), [])  # A (lock primary) unaffected
    case.expect("MaxScalePassiveHoldsLocks", step("s10-cut", 8), [])  # B passive but secondary
    # and what it must never fire, checked every second of the recording
    for i in range(case.steps):
        for alert in NEVER:
            case.expect(alert, i, [])
    suite = {
        "rule_files": [str(REPO / "alerts" / FILES["lab"])],
        "evaluation_interval": LAB.scrape_interval,
        "tests": [case.to_test()],
    }
    (tmp_path / "pair.yml").write_text(yaml.safe_dump(suite, sort_keys=False))
    proc = subprocess.run(["promtool", "test", "rules", str(tmp_path / "pair.yml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_the_replay_reads_the_recording_as_its_readme_says() -> None:
    """The parsing is checked against the facts the fixture's README states."""
    frames, events = recorded_timeline()
    views = [v for t, v in frames if events["s6-cut"] + 3 <= t <= events["s6-cut"] + 7]
    assert views and all(v["B"].servers.get("server1") == "Down" for v in views)
    assert all(v["A"].servers.get("server1") == "Slave+Running" for v in views)
    after = [v for t, v in frames if events["s7-cut"] + 2 <= t <= events["s7-restore"] - 1]
    assert after and all(v["B"].passive and v["B"].primary for v in after)
    assert all("Master" not in "".join(v["A"].servers.values()) for v in after)


@pytest.mark.parametrize("mode", ["locks"])
def test_no_two_primaries_ever_named_in_the_recording(mode: str) -> None:
    frames, _ = recorded_timeline()
    both = [(v["A"].master, v["B"].master) for _, v in frames if v["A"].up and v["B"].up]
    assert both and all(a == b for a, b in both)

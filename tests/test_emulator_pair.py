"""Pair mode: two emulators over one shared backend replay the RECORDED pair of real MaxScale
24.02.4 (``shared/fixtures/maxscale-24.02.4-pair``), step by step, over real HTTP.

At each recorded point, the facts of the emulator's documents (monitor: ``primary``, ``lock_held``
per server, ``monitor_diagnostics.master``; servers: each ``state``; the status of a command) must
equal the facts of the recorded documents. Times are scaled (``time_scale``): a 1 s monitor tick
is 0.05 s here and the 60 s release-locks back-off 3 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import SHARED, control

from mxha.lab.emulator import EmulatedServer, Emulator
from mxha.lab.waiting import wait_for
from mxha.notify_record import NotifyRecord

PAIR = SHARED / "fixtures" / "maxscale-24.02.4-pair"
SCALE = 0.05
TICK = SCALE  # seconds per monitor tick here
MON = "MariaDB-Monitor"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((PAIR / f"{name}.json").read_text())


def monitor_facts(doc: dict[str, Any]) -> tuple[Any, ...]:
    data = doc["data"][0] if isinstance(doc["data"], list) else doc["data"]
    diag = data["attributes"]["monitor_diagnostics"]
    return diag["primary"], tuple(s["lock_held"] for s in diag["server_info"]), diag["master"]


def server_facts(doc: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["attributes"]["state"] for s in doc["data"]}


class Pair:
    def __init__(self, make: Callable[..., Emulator], backend: Path) -> None:
        self.make, self.backend = make, backend
        self.nodes: dict[str, Emulator] = {}

    def start(self, member: str, scale: float = SCALE, locks: str = "majority_of_running") -> Emulator:
        servers = [EmulatedServer(f"server{i}", "127.0.0.1", 23300 + i, "Running") for i in (1, 2, 3)]
        emu = self.make(
            backend=str(self.backend),
            member=member,
            nodename=member,
            time_scale=scale,
            lock_mode=locks,
            servers=servers,
        )
        self.nodes[member] = emu
        return emu

    def start_as_recorded(self) -> Emulator:
        """Step 1 of the recording: B first takes every lock, A started a moment later holds none.
        Returns A."""
        self.start("B")
        time.sleep(2 * TICK)
        a = self.start("A")
        self.expect("B", "02-B-get-monitor-start")
        return a

    def monitor(self, member: str) -> tuple[Any, ...]:
        url = f"{self.nodes[member].url}/v1/monitors/{MON}"
        return monitor_facts(requests.get(url, auth=("admin", "mariadb"), timeout=5).json())

    def servers(self, member: str) -> dict[str, str]:
        url = f"{self.nodes[member].url}/v1/servers"
        return server_facts(requests.get(url, auth=("admin", "mariadb"), timeout=5).json())

    def expect(self, member: str, monitor: str | None = None, servers: str | None = None, within: float = 1.0) -> None:
        """Wait (a few ticks at most) until the emulator shows what the recording shows."""
        if monitor:
            want = monitor_facts(recorded(monitor)["body"])
            wait_for(lambda: self.monitor(member) == want, within, f"{member} as {monitor}: {want}")
        if servers:
            want_s = server_facts(recorded(servers)["body"])
            wait_for(lambda: self.servers(member) == want_s, within, f"{member} as {servers}: {want_s}")

    def hold(self, member: str, monitor: str | None, servers: str | None, seconds: float) -> None:
        """The recording shows this for a while: it must stay so, tick after tick."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if monitor:
                assert self.monitor(member) == monitor_facts(recorded(monitor)["body"]), monitor
            if servers:
                assert self.servers(member) == server_facts(recorded(servers)["body"]), servers
            time.sleep(TICK)

    def patch_passive(self, member: str, passive: bool) -> int:
        url = f"{self.nodes[member].url}/v1/maxscale"
        body = {"data": {"attributes": {"parameters": {"passive": passive}}}}
        return requests.patch(url, json=body, auth=("admin", "mariadb"), timeout=5).status_code


@pytest.fixture
def pair(make_emulator: Callable[..., Emulator], tmp_path: Path) -> Pair:
    return Pair(make_emulator, tmp_path / "backend.json")


def test_the_recorded_pair_step_by_step(pair: Pair) -> None:
    # 1: B started first takes every lock; A, 0.3 s later, holds none
    pair.start("B")
    time.sleep(2 * TICK)
    pair.start("A")
    pair.expect("B", "02-B-get-monitor-start", "04-B-get-servers-start")
    pair.expect("A", "01-A-get-monitor-start", "03-A-get-servers-start")
    # 2: release-locks on B: 204, A is primary a tick later; 3: B does not lock again
    url = f"{pair.nodes['B'].url}/v1/maxscale/modules/mariadbmon/release-locks?{MON}"
    status = requests.post(url, auth=("admin", "mariadb"), timeout=5).status_code
    assert status == recorded("07-B-post-release-locks")["status"]
    pair.expect("A", "08-A-get-monitor-became-primary", within=3 * TICK + 0.5)
    pair.expect("B", "09-B-get-monitor-when-other-became-primary")
    pair.hold("B", "15-B-get-monitor-65s-after-release", "17-B-get-servers-65s-after-release", 65 * SCALE)
    pair.expect("A", "14-A-get-monitor-65s-after-release", "16-A-get-servers-65s-after-release")
    # 4: passive does not release the locks
    assert pair.patch_passive("A", True) == recorded("18-A-patch-passive-true")["status"]
    pair.hold("A", "19-A-get-monitor-5s-after-passive", "21-A-get-servers-5s-after-passive", 5 * SCALE)
    pair.hold("B", "20-B-get-monitor-5s-after-passive", None, 2 * TICK)
    assert pair.patch_passive("A", False) == recorded("23-A-patch-passive-false")["status"]
    # 5: stopping the lock primary hands the locks over; restarted, it comes back secondary
    pair.nodes["A"].stop()
    pair.expect("B", "27-B-get-monitor-primary-after-A-stop", "28-B-get-servers-after-A-stop", within=1.3)
    pair.start("A")
    pair.hold("A", "29-A-get-monitor-10s-after-A-restart", "31-A-get-servers-10s-after-A-restart", 10 * SCALE)
    pair.expect("B", "30-B-get-monitor-10s-after-A-restart", "32-B-get-servers-10s-after-A-restart")
    # 6: one-sided partition, both active, B lock primary: B loses server1 and fails it over
    control(pair.nodes["B"], "reach", {"unreachable": ["server1"]})
    pair.expect("B", "34-B-get-monitor-3s-after-cut-server1", "33-B-get-servers-3s-after-cut-server1")
    pair.expect("A", "36-A-get-monitor-3s-after-cut-server1", "35-A-get-servers-3s-after-cut-server1")
    pair.expect("B", "38-B-get-monitor-10s-after-cut-server1", "37-B-get-servers-10s-after-cut-server1", within=2)
    pair.expect("A", "40-A-get-monitor-10s-after-cut-server1", "39-A-get-servers-10s-after-cut-server1")
    pair.hold("A", "44-A-get-monitor-20s-after-cut-server1", "43-A-get-servers-20s-after-cut-server1", 10 * SCALE)
    control(pair.nodes["B"], "reach", {"unreachable": []})
    pair.expect("B", "46-B-get-monitor-15s-after-restore-server1", "45-B-get-servers-15s-after-restore-server1")
    pair.expect("A", "48-A-get-monitor-15s-after-restore-server1", "47-A-get-servers-15s-after-restore-server1")
    # 7: the tutorial's mixed setup: passive B keeps the locks; cut from the primary, nobody fails over
    assert pair.patch_passive("B", True) == recorded("49-B-patch-passive-true")["status"]
    pair.expect("B", "52-B-get-monitor-passive-before-cut")
    control(pair.nodes["B"], "reach", {"unreachable": ["server2"]})
    pair.expect("B", "55-B-get-monitor-3s-after-cut-server2", "54-B-get-servers-3s-after-cut-server2")
    pair.expect("A", "57-A-get-monitor-3s-after-cut-server2", "56-A-get-servers-3s-after-cut-server2")
    pair.hold("B", "67-B-get-monitor-40s-after-cut-server2", "66-B-get-servers-40s-after-cut-server2", 40 * SCALE)
    pair.hold("A", "69-A-get-monitor-40s-after-cut-server2", "68-A-get-servers-40s-after-cut-server2", 4 * TICK)
    control(pair.nodes["B"], "reach", {"unreachable": []})
    pair.expect("B", "71-B-get-monitor-15s-after-restore-server2", "70-B-get-servers-15s-after-restore-server2")
    pair.expect("A", "73-A-get-monitor-15s-after-restore-server2", "72-A-get-servers-15s-after-restore-server2")


def test_a_killed_member_s_locks_are_freed_and_release_without_locks_is_refused(pair: Pair) -> None:
    a = pair.start_as_recorded()
    # the secondary has nothing to release: MaxScale's own refusal, and it starts its back-off
    url = f"{a.url}/v1/maxscale/modules/mariadbmon/release-locks?{MON}"
    resp = requests.post(url, auth=("admin", "mariadb"), timeout=5)
    assert resp.status_code == 400 and "Did not release any locks" in resp.text
    # B vanishes without leaving (as after SIGKILL): its connections time out, A takes over
    pair.nodes["B"].state.pair._stop.set()
    pair.nodes["B"].state.pair.leave = lambda: None  # type: ignore[method-assign]
    wait_for(lambda: pair.monitor("A")[0] is True, 3 + 65 * SCALE, "A primary once B's locks time out")


def test_majority_of_all_needs_a_majority_of_every_server(pair: Pair) -> None:
    """NOT recorded (MariaDB's documentation): with 2 of 3 servers down nobody may lock."""
    b = pair.start("B")
    control(b, "monitor", {"cooperative_monitoring_locks": "majority_of_all"})
    wait_for(lambda: pair.monitor("B")[0] is True, 2, "B primary")
    control(b, "backend", {"servers": {"server2": {"up": False}, "server3": {"up": False}}})
    wait_for(lambda: pair.monitor("B")[0] is False, 2, "no majority of all: not primary")
    control(b, "monitor", {"cooperative_monitoring_locks": "majority_of_running"})
    wait_for(lambda: pair.monitor("B")[0] is True, 2, "1 of 1 running is a majority of the running")


def test_pair_control_routes_refuse_bad_input(pair: Pair, make_emulator: Callable[..., Emulator]) -> None:
    b = pair.start("B")
    for route, body in (("reach", {"unreachable": ["server9"]}), ("reach", {"unreachable": "x"})):
        resp = requests.post(f"{b.url}/__emulator__/{route}", json=body, timeout=5)
        assert resp.status_code == 400 and "error" in resp.json()
    single = make_emulator()
    assert requests.get(f"{single.url}/__emulator__/backend", timeout=5).status_code == 409


def test_notify_releases_only_the_locks_its_maxscale_holds(pair: Pair, tmp_path: Path) -> None:
    """Both nodes start BACKUP: releasing on the secondary would only start its one-minute
    back-off (the newer tutorial's release-on-BACKUP trap). Only the lock primary releases."""
    import subprocess

    from helpers import write_node_config

    from mxha.lab.node import installed_mxha

    pair.start_as_recorded()

    def notify(member: str) -> str:
        state = str(tmp_path / f"{member}-notify.json")
        cfg = write_node_config(
            tmp_path / f"{member}.yml", pair.nodes[member].url, node=member, notify={"state_file": state}
        )
        proc = subprocess.run(
            [installed_mxha(), "notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "BACKUP", "100"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    assert "locks MariaDB-Monitor: not held, not released" in notify("A")
    posts = [r for r in control(pair.nodes["A"], "requests")["requests"] if r["method"] == "POST"]
    assert posts == []
    pair.hold("B", "02-B-get-monitor-start", None, 4 * TICK)  # nothing moved
    assert "locks MariaDB-Monitor: released" in notify("B")  # the holder hands them over
    pair.expect("A", "08-A-get-monitor-became-primary", within=1.0)


def test_the_exporter_shows_each_maxscale_s_database_view_over_http(pair: Pair, tmp_path: Path) -> None:
    """A real `mxha exporter` per MaxScale, scraped over HTTP after the recorded one-sided partition's
    failover (it lasts until the path is back): /metrics and /state carry what each MaxScale believes,
    and they differ as recorded (fixtures 37-40)."""
    from helpers import MxhaServer, write_node_config

    from mxha.model import NodeState

    pair.start_as_recorded()
    control(pair.nodes["B"], "reach", {"unreachable": ["server1"]})
    pair.expect("B", "38-B-get-monitor-10s-after-cut-server1", "37-B-get-servers-10s-after-cut-server1", within=2)
    pair.expect("A", "40-A-get-monitor-10s-after-cut-server1", "39-A-get-servers-10s-after-cut-server1")
    views = {}
    for member in ("A", "B"):
        cfg = write_node_config(
            tmp_path / f"{member}.yml",
            pair.nodes[member].url,
            node=member,
            mode="locks",
            keepalived={"pid_file": str(tmp_path / "none.pid"), "dump_dir": str(tmp_path), "source": "json"},
        )
        with MxhaServer("exporter", cfg) as server:
            metrics = requests.get(server.url + "/metrics", timeout=10).text
            views[member] = (metrics, NodeState.from_json(requests.get(server.url + "/state", timeout=10).json()))
    b_metrics, b_state = views["B"]
    a_metrics, a_state = views["A"]
    assert 'mxha_maxscale_server_state{server="server1",state="Down"} 1.0' in b_metrics
    assert 'mxha_maxscale_server_state{server="server1",state="Running"} 1.0' in a_metrics
    for metrics in (a_metrics, b_metrics):  # both follow the failover: one primary named
        assert 'mxha_maxscale_monitor_master{monitor="MariaDB-Monitor",server="server2"} 1.0' in metrics
    assert 'mxha_maxscale_server_state{server="server2",state="Master"} 1.0' in a_metrics
    assert 'mxha_maxscale_monitor_primary{monitor="MariaDB-Monitor"} 1.0' in b_metrics
    assert 'mxha_maxscale_server_lock_held{monitor="MariaDB-Monitor",server="server1"}' not in b_metrics  # null
    assert 'mxha_maxscale_server_lock_held{monitor="MariaDB-Monitor",server="server2"} 1.0' in b_metrics
    assert 'mxha_maxscale_monitor_locks_mode{mode="majority_of_running",monitor="MariaDB-Monitor"} 1.0' in a_metrics
    assert 'mxha_node_mode{mode="locks"} 1.0' in a_metrics and a_state.mode == "locks"
    assert all(any(s.has("Master") for s in st.maxscale.servers) for st in (a_state, b_state))
    assert [(sv.name, sv.state) for sv in a_state.maxscale.servers][0] == ("server1", "Running")  # standalone
    assert [m.primary for m in b_state.maxscale.monitors] == [True]
    assert [(lk.server, lk.held) for lk in b_state.maxscale.monitors[0].locks] == [
        ("server1", None),
        ("server2", True),
        ("server3", True),
    ]


ALL_RUNNING = [("server1", "Master, Running"), ("server2", "Slave, Running"), ("server3", "Slave, Running")]


@pytest.mark.parametrize(
    "peer_sees,peer_vip,backoff,released",
    [
        (ALL_RUNNING, "now", False, True),
        (ALL_RUNNING, "late", False, True),  # takes the VIP 0.2 s after this node left it: polled
        (ALL_RUNNING, "never", False, False),  # keepalived's start: both BACKUP, the locks stay put
        (ALL_RUNNING, "now", True, False),  # its hook released 5 s ago: inside its no-relock back-off
        ([("server1", "Down"), ("server2", "Down"), ("server3", "Slave, Running")], "now", False, False),
        (None, "now", False, False),  # the peer cannot be read
    ],
)
def test_the_lock_holder_releases_only_when_a_peer_can_take_the_locks(
    pair: Pair,
    tmp_path: Path,
    peer_sees: list[tuple[str, str]] | None,
    peer_vip: str,
    backoff: bool,
    released: bool,
) -> None:
    import subprocess

    from helpers import StateServer, write_node_config

    from mxha.lab.node import installed_mxha

    pair.start_as_recorded()
    peer = StateServer("A")
    try:
        if peer_sees is None:
            peer.refuse()
        else:
            peer.servers = peer_sees
        if peer_vip == "now":
            peer.set("MASTER", True)
        elif peer_vip == "late":
            import threading

            threading.Timer(0.2, peer.set, args=("MASTER", True)).start()
        if backoff:
            peer.locks_released_at = time.time() - 5
        cfg = write_node_config(
            tmp_path / "B.yml",
            pair.nodes["B"].url,
            node="B",
            notify={"state_file": str(tmp_path / "B-notify.json"), "peer_budget": 0.5},
            peers=[{"name": "A", "state_url": peer.url}],
        )
        proc = subprocess.run(
            [installed_mxha(), "notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "FAULT", "100"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
    finally:
        peer.close()
    if released:
        assert "locks MariaDB-Monitor: released" in proc.stderr
        pair.expect("A", "08-A-get-monitor-became-primary", within=1.0)
    else:
        assert "locks MariaDB-Monitor: kept, no peer can take them" in proc.stderr
        pair.hold("B", "02-B-get-monitor-start", None, 4 * TICK)  # B keeps the cluster managed


def test_notify_in_locks_mode_keeps_maxscale_active_and_moves_only_the_locks(pair: Pair, tmp_path: Path) -> None:
    import subprocess

    from helpers import StateServer, write_node_config

    from mxha.lab.node import installed_mxha

    pair.start_as_recorded()
    peer = StateServer("A")
    peer.servers = ALL_RUNNING
    peer.set("MASTER", True)  # A holds the VIP: the locks belong there

    def notify(member: str, state: str) -> str:
        cfg = write_node_config(
            tmp_path / f"{member}.yml",
            pair.nodes[member].url,
            node=member,
            mode="locks",
            notify={"state_file": str(tmp_path / f"{member}-notify.json"), "peer_budget": 0.5},
            peers=[{"name": "A" if member == "B" else "B", "state_url": peer.url}],
        )
        proc = subprocess.run(
            [installed_mxha(), "notify", "--config.file", str(cfg), "INSTANCE", "VI_1", state, "100"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    try:
        out = notify("B", "BACKUP")  # the lock holder leaves MASTER: hands the locks over, stays active
        assert "passive=false set; locks MariaDB-Monitor: released" in out
        pair.expect("A", "08-A-get-monitor-became-primary", within=1.0)
        assert control(pair.nodes["B"], "state")["passive"] is False
        out = notify("A", "MASTER")  # going MASTER never releases anything
        assert "passive=false set;" in out and "locks" not in out.split("passive=false set;")[1].split(";")[0]
        pair.hold("A", "08-A-get-monitor-became-primary", None, 4 * TICK)
    finally:
        peer.close()


@pytest.mark.parametrize(
    "peer_sees,option,fails",
    [
        ("Slave, Running", True, True),  # cut off from a primary the peer still sees: fail, move the VIP
        ("Down", True, False),  # a database outage seen by every MaxScale: never fail every node
        (None, True, False),  # the peer cannot be read: no evidence, no failure
        ("Slave, Running", False, False),  # check.primary_seen_by_peers: false
    ],
)
def test_the_check_fails_a_maxscale_cut_off_from_a_primary_a_peer_sees(
    pair: Pair, tmp_path: Path, peer_sees: str | None, option: bool, fails: bool
) -> None:
    import subprocess

    from helpers import StateServer, write_node_config

    from mxha.lab.node import installed_mxha

    b = pair.start("B", scale=1.0, locks="none")  # real-time ticks: its failover would take 6 s
    control(b, "reach", {"unreachable": ["server1"]})
    wait_for(lambda: pair.servers("B")["server1"] == "Down", 5, "B sees server1 Down")
    assert pair.monitor("B")[2] == "server1"  # still named the primary
    peer = StateServer("A")
    if peer_sees is None:
        peer.refuse()
    else:
        peer.servers = [("server1", peer_sees), ("server2", "Slave, Running"), ("server3", "Slave, Running")]
    try:
        cfg = write_node_config(
            tmp_path / "B.yml",
            b.url,
            node="B",
            check={"expected_servers": ["server1", "server2", "server3"], "primary_seen_by_peers": option},
            peers=[{"name": "A", "state_url": peer.url}],
        )
        proc = subprocess.run(
            [installed_mxha(), "check", "--config.file", str(cfg)], capture_output=True, text=True, timeout=30
        )
    finally:
        peer.close()
    if fails:
        assert proc.returncode == 1
        assert proc.stdout.strip() == "FAIL: primary server1 is Down for this MaxScale but Running for A's"
    else:
        assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("mode,follow_up", [("locks", True), ("passive", True), ("locks", False)])
def test_the_check_hands_the_locks_to_the_vip_holder_when_no_notify_did(
    pair: Pair, tmp_path: Path, mode: str, follow_up: bool
) -> None:
    """B holds the locks and the VIP is elsewhere (keepalived's start: both BACKUP, the notify kept
    them; then A took the VIP, which runs no notify on B). B's next check looks again: its recheck
    hands the locks to A. In passive mode B is passive (the seed's mixed setup: a passive holder
    cannot fail over). ``check.follow_up: false`` (another notify script in charge) never does."""
    import subprocess

    from helpers import StateServer, write_node_config

    from mxha.lab.node import installed_mxha

    pair.start_as_recorded()
    if mode == "passive":
        assert pair.patch_passive("B", True) == 204
    peer = StateServer("A")
    peer.servers = ALL_RUNNING
    peer.set("MASTER", True)
    try:
        cfg = write_node_config(
            tmp_path / "B.yml",
            pair.nodes["B"].url,
            node="B",
            mode=mode,
            check={"expected_servers": ["server1", "server2", "server3"], "follow_up": follow_up},
            keepalived={"vips": ["198.51.100.250"]},  # an address this host does not have: the VIP is elsewhere
            notify={"state_file": str(tmp_path / "B-notify.json"), "peer_budget": 0.5},
            peers=[{"name": "A", "state_url": peer.url}],
        )
        proc = subprocess.run(
            [installed_mxha(), "check", "--config.file", str(cfg), "--follow-up"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stdout
        if follow_up:
            assert "recheck started: this MaxScale holds the locks but the VIP is elsewhere" in proc.stdout
            pair.expect("A", "08-A-get-monitor-became-primary", within=5.0)
            record = NotifyRecord.read(str(tmp_path / "B-notify.json"))
            assert record.locks_released_at is not None
            assert control(pair.nodes["B"], "state")["passive"] is (mode == "passive")
            # the mode was already right: the recheck moved the locks without writing it again (each
            # PATCH is persisted by MaxScale; the follow-up may look every 2 s)
            patches = [r for r in control(pair.nodes["B"], "requests")["requests"] if r["method"] == "PATCH"]
            assert len(patches) == (1 if mode == "passive" else 0)  # the test's own, in passive mode
        else:
            assert "recheck" not in proc.stdout
            pair.hold("B", "02-B-get-monitor-start", None, 10 * TICK)
    finally:
        peer.close()

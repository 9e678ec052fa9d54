"""``mxha doctor`` over real HTTP: the installed console script against the MaxScale emulator set
up (through its control API) to show each hazard MaxScale's REST API reveals, silent on a sane
setup; the RECORDED real 24.02.4 pair replayed by a local HTTP server; exit codes 0/1/2/3; and
that it only ever GETs."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import REPO, SHARED, control

from mxha.lab.emulator import EmulatedServer, Emulator

MXHA = REPO / ".venv" / "bin" / "mxha"
PAIR = SHARED / "fixtures" / "maxscale-24.02.4-pair"
THREE = [
    EmulatedServer("server1", "127.0.0.1", 3306, "Master, Running"),
    EmulatedServer("server2", "127.0.0.1", 3307, "Slave, Running"),
    EmulatedServer("server3", "127.0.0.1", 3308, "Slave, Running"),
]


def node_config(tmp_path: Path, maxscale_url: str, **extra: Any) -> Path:
    state_dir = tmp_path / "state"
    state_dir.mkdir(exist_ok=True)
    doc = {
        "node": "node1",
        "maxscale": {"url": maxscale_url},
        "keepalived": {"vips": ["198.51.100.100"], "dump_dir": str(tmp_path)},
        "notify": {"state_file": str(state_dir / "notify-state.json")},
        **extra,
    }
    path = tmp_path / "node.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def doctor(config: Path, *flags: str) -> tuple[int, str, dict[str, str]]:
    """Run the installed script; its exit code, its table, and hazard -> severity from the table."""
    proc = subprocess.run(
        [str(MXHA), "doctor", "--config.file", str(config), *flags], capture_output=True, text=True, timeout=30
    )
    rows: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("info", "warning", "critical"):
            rows[words[1]] = words[0]
    return proc.returncode, proc.stdout + proc.stderr, rows


def doctor_json(config: Path, *flags: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [str(MXHA), "doctor", "--config.file", str(config), "--format", "json", *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def three(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(servers=THREE)


def test_sane_passive_setup_is_silent_and_exits_0(tmp_path: Path, three: Emulator) -> None:
    control(three, "monitor", {"enforce_read_only_servers": True, "enforce_writable_master": True})
    control(three, "monitor", {"auto_failover": True})  # failover with read_only enforced: the tutorial's way
    code, out, rows = doctor(node_config(tmp_path, three.url))
    assert (code, rows) == (0, {}), out
    # what it could not see is said, not passed: no keepalived dump here, and no peers asked
    assert "not checked  state_dir_owner" in out and "not checked  clients_see_different_services" in out
    _, report = doctor_json(node_config(tmp_path, three.url))
    unchecked = {n["what"]: n["why"] for n in report["not_checked"]}
    assert unchecked["state_dir_owner"].startswith("keepalived's script user unknown")
    assert unchecked["clients_see_different_services"] == "cluster-wide: run with --peers"


def test_sane_locks_setup_shows_only_the_semisync_reminder(tmp_path: Path, three: Emulator) -> None:
    control(three, "monitor", {"cooperative_monitoring_locks": "majority_of_all", "auto_failover": True})
    control(three, "monitor", {"failcount": 10, "monitor_interval": "1000ms", "backend_read_timeout": "3s"})
    code, out, rows = doctor(node_config(tmp_path, three.url, mode="locks"))
    assert (code, rows) == (0, {"locks_need_semisync": "info"}), out


@pytest.mark.parametrize(
    ("monitor", "passive", "expected", "code"),
    [
        ({"auto_failover": True}, False, {"failover_without_read_only_enforcement": "warning"}, 1),
        (
            {"auto_failover": "safe", "enforce_read_only_servers": True},
            False,
            {"failover_without_read_only_enforcement": "warning"},
            1,
        ),  # 25.01's string form
        ({"cooperative_monitoring_locks": "majority_of_running"}, False, {"locks_not_partition_safe": "critical"}, 2),
        (
            {"cooperative_monitoring_locks": "majority_of_all"},
            True,
            {"passive_with_locks": "warning", "locks_need_semisync": "info"},
            1,
        ),
        (
            {"cooperative_monitoring_locks": "majority_of_all", "auto_failover": "true", "failcount": 5},
            False,
            {"failcount_below_lock_minimum": "warning", "locks_need_semisync": "info"},
            1,
        ),
    ],
)
def test_each_rest_hazard_over_http(
    tmp_path: Path, three: Emulator, monitor: dict[str, Any], passive: bool, expected: dict[str, str], code: int
) -> None:
    control(three, "monitor", monitor)
    control(three, "maxscale", {"passive": passive})
    mode = "passive" if monitor.get("cooperative_monitoring_locks", "none") == "none" else "locks"
    got_code, out, rows = doctor(node_config(tmp_path, three.url, mode=mode))
    assert (got_code, rows) == (code, expected), out


def test_majority_of_all_over_two_servers(tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    two = make_emulator()  # the emulator's default: two servers
    control(two, "monitor", {"cooperative_monitoring_locks": "majority_of_all"})
    code, out, rows = doctor(node_config(tmp_path, two.url, mode="locks"))
    assert (code, rows) == (1, {"locks_no_fault_tolerance": "warning", "locks_need_semisync": "info"}), out
    assert "over 2 servers (server1, server2)" in out.replace("\n", " ").replace("  ", " ") or "over 2" in out


def test_failcount_fixed_by_a_longer_failcount(tmp_path: Path, three: Emulator) -> None:
    control(three, "monitor", {"cooperative_monitoring_locks": "majority_of_all", "auto_failover": True})
    control(three, "monitor", {"failcount": 8, "backend_write_timeout": 3})  # 8 s = 7 s + 1 s: still a hazard
    assert "failcount_below_lock_minimum" in doctor(node_config(tmp_path, three.url, mode="locks"))[2]
    control(three, "monitor", {"failcount": 9})
    assert "failcount_below_lock_minimum" not in doctor(node_config(tmp_path, three.url, mode="locks"))[2]


def test_mode_mismatch_with_this_nodes_maxscale(tmp_path: Path, three: Emulator) -> None:
    control(three, "monitor", {"enforce_read_only_servers": True, "enforce_writable_master": True})
    code, out, rows = doctor(node_config(tmp_path, three.url, mode="locks"))  # but MaxScale's locks are none
    assert (code, rows) == (2, {"mode_mismatch": "critical"}), out


def test_it_only_reads(tmp_path: Path, three: Emulator) -> None:
    control(three, "monitor", {"cooperative_monitoring_locks": "majority_of_running"})
    requests.delete(f"{three.url}/__emulator__/requests", timeout=5)
    doctor(node_config(tmp_path, three.url, mode="locks"))
    seen = [r for r in control(three, "requests")["requests"] if r["path"].startswith("/v1")]
    assert len(seen) == 4 and {r["method"] for r in seen} == {"GET"}


def test_could_not_look(tmp_path: Path, three: Emulator) -> None:
    code, out, _ = doctor(node_config(tmp_path, "http://127.0.0.1:9"))  # nothing listens on port 9
    assert code == 3 and "could not look" in out
    control(three, "fault", {"mode": "reject_auth"})
    code, out, _ = doctor(node_config(tmp_path, three.url))
    assert code == 3 and "HTTP 401" in out and "mariadb" not in out  # never the password


def test_bad_config_and_bad_flag_exit_3_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("maxscale:\n  url: 12\n  bogus: 1\n")
    code, out, _ = doctor(bad)
    assert code == 3 and out.count("\n") == 1 and "maxscale." in out and "Traceback" not in out
    proc = subprocess.run([str(MXHA), "doctor", "--no-such-flag"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1


# -- JSON over HTTP on loopback ------------------------------------------------------------------
class JsonServer(http.server.ThreadingHTTPServer):
    """Answers GETs with ``answer(path)``: a status and a JSON document."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), JsonHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, path: str) -> tuple[int, Any]:
        raise NotImplementedError


class JsonHandler(http.server.BaseHTTPRequestHandler):
    server: JsonServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        status, doc = self.server.answer(self.path)
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def serving(make: Callable[..., JsonServer]) -> Iterator[Callable[..., JsonServer]]:
    """A fixture's body: ``start(...)`` serves ``make(...)`` in a thread; all stopped at teardown."""
    servers: list[JsonServer] = []

    def start(*args: Any, **kwargs: Any) -> JsonServer:
        srv = make(*args, **kwargs)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


# -- the recorded real pair, replayed over HTTP ---------------------------------------------------
class Replay(JsonServer):
    """Serves recorded MaxScale bodies: the monitor's own document as the /v1/monitors collection
    (the recording read /v1/monitors/MariaDB-Monitor); anything not recorded is 404."""

    def __init__(self, maxscale: str, monitor: str) -> None:
        def body(name: str) -> Any:
            return json.loads((PAIR / f"{name}.json").read_text())["body"]

        mon = body(monitor)
        self.routes = {"/v1/maxscale": body(maxscale), "/v1/monitors": {**mon, "data": [mon["data"]]}}
        super().__init__()

    def answer(self, path: str) -> tuple[int, Any]:
        doc = self.routes.get(path.rstrip("/"))
        return (200, doc) if doc is not None else (404, {"errors": [{"detail": "not recorded"}]})


@pytest.fixture
def replay() -> Iterator[Callable[..., JsonServer]]:
    yield from serving(Replay)


def test_recorded_pair_passive_step_yields_its_hazards_and_nothing_else(
    tmp_path: Path, replay: Callable[..., JsonServer]
) -> None:
    a = replay("22-A-get-maxscale-passive", "19-A-get-monitor-5s-after-passive").url  # step 4: A passive
    # B's /v1/maxscale was not read in step 4; it was passive=false from the start until step 7
    b = replay("06-B-get-maxscale-start", "20-B-get-monitor-5s-after-passive").url
    peers = [{"name": "node2", "state_url": "http://127.0.0.1:9/state", "maxscale": {"url": b}}]
    config = node_config(tmp_path, a, mode="locks", peers=peers, exporter={"listen_address": "127.0.0.1:9"})
    code, report = doctor_json(config, "--peers")
    found = sorted((f["node"], f["hazard"], f["severity"]) for f in report["findings"])
    assert found == [
        ("node1", "failcount_below_lock_minimum", "warning"),
        ("node1", "locks_not_partition_safe", "critical"),
        ("node1", "passive_with_locks", "warning"),  # only A was passive
        ("node2", "failcount_below_lock_minimum", "warning"),
        ("node2", "locks_not_partition_safe", "critical"),
    ], report
    assert code == report["exit"] == 2
    unchecked = {(n["node"], n["what"]): n["why"] for n in report["not_checked"]}
    # services and listeners were not recorded: said, not passed
    for what in ("clients_see_different_services", "identical_version_string"):
        assert unchecked["cluster", what] == (
            "not read: node1's /v1/listeners, node1's /v1/services, node2's /v1/listeners, node2's /v1/services"
        )
    # and neither were the exporters' /state: no priorities, clocks or peers' modes claimed
    assert ("node1", "this node's /state") in unchecked and ("node2", "its /state") in unchecked
    # the evidence carries the recording's numbers, from each MaxScale
    evidence = [f["evidence"] for f in report["findings"] if f["hazard"] == "failcount_below_lock_minimum"]
    assert all("failcount 5 x monitor_interval 1s = 5s" in e and "wait_timeout 7s" in e for e in evidence)
    # the table says the same to a person
    code, out, rows = doctor(config, "--peers")
    assert code == 2 and set(rows) == {f[1] for f in found} and "not checked" in out


# -- the emulator's control API for the monitor parameters involved ------------------------------
@pytest.mark.parametrize(
    "payload",
    [
        {"failcount": 0},
        {"failcount": True},
        {"monitor_interval": "50ms"},
        {"backend_read_timeout": "1500ms"},  # MaxScale takes whole seconds only
        {"backend_connect_timeout": 0},
        {"enforce_writable_master": "yes"},
        {"auto_failover": "maybe"},
        {"cooperative_monitoring_locks": "all"},
        {"replication_password": "x"},  # not one this emulator sets
        {},
    ],
)
def test_emulator_refuses_what_maxscale_would(three: Emulator, payload: dict[str, Any]) -> None:
    resp = requests.post(f"{three.url}/__emulator__/monitor", json=payload, timeout=5)
    assert resp.status_code == 400 and resp.json()["error"]


def test_emulator_monitor_parameters_shown_and_kept_across_restart(
    tmp_path: Path, make_emulator: Callable[..., Emulator]
) -> None:
    state = str(tmp_path / "emulator-state.json")
    first = make_emulator(state_file=state)
    answer = control(first, "monitor", {"failcount": 9, "monitor_interval": "2s", "backend_write_timeout": 4})
    assert answer == {"failcount": 9, "monitor_interval": "2000ms", "backend_write_timeout": "4000ms"}
    control(first, "monitor", {"auto_failover": "safe"})
    first.stop()
    again = make_emulator(state_file=state)
    doc = requests.get(f"{again.url}/v1/monitors", auth=("admin", "mariadb"), timeout=5).json()
    params = doc["data"][0]["attributes"]["parameters"]
    assert (params["failcount"], params["monitor_interval"], params["backend_write_timeout"]) == (9, "2000ms", "4000ms")
    assert params["auto_failover"] == "safe" and params["cooperative_monitoring_locks"] == "none"


# -- the node's files and the cluster's /state documents -----------------------------------------
GOLDEN_STATE = json.loads((REPO / "tests" / "golden" / "state.json").read_text())


class StateServer(JsonServer):
    """An exporter's /state as the contract shapes it (the golden document), with this node's
    name, priority, mode and clock (its ``time`` is written at each request, ``skew`` off)."""

    def __init__(self, node: str, base_priority: int, mode: str = "passive", skew: float = 0.0) -> None:
        self.node, self.base_priority, self.mode, self.skew = node, base_priority, mode, skew
        super().__init__()

    def answer(self, path: str) -> tuple[int, Any]:
        return (200 if path == "/state" else 404), self.document()

    def document(self) -> dict[str, Any]:
        import copy
        import time

        doc = copy.deepcopy(GOLDEN_STATE)
        doc.update(node=self.node, time=time.time() + self.skew, mode=self.mode)
        doc["keepalived"]["instances"][0]["base_priority"] = self.base_priority
        doc["maxscale"]["locks"] = "none" if self.mode == "passive" else "majority_of_all"
        return doc


@pytest.fixture
def state_server() -> Iterator[Callable[..., JsonServer]]:
    yield from serving(StateServer)


def sane(emulator: Emulator) -> None:
    control(emulator, "monitor", {"enforce_read_only_servers": True, "enforce_writable_master": True})


def cluster_config(tmp_path: Path, emulator: Emulator, own: StateServer, peer: StateServer) -> Path:
    peers = [{"name": "node2", "state_url": f"{peer.url}/state"}]
    listen = own.url.removeprefix("http://")
    return node_config(tmp_path, emulator.url, peers=peers, exporter={"listen_address": listen})


def test_cluster_sane_is_silent(tmp_path: Path, three: Emulator, state_server: Callable[..., StateServer]) -> None:
    sane(three)
    config = cluster_config(tmp_path, three, state_server("node1", 150), state_server("node2", 100))
    code, report = doctor_json(config, "--peers")
    assert (code, report["findings"]) == (0, []), report
    unchecked = {(n["node"], n["what"]) for n in report["not_checked"]}
    # no peers[].maxscale: its MaxScale and the clients' view are said to be unchecked
    assert ("node2", "its MaxScale's setup") in unchecked and ("cluster", "clients_see_different_services") in unchecked


def test_cluster_priority_tie_clock_skew_and_mode_mismatch(
    tmp_path: Path, three: Emulator, state_server: Callable[..., StateServer]
) -> None:
    sane(three)
    own, peer = state_server("node1", 150), state_server("node2", 150, mode="locks", skew=5.0)
    code, report = doctor_json(cluster_config(tmp_path, three, own, peer), "--peers")
    found = {f["hazard"]: f for f in report["findings"]}
    assert set(found) == {"priority_tie", "clock_skew", "mode_mismatch"}, report
    assert code == 2  # mode_mismatch is critical
    assert "node1, node2 at 150" in found["priority_tie"]["evidence"]
    assert "node2 +5.0s" in found["clock_skew"]["evidence"] or "node2 +4.9s" in found["clock_skew"]["evidence"]
    assert "node2 mode: locks" in found["mode_mismatch"]["evidence"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_state_dir_owner_from_the_files_and_keepalived_dump(tmp_path: Path, three: Emulator) -> None:
    sane(three)
    config = node_config(tmp_path, three.url)
    (tmp_path / "keepalived.data").write_text(" Default script uid:gid 0:0\n")  # as keepalived 2.2.7 dumps it
    record = tmp_path / "state" / "notify-state.json"
    record.write_text("{}")
    code, report = doctor_json(config)
    assert (code, report["findings"]) == (0, []), report
    os.chown(record, 65534, 65534)  # left by a run as another user
    code, report = doctor_json(config)
    assert code == 1 and [f["hazard"] for f in report["findings"]] == ["state_dir_owner"], report
    assert "notify-state.json is" in report["findings"][0]["evidence"]
    os.chown(record, 0, 0)
    (tmp_path / "keepalived.data").write_text(" Default script uid:gid 65534:65534\n")
    code, report = doctor_json(config)
    assert code == 1 and "keepalived runs scripts as" in report["findings"][0]["evidence"], report


# -- the exporter publishes the same rules on its own slow interval ------------------------------
def test_setup_watch_reads_on_its_interval_not_per_call(tmp_path: Path, three: Emulator) -> None:
    from mxha.config import load_node_config
    from mxha.doctor import SetupWatch
    from mxha.lab.waiting import wait_for

    control(three, "monitor", {"cooperative_monitoring_locks": "majority_of_running"})
    requests.delete(f"{three.url}/__emulator__/requests", timeout=5)
    watch = SetupWatch(load_node_config(str(node_config(tmp_path, three.url, mode="locks"))), interval=3600)
    assert watch.hazards() == ()  # the first look has only started: a caller never waits for it
    wait_for(lambda: watch.reads == 1, 10, "the first look")
    for _ in range(5):
        found = watch.hazards()
    assert [h.hazard for h in found] == ["locks_not_partition_safe"]
    control(three, "fault", {"mode": "refuse", "duration": 30})  # MaxScale gone: the setup is still what it was
    watch.interval, watch._due = 0.0, 0.0
    watch.hazards()
    wait_for(lambda: watch.reads == 2, 10, "the second look")
    assert [h.hazard for h in watch.hazards()] == ["locks_not_partition_safe"]


def start_exporter(config: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    from mxha.lab.waiting import wait_for

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(MXHA), "exporter", "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: requests.get(f"{url}/healthz", timeout=1).status_code < 500, 20, "the exporter")
    return proc, url


def published(url: str) -> dict[str, str]:
    state = requests.get(f"{url}/state", timeout=5).json()
    return {h["hazard"]: h["severity"] for h in state["hazards"]}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_the_exporter_publishes_the_state_dir_owner(tmp_path: Path, three: Emulator) -> None:
    from mxha.lab.waiting import wait_for

    sane(three)
    config = node_config(
        tmp_path,
        three.url,
        keepalived={"vips": ["198.51.100.100"], "dump_dir": str(tmp_path), "pid_file": str(tmp_path / "none.pid")},
    )
    (tmp_path / "keepalived.data").write_text(" Default script uid:gid 0:0\n")
    record = tmp_path / "state" / "notify-state.json.lock"
    record.write_text("")
    os.chown(record, 65534, 65534)
    proc, url = start_exporter(config)
    try:
        wait_for(lambda: published(url) == {"state_dir_owner": "warning"}, 20, "state_dir_owner in /state")
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_exporter_publishes_maxscales_setup_hazards(tmp_path: Path, three: Emulator) -> None:
    from mxha.lab.waiting import wait_for

    control(three, "monitor", {"cooperative_monitoring_locks": "majority_of_running", "auto_failover": True})
    keepalived = {"vips": ["198.51.100.100"], "pid_file": str(tmp_path / "none.pid")}
    proc, url = start_exporter(node_config(tmp_path, three.url, mode="locks", keepalived=keepalived))
    try:
        wait_for(lambda: "locks_not_partition_safe" in published(url), 20, "the setup hazards in /state")
        assert published(url) == {"locks_not_partition_safe": "critical", "failcount_below_lock_minimum": "warning"}
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        assert 'mxha_setup_hazard{hazard="locks_not_partition_safe",severity="critical"} 1.0' in metrics
        assert 'mxha_setup_hazard{hazard="failcount_below_lock_minimum",severity="warning"} 1.0' in metrics
    finally:
        proc.terminate()
        proc.wait(10)


# -- what clients see through the VIP, every node's MaxScale read over HTTP ----------------------
def pair_config(tmp_path: Path, own: Emulator, peer: Emulator) -> Path:
    peers = [{"name": "node2", "state_url": "http://127.0.0.1:9/state", "maxscale": {"url": peer.url}}]
    return node_config(tmp_path, own.url, peers=peers, exporter={"listen_address": "127.0.0.1:9"})


@pytest.mark.parametrize(
    ("node2_service", "expected", "code"),
    [
        ({"version_string": "10.11-node2"}, [], 0),
        ({}, [("identical_version_string", "info")], 0),  # both left unset
        ({"version_string": "10.11-node2", "port": 4007}, [("clients_see_different_services", "warning")], 1),
        (
            {"version_string": "10.11-node2", "servers": ["server1", "server2"]},
            [("clients_see_different_services", "warning")],
            1,
        ),
    ],
)
def test_client_view_across_nodes(
    tmp_path: Path,
    make_emulator: Callable[..., Emulator],
    node2_service: dict[str, Any],
    expected: list[tuple[str, str]],
    code: int,
) -> None:
    node1, node2 = make_emulator(servers=THREE), make_emulator(servers=THREE)
    for emu in (node1, node2):
        sane(emu)
    if "version_string" in node2_service:
        control(node1, "services", {"version_string": "10.11-node1"})
    if node2_service:
        control(node2, "services", node2_service)
    got, report = doctor_json(pair_config(tmp_path, node1, node2), "--peers")
    assert [(f["hazard"], f["severity"]) for f in report["findings"]] == expected, report
    assert got == code
    unchecked = {n["what"] for n in report["not_checked"]}
    assert "clients_see_different_services" not in unchecked and "identical_version_string" not in unchecked
    if expected and expected[0][0] == "clients_see_different_services":
        what = "listener RW-Split-Listener" if "port" in node2_service else "service RW-Split-Router"
        assert what in report["findings"][0]["evidence"]


def test_emulator_services_control_refuses_unknown_servers(three: Emulator) -> None:
    resp = requests.post(f"{three.url}/__emulator__/services", json={"servers": ["server9"]}, timeout=5)
    assert resp.status_code == 400
    doc = requests.get(f"{three.url}/v1/listeners", auth=("admin", "mariadb"), timeout=5).json()
    assert doc["data"][0]["attributes"]["parameters"]["port"] == 4006

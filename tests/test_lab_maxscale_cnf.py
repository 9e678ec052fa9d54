"""The maxscale.cnf the lab writes for a real MaxScale (``mxha.lab.maxscale_cnf``), checked by the
doctor's own rules, and the stand-in executable (``mxha.lab.maxscale_standin``) that runs the
emulator from MaxScale's command line and that file, as a real process over real HTTP."""

from __future__ import annotations

import configparser
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import control
from helpers import free_port

from mxha.hazards import maxscale_hazards
from mxha.lab import database, mariadb, maxscale_cnf, maxscale_standin
from mxha.lab.waiting import wait_for

ACCOUNTS = database.DatabaseAccounts("mon-pw", "svc-pw", "client-pw", "repl-pw")
SERVERS = [database.ServerAddress(name, f"198.51.100.{21 + i}", 3306) for i, name in enumerate(database.SERVER_NAMES)]


def parsed(text: str) -> configparser.ConfigParser:
    cnf = configparser.ConfigParser(interpolation=None, strict=True)
    cnf.read_string(text)
    return cnf


def node_cnf(node: str, address: str, mode: str) -> configparser.ConfigParser:
    return parsed(maxscale_cnf.maxscale_cnf(node, address, mode, SERVERS, ACCOUNTS))


@pytest.mark.parametrize("mode", ["passive", "locks"])
def test_clients_see_the_same_monitor_service_and_listener_on_every_node(mode: str) -> None:
    node1, node2 = node_cnf("node1", "198.51.100.11", mode), node_cnf("node2", "198.51.100.12", mode)
    assert node1.sections() == node2.sections()
    for section in node1.sections():
        one, two = dict(node1[section]), dict(node2[section])
        if section == "maxscale":
            assert (one.pop("admin_host"), two.pop("admin_host")) == ("198.51.100.11", "198.51.100.12")
        if section == maxscale_cnf.SERVICE:
            # each node's own version string, so a client can tell which node answered
            assert (one.pop("version_string"), two.pop("version_string")) == (
                maxscale_cnf.version_string("node1"),
                maxscale_cnf.version_string("node2"),
            )
        assert one == two, section
    assert node1[maxscale_cnf.MONITOR]["servers"] == "server1,server2,server3"
    assert node1[maxscale_cnf.LISTENER]["port"] == str(maxscale_cnf.LISTENER_PORT)
    assert node1["maxscale"]["admin_port"] == "8989"


def test_the_mode_sets_the_locks_and_how_maxscale_starts() -> None:
    passive, locks = node_cnf("node1", "198.51.100.11", "passive"), node_cnf("node1", "198.51.100.11", "locks")
    assert passive[maxscale_cnf.MONITOR]["cooperative_monitoring_locks"] == "none"
    assert passive["maxscale"]["passive"] == "true"
    assert locks[maxscale_cnf.MONITOR]["cooperative_monitoring_locks"] == "majority_of_all"
    assert locks["maxscale"]["passive"] == "false"
    with pytest.raises(ValueError, match="mode must be one of"):
        maxscale_cnf.maxscale_cnf("node1", "198.51.100.11", "active", SERVERS, ACCOUNTS)


def test_the_monitor_settings_are_written_out_with_failover_on() -> None:
    mon = node_cnf("node1", "198.51.100.11", "locks")[maxscale_cnf.MONITOR]
    written = ("monitor_interval", "failcount", "backend_connect_timeout", "failover_timeout", "master_failure_timeout")
    for key in written:
        assert mon.get(key), key
    assert mon["auto_failover"] == "true"
    assert (mon["user"], mon["password"]) == (database.MONITOR_USER, "mon-pw")
    assert (mon["replication_user"], mon["replication_password"]) == (database.REPLICATION_USER, "repl-pw")
    service = node_cnf("node1", "198.51.100.11", "locks")[maxscale_cnf.SERVICE]
    assert (service["user"], service["password"]) == (database.SERVICE_USER, "svc-pw")


def doctor_hazards(mode: str, params: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The doctor's MaxScale rules over the monitor as MaxScale's REST API would show it."""
    maxscale_doc = {"data": {"attributes": {"parameters": {"passive": mode == "passive"}}}}
    monitors_doc = {
        "data": [
            {
                "id": maxscale_cnf.MONITOR,
                "attributes": {"module": "mariadbmon", "parameters": params},
                "relationships": {"servers": {"data": [{"id": s.name, "type": "servers"} for s in SERVERS]}},
            }
        ]
    }
    found, skipped = maxscale_hazards(maxscale_doc, monitors_doc)
    return sorted(h.hazard for h in found), [s.hazard for s in skipped]


def test_the_doctor_finds_only_the_hazards_the_lab_keeps_on_purpose() -> None:
    timings = maxscale_cnf.MonitorTimings()
    passive = maxscale_cnf.monitor_parameters("passive", timings, ACCOUNTS)
    locks = maxscale_cnf.monitor_parameters("locks", timings, ACCOUNTS)
    # passive=true in the cnf is the passive lab's start, the hooks make the VIP holder active
    assert doctor_hazards("passive", passive) == ([], [])
    assert doctor_hazards("locks", locks) == (["locks_need_semisync"], [])


@pytest.mark.parametrize(
    "timings",
    [
        maxscale_cnf.MonitorTimings(),
        maxscale_cnf.MonitorTimings(monitor_interval_ms=500, backend_read_timeout_s=2, backend_write_timeout_s=2),
        maxscale_cnf.MonitorTimings(monitor_interval_ms=2000, backend_read_timeout_s=10, backend_write_timeout_s=10),
    ],
)
def test_failcount_is_the_smallest_the_doctors_rule_passes(timings: maxscale_cnf.MonitorTimings) -> None:
    params = maxscale_cnf.monitor_parameters("locks", timings, ACCOUNTS)
    assert "failcount_below_lock_minimum" not in doctor_hazards("locks", params)[0]
    if params["failcount"] > 5:  # above MaxScale's default only because the rule needs it
        one_less = {**params, "failcount": params["failcount"] - 1}
        assert "failcount_below_lock_minimum" in doctor_hazards("locks", one_less)[0]


def test_the_cnf_file_is_owner_only(tmp_path: Path) -> None:
    path = maxscale_cnf.write_cnf(tmp_path / "maxscale.cnf", "[maxscale]\n")
    assert path.stat().st_mode & 0o777 == 0o600


# -- the stand-in, as a real process ------------------------------------------------------------


def maxscale_dirs(root: Path) -> list[str]:
    """MaxScale's directory options, each its own folder under root (as the lab gives them)."""
    argv = []
    for flag, name in (("-L", "log"), ("-A", "cache"), ("-D", "data"), ("-F", "persist"), ("-P", "run")):
        argv += [flag, str(root / name)]
    for flag, name in (("-N", "lang"), ("-M", "module-config"), ("-C", "config")):
        argv += [flag, str(root / name)]
    return argv


def test_the_standin_runs_the_emulator_from_maxscales_command_line(tmp_path: Path) -> None:
    port = free_port()
    cnf = maxscale_cnf.write_cnf(
        tmp_path / "maxscale.cnf",
        # its SQL listener on a free port: the cnf's 4006 on every address may be taken on this host
        maxscale_cnf.maxscale_cnf(
            "node1", "127.0.0.1", "locks", SERVERS, ACCOUNTS, admin_port=port, listener_port=free_port()
        ),
    )
    exe = maxscale_standin.write_executable(tmp_path / "maxscale")
    proc = subprocess.Popen(
        [str(exe), "-d", "-f", str(cnf), *maxscale_dirs(tmp_path), "-U", "root"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/v1"
    auth = ("admin", "mariadb")  # MaxScale's default admin account: its users are not in the cnf
    try:
        wait_for(lambda: requests.get(f"{base}/maxscale", auth=auth, timeout=1).ok, timeout=20, what="the stand-in")
        assert (tmp_path / "run" / "maxscale.pid").read_text().strip() == str(proc.pid)
        params = requests.get(f"{base}/maxscale", auth=auth, timeout=5).json()["data"]["attributes"]["parameters"]
        assert params["passive"] is False
        monitor = requests.get(f"{base}/monitors/{maxscale_cnf.MONITOR}", auth=auth, timeout=5).json()["data"]
        assert monitor["attributes"]["parameters"]["cooperative_monitoring_locks"] == "majority_of_all"
        servers = requests.get(f"{base}/servers", auth=auth, timeout=5).json()["data"]
        assert {s["id"]: s["attributes"]["parameters"]["address"] for s in servers} == {s.name: s.host for s in SERVERS}
        # wrong credentials are refused, as MaxScale refuses them
        assert requests.get(f"{base}/maxscale", auth=("admin", "nope"), timeout=5).status_code == 401
        # a runtime change is kept under the persist directory (-F), as MaxScale keeps it
        resp = requests.patch(
            f"{base}/maxscale", json={"data": {"attributes": {"parameters": {"passive": True}}}}, auth=auth, timeout=5
        )
        assert resp.status_code == 204, resp.text
        assert any((tmp_path / "persist").iterdir())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("cnf_text", "named"),
    [
        ("[maxscale]\nadmin_port=eighty\n", "[maxscale] admin_port"),
        ("[maxscale]\npassive=maybe\n", "[maxscale] passive"),
        ("[other]\n", "no [maxscale] section"),
        ("[maxscale]\n[m]\ntype=monitor\nservers=s1\n", "servers: s1 is not a type=server section"),
        (
            "[maxscale]\n[m]\ntype=monitor\nservers=s1\ncooperative_monitoring_locks=all\n[s1]\ntype=server\naddress=a\n",
            "cooperative_monitoring_locks",
        ),
        (
            "[maxscale]\n[m]\ntype=monitor\nservers=s1\nmonitor_interval=soon\n[s1]\ntype=server\naddress=a\n",
            "monitor_interval",
        ),
        (
            "[maxscale]\n[m]\ntype=monitor\nservers=s1\n[s1]\ntype=server\naddress=a\n[l]\ntype=listener\nport=x\n",
            "[l] port",
        ),
    ],
)
def test_a_bad_cnf_stops_the_standin_with_one_line_naming_the_key(tmp_path: Path, cnf_text: str, named: str) -> None:
    cnf = tmp_path / "maxscale.cnf"
    cnf.write_text(cnf_text)
    exe = maxscale_standin.write_executable(tmp_path / "maxscale")
    proc = subprocess.run([str(exe), "-d", "-f", str(cnf)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and named in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_standin_says_what_it_is_and_checks_a_config(tmp_path: Path) -> None:
    exe = maxscale_standin.write_executable(tmp_path / "maxscale")
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert version.stdout.startswith(f"MaxScale {maxscale_standin.VERSION}")
    assert maxscale_standin.STANDIN_MARK in version.stdout
    cnf = maxscale_cnf.write_cnf(
        tmp_path / "maxscale.cnf", maxscale_cnf.maxscale_cnf("node1", "127.0.0.1", "passive", SERVERS, ACCOUNTS)
    )
    check = subprocess.run([str(exe), "-c", "-f", str(cnf)], capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, check.stderr


# -- the lab's side of --maxscale, without namespaces -------------------------------------------


def test_status_names_the_binary_and_the_database_servers_only_with_maxscale(tmp_path: Path) -> None:
    from mxha.lab.lab import Lab

    emulated = Lab(tmp_path / "emulated").describe()
    assert emulated["maxscale"] is None and emulated["database_servers"] == [] and emulated["sql_listener"] is None
    assert all(n["maxscale_binary"] is None for n in emulated["nodes"])
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "lab.json").write_text(json.dumps({"maxscale": "/opt/maxscale/bin/maxscale"}))
    real = Lab(tmp_path / "real").describe()
    assert [n["maxscale_binary"] for n in real["nodes"]] == ["/opt/maxscale/bin/maxscale"] * 2
    assert real["database_servers"] == ["198.51.100.21:3306", "198.51.100.22:3306", "198.51.100.23:3306"]
    assert real["sql_listener"] == f"198.51.100.100:{maxscale_cnf.LISTENER_PORT}"
    # everything else is the emulator lab's
    strip = ("maxscale", "database_servers", "sql_listener", "lab_dir", "webhook_token_file", "remediator_config_file")
    assert {k: v for k, v in real.items() if k not in (*strip, "nodes")} == {
        k: v for k, v in emulated.items() if k not in (*strip, "nodes")
    }


def test_which_scenarios_a_lab_skips_and_why(tmp_path: Path) -> None:
    """A fault only the emulator can play is skipped on any --maxscale lab; primary-unseen and
    locks-follow-vip run on a real MaxScale, and on the stand-in only in passive mode (its locks are
    its own: there is no handover to see)."""
    from mxha.lab.lab import Lab
    from mxha.lab.scenarios import (
        CircuitBreaker,
        LocksFollowVip,
        LocksTrap,
        PrimaryUnseen,
        Replicas,
        RestartActiveBackup,
    )

    standin = maxscale_standin.write_executable(tmp_path / "maxscale")
    real = tmp_path / "real-maxscale"  # answers --version as MaxScale does
    real.write_text('#!/bin/sh\necho "MaxScale 24.02.4 - f72af99"\n')
    real.chmod(0o755)

    def lab(name: str, **saved: str) -> Lab:
        (tmp_path / name).mkdir()
        (tmp_path / name / "lab.json").write_text(json.dumps(saved))
        return Lab(tmp_path / name)

    emulated = lab("emulated", mode="locks")
    assert PrimaryUnseen.skip_reason(emulated) == RestartActiveBackup.skip_reason(emulated) == ""
    assert CircuitBreaker.skip_reason(emulated) == ""
    for binary in (standin, real):
        for mode in ("passive", "locks"):
            on = lab(f"{binary.name}-{mode}", maxscale=str(binary), mode=mode)
            assert CircuitBreaker.skip_reason(on).startswith("its saboteur reads the emulator")
            # a restart of the binary is a real fault: it runs on every lab
            assert RestartActiveBackup.skip_reason(on) == Replicas.skip_reason(on) == ""
            assert LocksTrap.skip_reason(on).startswith("it starts the pair afresh by deleting the emulators'")
            for scenario in (PrimaryUnseen, LocksFollowVip):
                skipped = scenario.skip_reason(on)
                if binary == standin and mode == "locks":
                    assert "stand-in has no cooperative locks shared with its peer" in skipped
                else:
                    assert skipped == "", (scenario.name, binary, mode)


def test_maxscale_and_maxctrl_paths_are_checked_before_anything_starts(tmp_path: Path) -> None:
    from mxha.lab.lab import _real_maxscale
    from mxha.lab.netns import HarnessError

    assert _real_maxscale(None, None) == (None, None)
    with pytest.raises(HarnessError, match="--maxctrl: only with --maxscale"):
        _real_maxscale(None, "/usr/bin/true")
    with pytest.raises(HarnessError, match="--maxscale: .*nope is not an executable file"):
        _real_maxscale(str(tmp_path / "nope"), None)
    (tmp_path / "plain").write_text("")
    with pytest.raises(HarnessError, match="--maxctrl: .*plain is not an executable file"):
        _real_maxscale("/usr/bin/true", str(tmp_path / "plain"))
    if mariadb.missing() is None:
        assert _real_maxscale("true", None) == ("/usr/bin/true", None)  # found on PATH, made absolute


def test_the_lab_reads_a_maxscales_mode_and_primary_over_its_rest_api(make_emulator: Any) -> None:
    """What the lab follows of a real MaxScale (``maxscale_view``), read from one over real HTTP
    (the emulator here): its mode, the locks, the server its monitor names primary, and whether it
    sees that server Running."""
    from mxha.lab.lab import maxscale_view

    emulator = make_emulator(host="127.0.0.1", passive=True)
    view = maxscale_view(emulator.url)
    assert view == {"passive": True, "locks": None, "primary": "server1", "sees_primary": True}
    control(emulator, "servers", {"server1": "Down"})  # the monitor then names no primary
    assert maxscale_view(emulator.url) == {"passive": True, "locks": None, "primary": None, "sees_primary": None}
    locking = make_emulator(host="127.0.0.1", lock_mode="majority_of_all")
    assert maxscale_view(locking.url)["locks"] is True


def test_a_real_maxscale_lab_keeps_maxscales_own_relock_backoff() -> None:
    """MaxScale's no-relock back-off is fixed in its source: hooks told a shorter one would hand locks
    to a MaxScale that cannot take them for a minute. Only the emulator lab can shorten it."""
    from mxha.lab.lab import RELOCK_BACKOFF, _relock_backoff
    from mxha.lab.netns import HarnessError

    assert _relock_backoff(None, 15.0) == 15.0 and _relock_backoff(None, None) is None  # the emulator lab's
    assert _relock_backoff("/usr/sbin/maxscale", None) == RELOCK_BACKOFF == 60  # whatever a lab before kept
    assert _relock_backoff("/usr/sbin/maxscale", 60.0) == 60
    with pytest.raises(HarnessError, match="--relock-backoff: a real MaxScale's no-relock back-off is 60 s"):
        _relock_backoff("/usr/sbin/maxscale", 15.0)

"""``mxha lab up --maxscale PATH`` end to end, with the stand-in as PATH (MaxScale is not installed
here; the real binary is checked from outside): the lab writes each node's maxscale.cnf, starts the
binary with MaxScale's command line and its own directories, runs three real MariaDB servers with
GTID replication in their own namespace, says in ``status --json`` which binary and version each
node runs, settles as the emulator lab does, and ``down`` leaves nothing behind."""

from __future__ import annotations

import configparser
import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pair import HARNESS_SUBNET

from mxha.lab import database, mariadb, maxscale_cnf, maxscale_standin
from mxha.lab.lab import Lab
from mxha.lab.netns import have_netns, run
from mxha.lab.waiting import wait_for
from mxha.lab.writer import connect_to

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(have_netns() is not None, reason=f"the lab: {have_netns()}"),
    pytest.mark.skipif(mariadb.missing() is not None, reason=str(mariadb.missing())),
]
LAB_DIR = Path("/run/mxha-lab-maxscale-test")
# beside the emulator lab's tests (tests/conftest.py): its own namespace names and the other half
PREFIX, SUBNET = "mxhm", HARNESS_SUBNET


def addr(index: int) -> str:
    """The lab's .index on SUBNET (node1 is .11, the database servers .21-.23, the VIP .100)."""
    return str(ipaddress.ip_network(SUBNET).network_address + index)


def mxha(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mxha", *args], capture_output=True, text=True, timeout=timeout)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def test_lab_up_with_a_maxscale_binary_runs_it_over_real_mariadb_and_down_leaves_nothing(tmp_path: Path) -> None:
    exe = maxscale_standin.write_executable(tmp_path / "maxscale")
    # a maxctrl that records its calls, then does what maxctrl does (the lab's compatible command)
    calls = tmp_path / "maxctrl-calls"
    maxctrl = tmp_path / "maxctrl"
    maxctrl.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {sys.executable} -m mxha lab maxctrl "$@"\n')
    maxctrl.chmod(0o755)
    up = mxha(
        "lab",
        "up",
        "--maxscale",
        str(exe),
        "--maxctrl",
        str(maxctrl),
        "--subnet",
        SUBNET,
        "--prefix",
        PREFIX,
        "--dir",
        str(LAB_DIR),
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"SQL listener {addr(100)}:{maxscale_cnf.LISTENER_PORT}" in up.stdout, up.stdout
        status = mxha("lab", "status", "--json", "--dir", str(LAB_DIR))
        assert status.returncode == 0, status.stdout + status.stderr
        desc = json.loads(status.stdout)
        assert desc["up"] is True and desc["maxscale"] == str(exe)
        assert desc["maxctrl"] == str(maxctrl)
        assert desc["database_servers"] == [f"{addr(i)}:3306" for i in (21, 22, 23)]
        assert desc["sql_listener"] == f"{addr(100)}:{maxscale_cnf.LISTENER_PORT}"
        for node in desc["nodes"]:
            assert node["maxscale_binary"] == str(exe)
            assert node["maxscale_version"] == maxscale_standin.VERSION
            # the binary got the lab's cnf and its own directories on MaxScale's command line
            home = LAB_DIR / node["name"] / "maxscale"
            cnf = configparser.ConfigParser(interpolation=None)
            cnf.read(home / "maxscale.cnf")
            assert cnf["maxscale"]["admin_host"] == node["address"]
            assert (home / "run" / "maxscale.pid").exists()
        # a fault only the emulator can play: SKIPPED with why, exit 0
        skipped = mxha("lab", "scenario", "circuit-breaker", "--dir", str(LAB_DIR))
        assert skipped.returncode == 0, skipped.stdout + skipped.stderr
        assert "=== scenario circuit-breaker: SKIPPED: its saboteur reads the emulator" in skipped.stdout
        # real faults run unchanged (the REST API; SIGKILL and a restart of the binary), with the
        # writer's figures: it writes through the VIP to the stand-in's listener, which forwards to
        # the real primary; in active-dies the VIP moves to node2 and the writes go on through it
        # restart-active-backup: node2's binary stopped and started from a cnf saying passive=false with
        # its persist folder emptied comes back active, and is made passive again
        for name in ("master-passive", "active-dies", "split-brain-tutorial", "restart-active-backup"):
            ran = mxha("lab", "scenario", name, "--dir", str(LAB_DIR), "--out", str(tmp_path / "out"))
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert "verdict: PASSED" in ran.stdout
            writes = re.search(r"writes: (\d+) acknowledged of (\d+), (\d+) failed", ran.stdout)
            assert writes is not None and int(writes[1]) > 0, ran.stdout
            assert "lost writes (acknowledged, missing on the final primary server1): none" in ran.stdout
            assert "errant GTIDs: none" in ran.stdout
            if name == "active-dies":
                # the writer reconnected through the VIP on node2: node2's listener took its session
                assert f"forwarded to the master {addr(21)}:3306" in (LAB_DIR / "maxscale-node2.log").read_text()
                figures = json.loads((tmp_path / "out" / "active-dies.json").read_text())["figures"]
                assert figures["lost_writes"] == 0 and figures["errant_gtids"] == 0, figures
        # primary-unseen: nftables in node1's namespace rejects its traffic to server1 (.21:3306) only;
        # the stand-in's monitor sees server1 Down, node2's still sees it, the hooks move the role,
        # and no MaxScale fails server1 over; the writer's writes go on through node2, none lost
        ran = mxha("lab", "scenario", "primary-unseen", "--dir", str(LAB_DIR), "--out", str(tmp_path / "out"))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "verdict: PASSED" in ran.stdout
        assert f"inject: nftables in node1's namespace rejects its traffic to server1 ({addr(21)}:3306)" in ran.stdout
        assert "MaxScale's own failover: none (server1 still the primary for every MaxScale" in ran.stdout
        writes = re.search(r"writes: (\d+) acknowledged of (\d+), (\d+) failed", ran.stdout)
        assert writes is not None and int(writes[1]) > 0, ran.stdout
        assert "lost writes (acknowledged, missing on the final primary server1): none" in ran.stdout
        assert "errant GTIDs: none" in ran.stdout
        figures = json.loads((tmp_path / "out" / "primary-unseen.json").read_text())["figures"]
        assert figures["maxscale_failover_after_s"] is None and figures["failover_threshold_s"] == 8.0, figures
        assert figures["role_moved_ahead_s"] is not None and figures["primary_unseen_after_s"] is not None, figures
        tables = run("ip", "netns", "exec", f"{PREFIX}-node1", "nft", "list", "tables").stdout
        assert "mxha_dbcut" not in tables  # the cut is gone with the scenario
        # the writer's report reads the real servers: at rest every write goes through the VIP to server1
        lab = Lab(LAB_DIR)
        writer = lab.writer().start()
        wait_for(lambda: writer.snapshot()[1] >= 3, timeout=20, what="three acknowledged writes")
        report = lab.writer_report(writer.stop())
        assert report.final_primary == "server1" and report.unread == {}
        assert report.acknowledged >= 3 and report.lost == [] and report.errant == {"server2": [], "server3": []}
        # the database servers replicate from .21 with the accounts the cnf names
        accounts = database.DatabaseAccounts.load(LAB_DIR / "db-accounts.json")
        with (
            connect_to(addr(21), 3306, database.CLIENT_USER, accounts.client_password, 5) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(database.INSERT_WRITE, (7, 7, 1.0))  # run 7: no writer's (theirs are times in ns)
            cur.execute("SELECT @@gtid_binlog_pos")
            row = cur.fetchone()
        assert row is not None
        with (
            connect_to(addr(23), 3306, database.MONITOR_USER, accounts.monitor_password, 15) as conn,  # waits <= 10 s
            conn.cursor() as cur,
        ):
            cur.execute("SELECT MASTER_GTID_WAIT(%s, 10)", (row[0],))
            cur.execute(database.SELECT_WRITES, (7,))
            assert (7,) in cur.fetchall()
        # the seed tutorial's notify script ran the maxctrl given with --maxscale
        assert "alter maxscale passive" in calls.read_text()
    finally:
        record = json.loads((LAB_DIR / "harness.json").read_text()) if (LAB_DIR / "harness.json").exists() else {}
        pids = [p["pid"] for p in record.get("processes", [])]
        down = mxha("lab", "down", "--dir", str(LAB_DIR))
    assert down.returncode == 0, down.stderr
    assert not LAB_DIR.exists()
    assert not any(ns.startswith(f"{PREFIX}-") for ns in run("ip", "netns", "list").stdout.split())
    labels = {p["label"] for p in record["processes"]}
    assert {"maxscale-node1", "maxscale-node2", "mariadb-server1", "mariadb-server3"} <= labels, labels
    assert not any(alive(pid) for pid in pids)


def test_a_maxscale_path_that_is_not_executable_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = mxha("lab", "up", "--maxscale", str(tmp_path / "nope"), "--dir", str(tmp_path / "lab"))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "--maxscale" in proc.stderr, proc.stderr
    assert not (tmp_path / "lab").exists()

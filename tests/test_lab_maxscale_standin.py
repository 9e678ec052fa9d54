"""The MaxScale stand-in (``mxha.lab.maxscale_standin``) over three real mariadbd on loopback, as a
real process: its SQL listener forwards a client's writes to the server its REST API calls Master,
its monitor shows a server it cannot connect to Down (while still naming it master, as a real
MaxScale does), a client then gets no session, and killing the stand-in's pid ends all of it."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import cluster_addresses, free_port, loopback_cluster

from mxha.lab import database, mariadb, maxscale_cnf, maxscale_standin
from mxha.lab.waiting import wait_for
from mxha.lab.writer import Writer, writer_report

AUTH = ("admin", "mariadb")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[database.ReplicatedCluster]:
    yield from loopback_cluster(tmp_path_factory.mktemp("standin-db"))


def rest(port: int, path: str) -> Any:
    return requests.get(f"http://127.0.0.1:{port}/v1/{path}", auth=AUTH, timeout=2).json()["data"]


def states(port: int) -> dict[str, str]:
    return {s["id"]: s["attributes"]["state"] for s in rest(port, "servers")}


def test_the_standin_forwards_writes_to_its_master_and_refuses_them_without_one(
    cluster: database.ReplicatedCluster, tmp_path: Path
) -> None:
    admin, sql = free_port(), free_port()
    text = maxscale_cnf.maxscale_cnf(
        "node1",
        "127.0.0.1",
        "passive",
        cluster_addresses(cluster),
        cluster.accounts,
        admin_port=admin,
        listener_port=sql,
    )
    cnf = maxscale_cnf.write_cnf(tmp_path / "maxscale.cnf", text)
    exe = maxscale_standin.write_executable(tmp_path / "maxscale")
    dirs = [arg for flag, name in (("-F", "persist"), ("-P", "run")) for arg in (flag, str(tmp_path / name))]
    proc = subprocess.Popen(
        [str(exe), "-d", "-f", str(cnf), *dirs], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    password = cluster.accounts.client_password
    try:
        wait_for(lambda: states(admin)["server1"] == "Master, Running", timeout=20, what="the stand-in")
        writer = Writer("127.0.0.1", sql, database.CLIENT_USER, password).start()
        wait_for(lambda: writer.snapshot()[1] >= 10, timeout=20, what="10 writes through the stand-in")
        cluster.wait_replicated(10)
        report = writer_report(
            writer.stop(),
            cluster_addresses(cluster),
            "server1",
            database.MONITOR_USER,
            cluster.accounts.monitor_password,
        )
        # the rows are on the real primary, acknowledged through the stand-in's listener
        assert report.failed == 0 and report.acknowledged >= 10 and report.lost == [], report.lines()
        assert report.errant == {"server2": [], "server3": []}

        # the primary goes away: the stand-in's monitor shows it Down at its next tick and keeps
        # naming it master (recorded: shared/fixtures/maxscale-24.02.4-pair, step 6); no master to
        # route to, so a client's connection is closed and its writes fail
        cluster.primary.stop()
        wait_for(lambda: states(admin)["server1"] == "Down", timeout=10, what="server1 Down for the stand-in")
        assert states(admin) == {"server1": "Down", "server2": "Slave, Running", "server3": "Slave, Running"}
        monitor = rest(admin, f"monitors/{maxscale_cnf.MONITOR}")
        assert monitor["attributes"]["monitor_diagnostics"]["master"] == "server1"
        writer = Writer("127.0.0.1", sql, database.CLIENT_USER, password).start()
        wait_for(lambda: writer.snapshot()[0] >= 3, timeout=20, what="three write attempts")
        ledger = writer.stop()
        assert ledger.acknowledged == [] and len(ledger.failed) == ledger.attempts >= 3

        # back: Master, Running again at the next tick, and writes go through again
        cluster.primary.start(mariadb.template(tmp_path))
        wait_for(lambda: states(admin)["server1"] == "Master, Running", timeout=10, what="server1 back")
        writer = Writer("127.0.0.1", sql, database.CLIENT_USER, password).start()
        wait_for(lambda: writer.snapshot()[1] >= 3, timeout=20, what="writes after the primary came back")
        writer.stop()

        # the listener is the stand-in's own: killing its pid (as the lab's active-dies does) ends it too
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        writer = Writer("127.0.0.1", sql, database.CLIENT_USER, password, timeout=0.5).start()
        wait_for(lambda: writer.snapshot()[0] >= 2, timeout=20, what="two write attempts")
        ledger = writer.stop()
        assert ledger.acknowledged == [] and all(
            "Connection refused" in f.error or "2003" in f.error for f in ledger.failed
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)

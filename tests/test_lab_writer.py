"""The lab's writer and its report (``mxha.lab.writer``): the arithmetic alone, then the writer
against real mariadbd on loopback (``mxha.lab.database``), with a lost write, an errant GTID and a
primary outage caused on purpose."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cluster_addresses, free_port, loopback_cluster

from mxha.lab import database, mariadb
from mxha.lab.database import ServerAddress
from mxha.lab.waiting import wait_for
from mxha.lab.writer import (
    Ledger,
    Writer,
    errant_gtids,
    longest_gap,
    lost_writes,
    parse_gtid,
    read_servers,
    writer_report,
)


def test_longest_gap_counts_the_start_the_middle_and_the_end() -> None:
    assert longest_gap([10.1, 10.2, 12.0, 12.1], 10.0, 12.3) == pytest.approx((1.8, 10.2, 12.0))
    # Nothing acknowledged after 10.2 until the stop: the gap runs to the stop.
    assert longest_gap([10.1, 10.2], 10.0, 15.0) == pytest.approx((4.8, 10.2, 15.0))
    # A writer that never succeeded: the whole run.
    assert longest_gap([], 10.0, 11.0) == pytest.approx((1.0, 10.0, 11.0))


def test_lost_writes_are_acknowledged_ones_the_primary_lacks() -> None:
    # 5 never acknowledged but present (its answer was lost) is no loss; 3 acknowledged and absent is.
    assert lost_writes([1, 2, 3, 4], [1, 2, 4, 5]) == [3]


def test_errant_gtids_are_a_servers_own_that_the_primary_lacks_in_order() -> None:
    primary = {"0-1-1", "0-1-2", "0-2-3"}
    server = {"0-1-1", "0-1-2", "0-1-3", "0-1-10", "0-1-4"}
    assert errant_gtids(server, primary) == ["0-1-3", "0-1-4", "0-1-10"]
    assert errant_gtids({"0-1-1"}, primary) == []
    assert parse_gtid("BEGIN GTID 0-3-17") == (0, 3, 17)
    assert parse_gtid("GTID 1-2-3 ddl") == (1, 2, 3)


def test_the_report_says_unknown_not_none_when_the_primary_cannot_be_read() -> None:
    ledger = Ledger(started_at=1.0, stopped_at=2.0, attempts=1, acknowledged=[(1, 1.5)])
    port = free_port()  # nothing listens here
    report = writer_report(ledger, [ServerAddress("server1", "127.0.0.1", port)], "server1", "u", "p", timeout=1)
    assert report.lost is None and report.errant is None
    assert "server1" in report.unread
    assert any("unknown" in line for line in report.lines())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[database.ReplicatedCluster]:
    yield from loopback_cluster(tmp_path)


def writer_for(server: mariadb.MariaDB, cluster: database.ReplicatedCluster) -> Writer:
    return Writer(server.host, server.port, database.CLIENT_USER, cluster.accounts.client_password)


def run_until(writer: Writer, acknowledged: int, timeout: float = 20) -> None:
    wait_for(lambda: writer.snapshot()[1] >= acknowledged, timeout=timeout, what=f"{acknowledged} acknowledged writes")


def test_a_healthy_cluster_loses_nothing_and_diverges_nowhere(cluster: database.ReplicatedCluster) -> None:
    writer = writer_for(cluster.primary, cluster).start()
    run_until(writer, 10)
    ledger = writer.stop()
    cluster.wait_replicated(10)
    report = writer_report(
        ledger, cluster_addresses(cluster), "server1", database.MONITOR_USER, cluster.accounts.monitor_password
    )
    assert report.failed == 0 and report.acknowledged == report.attempts >= 10
    assert report.lost == [] and report.errant == {"server2": [], "server3": []} and report.unread == {}
    # The sequence numbers are the ones acknowledged, in order, as rows on every server.
    assert ledger.acknowledged_seqs == list(range(1, report.acknowledged + 1))
    assert "lost writes (acknowledged, missing on the final primary server1): none" in report.lines()
    # A second run on the same servers (the lab's next scenario) starts its sequence at 1 again: its
    # rows are its own run's, so none collides with the first run's and none is counted for it.
    again = writer_for(cluster.primary, cluster).start()
    run_until(again, 10)
    second = again.stop()
    assert second.run != ledger.run and second.failed == [] and second.acknowledged_seqs[0] == 1
    report = writer_report(
        second, cluster_addresses(cluster), "server1", database.MONITOR_USER, cluster.accounts.monitor_password
    )
    assert report.failed == 0 and report.lost == []


def test_a_replica_cut_off_then_taken_as_primary_shows_lost_writes_and_errant_gtids(
    cluster: database.ReplicatedCluster,
) -> None:
    """server2 stops replicating while the writer goes on (what a failover to a lagging replica
    sees), and a transaction is written straight on server3 (what a write on the wrong server
    does): with server2 as the final primary, the acknowledged writes after the cut are lost and
    server1's and server3's later transactions are errant; with server1 nothing is lost."""
    server1, server2, server3 = cluster.servers
    writer = writer_for(server1, cluster).start()
    run_until(writer, 5)
    with server2.root_connection() as conn, conn.cursor() as cur:
        cur.execute("STOP SLAVE")
    acknowledged_at_cut = writer.snapshot()[1]
    run_until(writer, acknowledged_at_cut + 5)
    ledger = writer.stop()
    with server3.root_connection() as conn, conn.cursor() as cur:
        # root bypasses read_only, as an administrator's write on a replica does.
        cur.execute(database.INSERT_WRITE, (ledger.run, 1_000_000, time.time()))
        cur.execute("SELECT @@gtid_binlog_pos")
        row = cur.fetchone()
    assert row is not None
    own = [g for g in str(row[0]).split(",") if g.split("-")[1] == "3"]
    assert own, row

    on_server1 = writer_report(
        ledger, cluster_addresses(cluster), "server1", database.MONITOR_USER, cluster.accounts.monitor_password
    )
    assert on_server1.lost == []
    assert on_server1.errant is not None and on_server1.errant["server3"] == own
    assert on_server1.errant["server2"] == []

    on_server2 = writer_report(
        ledger, cluster_addresses(cluster), "server2", database.MONITOR_USER, cluster.accounts.monitor_password
    )
    assert on_server2.lost is not None and on_server2.errant is not None
    # The last acknowledged writes came after the cut: server2 lacks them.
    assert ledger.acknowledged_seqs[-1] in on_server2.lost
    assert len(on_server2.lost) >= 5
    assert on_server2.errant["server1"] and all(g.split("-")[1] == "1" for g in on_server2.errant["server1"])
    assert set(own) <= set(on_server2.errant["server3"])
    text = "\n".join(on_server2.lines())
    assert f"lost writes (acknowledged, missing on the final primary server2): {len(on_server2.lost)}" in text
    assert "errant GTIDs on server1" in text and "errant GTIDs on server3" in text


def test_the_writer_reconnects_after_the_primary_restarts_and_reports_the_outage(
    cluster: database.ReplicatedCluster, tmp_path: Path
) -> None:
    primary = cluster.primary
    writer = writer_for(primary, cluster).start()
    run_until(writer, 5)
    primary.stop()
    wait_for(lambda: writer.snapshot()[2] >= 3, timeout=10, what="failed writes while the primary is down")
    primary.start(mariadb.template(tmp_path))
    after_restart = writer.snapshot()[1]
    run_until(writer, after_restart + 5)  # the client reconnected by itself
    ledger = writer.stop()
    report = writer_report(
        ledger, cluster_addresses(cluster), "server1", database.MONITOR_USER, cluster.accounts.monitor_password
    )
    assert report.failed >= 3
    # The longest gap is the outage: it spans the failed writes.
    first_failure = ledger.failed[0].at
    assert report.longest_gap_from < first_failure < report.longest_gap_to
    assert report.lost == []
    # Each failure is logged as a client sees it: MySQL's error code first (2003: refused while down).
    assert all(f.error.split()[0].isdigit() for f in ledger.failed), ledger.failed
    assert "2003" in {f.error.split()[0] for f in ledger.failed}


def test_errant_gtids_from_before_a_run_are_reported_apart_from_the_runs_own(
    cluster: database.ReplicatedCluster,
) -> None:
    """A divergence an earlier scenario made stays in the binary logs: the next run counts only
    what appeared while it wrote, and names the earlier ones on a line of their own."""
    server1, _, server3 = cluster.servers
    servers = cluster_addresses(cluster)

    def gtids_now() -> dict[str, set[str]]:
        return read_servers(servers, database.MONITOR_USER, cluster.accounts.monitor_password, 5)[0]

    def straight_on_server3(run: int, seq: int) -> None:  # root bypasses read_only, as an administrator does
        with server3.root_connection() as conn, conn.cursor() as cur:
            cur.execute(database.INSERT_WRITE, (run, seq, time.time()))

    straight_on_server3(1, 1)  # the earlier scenario's divergence
    writer = Writer(
        server1.host, server1.port, database.CLIENT_USER, cluster.accounts.client_password, gtids_now=gtids_now
    ).start()
    run_until(writer, 3)
    straight_on_server3(1, 2)  # this run's
    ledger = writer.stop()
    report = writer_report(ledger, servers, "server1", database.MONITOR_USER, cluster.accounts.monitor_password)
    assert report.errant is not None and len(report.errant["server3"]) == 1 and report.errant["server2"] == []
    assert report.errant_before == {"server2": 0, "server3": 1}
    text = "\n".join(report.lines())
    assert "errant GTIDs on server3 (the final primary lacks them): 1 (" in text
    assert "errant GTIDs from before this run (not counted above): server3 1" in text

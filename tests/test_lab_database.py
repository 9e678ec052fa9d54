"""The lab's database servers for a real MaxScale (``mxha.lab.database``), on real mariadbd over
loopback: GTID replication from the first server works, and the accounts have the grants
MaxScale's documentation asks for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from helpers import loopback_cluster

from mxha.lab import database, mariadb


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[database.ReplicatedCluster]:
    yield from loopback_cluster(tmp_path_factory.mktemp("dbcluster"))


def connect(server: mariadb.MariaDB, user: str, password: str) -> Any:
    return pymysql.connect(
        host=server.host, port=server.port, user=user, password=password, connect_timeout=3, autocommit=True
    )


def query(server: mariadb.MariaDB, sql: str, args: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    with server.root_connection() as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def test_a_write_on_the_primary_reaches_every_replica_with_its_gtid(cluster: database.ReplicatedCluster) -> None:
    accounts = cluster.accounts
    with connect(cluster.primary, database.CLIENT_USER, accounts.client_password) as conn, conn.cursor() as cur:
        cur.execute(database.INSERT_WRITE, (1, 4242, 1.5))
    cluster.wait_replicated(10)
    primary_pos = query(cluster.primary, "SELECT @@gtid_binlog_pos")[0][0]
    assert primary_pos.startswith("0-1-"), primary_pos
    for server in cluster.servers[1:]:
        assert (4242,) in query(server, database.SELECT_WRITES, (1,))
        # log_slave_updates: the replica's own binary log has the primary's GTID, so it can serve
        # as the primary others follow after a failover.
        assert query(server, "SELECT @@gtid_binlog_pos")[0][0] == primary_pos
        status = query(server, "SELECT @@read_only, @@gtid_strict_mode, @@log_slave_updates")[0]
        assert status == (1, 1, 1)
    assert query(cluster.primary, "SELECT @@read_only, @@gtid_strict_mode")[0] == (0, 1)


def test_replicas_follow_the_primary_by_gtid_at_the_address_maxscale_is_given(
    cluster: database.ReplicatedCluster,
) -> None:
    for server in cluster.servers[1:]:
        with server.root_connection() as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            status = cur.fetchone()
        assert status is not None
        assert (status["Master_Host"], status["Master_Port"]) == (cluster.primary.host, cluster.primary.port)
        assert status["Using_Gtid"] == "Slave_Pos"
        assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes")


def test_the_accounts_are_no_transactions_a_replica_lacks(cluster: database.ReplicatedCluster) -> None:
    """Accounts are made with the binary log off on every server: a replica's binary log holds only
    GTIDs from the primary (server_id 1), so a divergence check finds nothing errant at start."""
    for server in cluster.servers:
        state = query(server, "SELECT @@gtid_binlog_state")[0][0]
        assert state and all(gtid.split("-")[1] == "1" for gtid in state.split(",")), state


def grants(server: mariadb.MariaDB, user: str) -> str:
    return " ".join(row[0] for row in query(server, f"SHOW GRANTS FOR '{user}'@'%'"))


def test_every_server_has_the_accounts_maxscale_needs(cluster: database.ReplicatedCluster) -> None:
    accounts = cluster.accounts
    for server in cluster.servers:
        monitor = grants(server, database.MONITOR_USER)
        # MariaDB prints REPLICA MONITOR by its other name.
        for privilege in ("SLAVE MONITOR", "CONNECTION ADMIN", "SUPER", "RELOAD", "PROCESS", "SHOW DATABASES", "EVENT"):
            assert privilege in monitor, (server.address, privilege, monitor)
        assert "GRANT SELECT ON `mysql`.`user`" in monitor
        service = grants(server, database.SERVICE_USER)
        for table in database.SERVICE_TABLES:
            assert f"GRANT SELECT ON `mysql`.`{table}`" in service, (table, service)
        assert "SHOW DATABASES" in service
        assert "REPLICATION SLAVE" in grants(server, database.REPLICATION_USER)
        assert f"`{database.SCHEMA}`.*" in grants(server, database.CLIENT_USER)
        # ...and each can log in over TCP with its password.
        for user, password in (
            (database.MONITOR_USER, accounts.monitor_password),
            (database.SERVICE_USER, accounts.service_password),
            (database.CLIENT_USER, accounts.client_password),
            (database.REPLICATION_USER, accounts.replication_password),
        ):
            connect(server, user, password).close()


def test_the_monitor_account_can_do_what_a_failover_does(cluster: database.ReplicatedCluster) -> None:
    """Not only granted: the monitor user can read the replication connections and flip read_only
    on a replica, as MaxScale's failover and switchover do (put back afterwards)."""
    replica = cluster.servers[2]
    with connect(replica, database.MONITOR_USER, cluster.accounts.monitor_password) as conn, conn.cursor() as cur:
        cur.execute("SHOW ALL SLAVES STATUS")
        assert cur.fetchone() is not None
        cur.execute("SHOW BINARY LOGS")
        assert cur.fetchone() is not None
        cur.execute("SET GLOBAL read_only = OFF")
        cur.execute("SET GLOBAL read_only = ON")


def test_the_client_account_cannot_write_to_a_replica(cluster: database.ReplicatedCluster) -> None:
    replica = cluster.servers[1]
    with connect(replica, database.CLIENT_USER, cluster.accounts.client_password) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as excinfo:
            cur.execute(database.INSERT_WRITE, (1, 1, 1.0))
        assert excinfo.value.args[0] == 1290  # ER_OPTION_PREVENTS_STATEMENT: --read-only


def test_accounts_are_saved_owner_only_and_read_back(tmp_path: Path) -> None:
    accounts = database.DatabaseAccounts.generate()
    path = tmp_path / "db-accounts.json"
    assert database.DatabaseAccounts.load_or_generate(path) != accounts  # generated fresh
    path.unlink()
    accounts.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert database.DatabaseAccounts.load_or_generate(path) == accounts

"""The database servers a real MaxScale monitors in the lab (``mxha lab up --maxscale``): three real
mariadbd (``mxha.lab.mariadb``) with GTID replication from the first, and the accounts MaxScale
needs, made the same on every server.

The accounts are made by each server's init file with the binary log off, so they are not
transactions a replica could lack: after a failover the servers' GTIDs are only the data's, and an
errant GTID the writer's report finds is real divergence, never the lab's own set-up.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mxha.lab import mariadb

SERVER_NAMES = ("server1", "server2", "server3")


@dataclass(frozen=True)
class ServerAddress:
    """One database server as MaxScale's cnf and the writer's report name it."""

    name: str
    host: str
    port: int


SCHEMA = "mxha_lab"
WRITES_TABLE = "writes"
# The writer's statements, literal so nothing is ever formatted into SQL. Each writer's run has its
# own id: the servers keep every run's rows, and a run's sequence numbers start at 1 again.
INSERT_WRITE = "INSERT INTO mxha_lab.writes (run, seq, written_at) VALUES (%s, %s, %s)"
SELECT_WRITES = "SELECT seq FROM mxha_lab.writes WHERE run = %s"

MONITOR_USER = "mxha_monitor"
SERVICE_USER = "mxha_service"
CLIENT_USER = "mxha_client"
REPLICATION_USER = "mxha_repl"

# What MaxScale's MariaDB Monitor documentation lists for its monitor user on MariaDB 10.5.9+:
# REPLICA MONITOR to read the replication connections, CONNECTION ADMIN to log in past
# max_connections, and for failover, switchover and rejoin SUPER, RELOAD, PROCESS, SHOW
# DATABASES, EVENT and SELECT on mysql.user. READ_ONLY ADMIN, REPLICATION SLAVE ADMIN and
# BINLOG ADMIN are what 11.0.1 split out of SUPER: granted too, so a newer server behaves alike.
# BINLOG MONITOR lets the lab's divergence check read the binary logs with the same account.
MONITOR_GRANTS = (
    "REPLICA MONITOR",
    "CONNECTION ADMIN",
    "SUPER",
    "RELOAD",
    "PROCESS",
    "SHOW DATABASES",
    "EVENT",
    "READ_ONLY ADMIN",
    "REPLICATION SLAVE ADMIN",
    "BINLOG ADMIN",
    "BINLOG MONITOR",
)
# MaxScale's service user reads the accounts to authenticate clients itself.
SERVICE_TABLES = ("user", "db", "tables_priv", "columns_priv", "procs_priv", "proxies_priv", "roles_mapping")


@dataclass(frozen=True)
class DatabaseAccounts:
    """The passwords of the accounts MaxScale and the lab's writer use (the user names are fixed)."""

    monitor_password: str
    service_password: str
    client_password: str
    replication_password: str

    @classmethod
    def generate(cls) -> DatabaseAccounts:
        return cls(*(secrets.token_urlsafe(18) for _ in range(4)))

    def save(self, path: Path) -> None:
        """Written owner-only: the lab's maxscale.cnf files and its writer read it."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh)

    @classmethod
    def load(cls, path: Path) -> DatabaseAccounts:
        return cls(**json.loads(path.read_text()))

    @classmethod
    def load_or_generate(cls, path: Path) -> DatabaseAccounts:
        if path.exists():
            return cls.load(path)
        accounts = cls.generate()
        accounts.save(path)
        return accounts


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def accounts_sql(accounts: DatabaseAccounts) -> str:
    """The init-file statements that make the accounts (idempotent: they run at every start)."""
    lines = []
    for user, password in (
        (MONITOR_USER, accounts.monitor_password),
        (SERVICE_USER, accounts.service_password),
        (CLIENT_USER, accounts.client_password),
        (REPLICATION_USER, accounts.replication_password),
    ):
        lines.append(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY {_quote(password)};")
    lines.append(f"GRANT {', '.join(MONITOR_GRANTS)} ON *.* TO '{MONITOR_USER}'@'%';")
    lines.append(f"GRANT SELECT ON mysql.user TO '{MONITOR_USER}'@'%';")
    # The lab's report reads the writer's rows with the monitor account (it reads binary logs too).
    lines.append(f"GRANT SELECT ON {SCHEMA}.* TO '{MONITOR_USER}'@'%';")
    for table in SERVICE_TABLES:
        lines.append(f"GRANT SELECT ON mysql.{table} TO '{SERVICE_USER}'@'%';")
    lines.append(f"GRANT SHOW DATABASES ON *.* TO '{SERVICE_USER}'@'%';")
    lines.append(f"GRANT ALL PRIVILEGES ON {SCHEMA}.* TO '{CLIENT_USER}'@'%';")
    lines.append(f"GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'%';")
    return "\n".join(lines) + "\n"


def server_options(server_id: int, *, replica: bool) -> list[str]:
    """mariadbd options for a member of the replicated cluster: GTIDs in strict mode, replicated
    events kept in each binary log (a replica can become the primary others follow), and the
    replicas read-only, so only the primary takes writes from the client account."""
    options = [
        f"--server-id={server_id}",
        "--log-bin=mariadb-bin",
        "--relay-log=relay-bin",
        "--binlog-format=ROW",
        "--gtid-strict-mode=ON",
        "--log-slave-updates=ON",
    ]
    if replica:
        options.append("--read-only=ON")
    return options


class ReplicatedCluster:
    """Three (or more) real mariadbd: the first is the primary, the others replicate from it with
    GTIDs. ``addresses`` are (host, port) pairs, the addresses MaxScale will be given: replication
    is set up with the same ones, as MaxScale's failover requires."""

    def __init__(
        self,
        root: Path,
        addresses: Sequence[tuple[str, int]],
        accounts: DatabaseAccounts,
        lock_password: str,
        *,
        netns: str | None = None,
    ) -> None:
        self.accounts = accounts
        self.servers: list[mariadb.MariaDB] = []
        for i, (host, port) in enumerate(addresses, start=1):
            workdir = root / f"server{i}"
            workdir.mkdir(parents=True, exist_ok=True)
            self.servers.append(
                mariadb.MariaDB(
                    workdir,
                    host,
                    port,
                    lock_password,
                    netns=netns,
                    options=server_options(i, replica=i > 1),
                    init_sql=accounts_sql(accounts),
                )
            )

    @property
    def primary(self) -> mariadb.MariaDB:
        return self.servers[0]

    def start(self, template_dir: Path, timeout: float = 30.0) -> ReplicatedCluster:
        for server in self.servers:
            server.start(template_dir, timeout)
        self._create_schema()
        for server in self.servers[1:]:
            self._replicate_from_primary(server)
        self.wait_replicated(timeout)
        return self

    def _create_schema(self) -> None:
        with self.primary.root_connection() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{WRITES_TABLE} "
                "(run BIGINT NOT NULL, seq BIGINT NOT NULL, written_at DOUBLE NOT NULL, PRIMARY KEY (run, seq)) "
                "ENGINE=InnoDB"
            )

    def _replicate_from_primary(self, server: mariadb.MariaDB) -> None:
        """CHANGE MASTER once: a restarted replica keeps its replication (a later run of the lab on
        the same directories must not point a server back at a primary MaxScale has replaced)."""
        with server.root_connection() as conn, conn.cursor() as cur:
            cur.execute("SHOW SLAVE STATUS")
            if cur.fetchone() is not None:
                return
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
                (self.primary.host, self.primary.port, REPLICATION_USER, self.accounts.replication_password),
            )
            cur.execute("START SLAVE")

    def wait_replicated(self, timeout: float = 30.0) -> None:
        """Every replica has applied what the primary has now (MASTER_GTID_WAIT on each)."""
        with self.primary.root_connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            row: Any = cur.fetchone()
            position = row[0]
        for server in self.servers[1:]:
            with server.root_connection(timeout + 5) as conn, conn.cursor() as cur:
                cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (position, timeout))
                row = cur.fetchone()
                if row is None or row[0] != 0:
                    raise RuntimeError(
                        f"{server.address} did not replicate up to {position} within {timeout}s: {server.log_tail()}"
                    )

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

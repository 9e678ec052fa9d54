"""Real MariaDB servers (Debian's mariadb-server) as the remediator replicas' lock store, for the
tests and the lab: each with its own data directory, started as a child process (optionally inside
a network namespace), with one lock user that has NO privileges (``GET_LOCK`` needs none)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOCK_USER = "mxha_lock"


def mariadbd() -> str | None:
    for path in (shutil.which("mariadbd"), "/usr/sbin/mariadbd"):
        if path and Path(path).exists():
            return path
    return None


def missing() -> str | None:
    """Why real MariaDB servers cannot be started here, or None."""
    if mariadbd() is None or shutil.which("mariadb-install-db") is None:
        return "mariadb-server is not installed (scripts/install-deps.sh installs it)"
    return None


def template(root: Path) -> Path:
    """An initialised, empty data directory under ``root`` (made once; copied for each server)."""
    data = root / "mariadb-template"
    if (data / "mysql").is_dir():
        return data
    tmp = root / "mariadb-template.tmp"
    scratch = root / "mariadb-template.tmpdir"
    for folder in (tmp, scratch):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    proc = subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={tmp}",
            # temporary tables of its own, not in /tmp beside another server's bootstrap (two test
            # workers' bootstraps at once failed: "Unknown table 'mysql.tmp_user_sys'")
            f"--tmpdir={scratch}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed: {proc.stderr.strip()[-500:]}")
    shutil.rmtree(scratch, ignore_errors=True)
    tmp.rename(data)
    return data


# A lock store needs no binary log; a replicated server (mxha.lab.database) passes its own options.
LOCK_STORE_OPTIONS = ("--skip-log-bin",)


class MariaDB:
    """One mariadbd on ``host:port`` with its own copy of the template data directory.

    ``options`` are extra mariadbd options (the binary log and replication settings of a
    replicated server); ``init_sql`` runs at every start after the lock user is made, with the
    binary log off for the session, so accounts made there never become GTIDs a replica lacks."""

    def __init__(
        self,
        workdir: Path,
        host: str,
        port: int,
        password: str,
        *,
        netns: str | None = None,
        options: Sequence[str] = LOCK_STORE_OPTIONS,
        init_sql: str = "",
    ) -> None:
        self.workdir = workdir
        self.host = host
        self.port = port
        self.password = password
        self.netns = netns
        self.options = tuple(options)
        self.init_sql = init_sql
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, template_dir: Path, timeout: float = 30.0) -> MariaDB:
        data = self.workdir / "data"
        if not data.exists():
            shutil.copytree(template_dir, data)
        init = self.workdir / "init.sql"
        quoted = self.password.replace("\\", "\\\\").replace("'", "\\'")
        init.write_text(
            "SET sql_log_bin = 0;\n"
            f"CREATE USER IF NOT EXISTS '{LOCK_USER}'@'%' IDENTIFIED BY '{quoted}';\n" + self.init_sql
        )
        init.chmod(0o600)
        argv = [
            str(mariadbd()),
            "--no-defaults",
            f"--datadir={data}",
            f"--tmpdir={self.workdir}",  # its own, as the bootstrap's
            f"--socket={self.workdir / 'mysqld.sock'}",
            f"--pid-file={self.workdir / 'mysqld.pid'}",
            f"--log-error={self.workdir / 'error.log'}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--init-file={init}",
            "--user=root",
            *self.options,
            "--skip-name-resolve",
            "--performance-schema=OFF",
            "--innodb-buffer-pool-size=8M",
            "--innodb-log-file-size=4M",
            "--max-connections=300",
        ]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd on {self.address} exited: {self.log_tail()}")
            if self.answers():
                return
            if time.monotonic() > end:
                raise RuntimeError(f"mariadbd on {self.address} not ready after {timeout}s: {self.log_tail()}")
            time.sleep(0.1)

    def answers(self) -> bool:
        """Can the lock user log in? (asked from the host: a namespace's server must be routed to it)."""
        import pymysql

        try:
            pymysql.connect(
                host=self.host, port=self.port, user=LOCK_USER, password=self.password, connect_timeout=0.5
            ).close()
            return True
        except pymysql.MySQLError:
            return False

    def root_connection(self, timeout: float = 5.0) -> Any:
        """A PyMySQL connection as root over the server's Unix socket (a path, so it works from the
        host for a server inside a network namespace too); autocommit, the caller closes it."""
        import pymysql

        return pymysql.connect(
            unix_socket=str(self.workdir / "mysqld.sock"),
            user="root",
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            autocommit=True,
        )

    def log_tail(self) -> str:
        try:
            return " | ".join((self.workdir / "error.log").read_text().strip().splitlines()[-3:])
        except OSError:
            return "(no error log)"

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

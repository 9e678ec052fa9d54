"""The ``maxscale.cnf`` the lab writes for each node's real MaxScale (``mxha lab up --maxscale``).

Every node gets the same servers, monitor, service and listener, so clients see the same thing
through the VIP whichever node holds it; only ``[maxscale]`` (the admin API on the node's own
address) and the service's ``version_string`` (so a client can tell which node answered, as
MariaDB's MaxScale-with-Keepalived tutorial recommends) differ.

The monitor's settings are written out, not left to defaults, so a scenario's timings can be read
against them: ``auto_failover`` is on (the report says whether MaxScale's own failover happened),
and ``failcount`` is the smallest that passes the doctor's ``failcount_below_lock_minimum`` rule
for these timeouts (``mxha.hazards.lock_wait_timeout``), never below MaxScale's default 5.

Hazards the lab keeps on purpose, because a rehearsal should show them rather than hide them:
``locks_need_semisync`` in locks mode (the servers replicate asynchronously, so a failover can
lose the writes the report then counts).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mxha.hazards import lock_wait_timeout
from mxha.lab import database

ADMIN_PORT = 8989
LISTENER_PORT = 4006  # readwritesplit's port in MaxScale's tutorials; the writer connects here on the VIP
MONITOR = "MariaDB-Monitor"
SERVICE = "Read-Write-Service"
LISTENER = "Read-Write-Listener"
LOCKS = {"passive": "none", "locks": "majority_of_all"}
# What the service reports as the server version, before the node's name (MariaDB 10.x clients
# expect a 10.x version; MaxScale adds the 5.5.5- prefix the protocol wants).
VERSION_PREFIX = "10.11.0-lab"


@dataclass(frozen=True)
class MonitorTimings:
    """The monitor's timing settings; failcount follows from them."""

    monitor_interval_ms: int = 1000
    backend_connect_timeout_s: int = 3
    backend_read_timeout_s: int = 3
    backend_write_timeout_s: int = 3
    failover_timeout_s: int = 10
    switchover_timeout_s: int = 10
    master_failure_timeout_s: int = 10

    def failcount(self) -> int:
        """The smallest failcount with failcount x interval > the lock connections' wait_timeout +
        one interval (the doctor's rule), at least MaxScale's default 5."""
        wait = lock_wait_timeout(
            {
                "monitor_interval": f"{self.monitor_interval_ms}ms",
                "backend_read_timeout": f"{self.backend_read_timeout_s}s",
                "backend_write_timeout": f"{self.backend_write_timeout_s}s",
            }
        )
        assert wait is not None  # the parameters above are always readable
        interval = self.monitor_interval_ms / 1000
        count = 5
        while count * interval <= wait + interval:
            count += 1
        return count


def monitor_parameters(mode: str, timings: MonitorTimings, accounts: database.DatabaseAccounts) -> dict[str, Any]:
    """The monitor's parameters, typed as MaxScale's REST API shows them (durations as strings with
    their unit, counts as numbers, switches as booleans): the cnf is rendered from this, and the
    tests hand the same dict to the doctor's rules."""
    if mode not in LOCKS:
        raise ValueError(f"mode must be one of {', '.join(LOCKS)}, not {mode!r}")
    return {
        "user": database.MONITOR_USER,
        "password": accounts.monitor_password,
        "replication_user": database.REPLICATION_USER,
        "replication_password": accounts.replication_password,
        "monitor_interval": f"{timings.monitor_interval_ms}ms",
        "backend_connect_timeout": f"{timings.backend_connect_timeout_s}s",
        "backend_read_timeout": f"{timings.backend_read_timeout_s}s",
        "backend_write_timeout": f"{timings.backend_write_timeout_s}s",
        "failcount": timings.failcount(),
        "auto_failover": True,
        "auto_rejoin": True,
        # A returning old primary must not take writes beside the new one: the servers start
        # read-only as replicas, and the monitor keeps it so (the doctor's read-only rule).
        "enforce_read_only_servers": True,
        "enforce_writable_master": True,
        "verify_master_failure": True,
        "master_failure_timeout": f"{timings.master_failure_timeout_s}s",
        "failover_timeout": f"{timings.failover_timeout_s}s",
        "switchover_timeout": f"{timings.switchover_timeout_s}s",
        "cooperative_monitoring_locks": LOCKS[mode],
    }


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _section(name: str, settings: dict[str, Any]) -> list[str]:
    return [f"[{name}]", *(f"{key}={_value(value)}" for key, value in settings.items()), ""]


def version_string(node: str) -> str:
    return f"{VERSION_PREFIX}-{node}"


def maxscale_cnf(
    node: str,
    admin_host: str,
    mode: str,
    servers: Sequence[database.ServerAddress],
    accounts: database.DatabaseAccounts,
    *,
    timings: MonitorTimings | None = None,
    admin_port: int = ADMIN_PORT,
    listener_port: int = LISTENER_PORT,
    passive: bool | None = None,
) -> str:
    """The whole file for one node. In passive mode MaxScale starts passive and keepalived's notify
    makes the VIP holder active (two MaxScales are never both active while keepalived settles);
    in locks mode passive stays false and the cooperative locks decide. ``passive`` overrides the
    mode's choice (a scenario restarts a MaxScale from a config that says active)."""
    monitor = monitor_parameters(mode, timings or MonitorTimings(), accounts)
    names = ",".join(s.name for s in servers)
    lines = [
        f"# maxscale.cnf for {node}, written by mxha lab (mode {mode}). The servers, monitor, service",
        "# and listener are the same on every node; [maxscale] and version_string are this node's.",
        "",
    ]
    lines += _section(
        "maxscale",
        {
            "threads": 1,
            "admin_host": admin_host,
            "admin_port": admin_port,
            # The lab's REST API is plain HTTP on the lab LAN, as the emulator's is; the GUI would
            # demand TLS.
            "admin_gui": False,
            "admin_secure_gui": False,
            "passive": mode == "passive" if passive is None else passive,
        },
    )
    for server in servers:
        lines += _section(server.name, {"type": "server", "address": server.host, "port": server.port})
    lines += _section(MONITOR, {"type": "monitor", "module": "mariadbmon", "servers": names, **monitor})
    lines += _section(
        SERVICE,
        {
            "type": "service",
            "router": "readwritesplit",
            "cluster": MONITOR,
            "user": database.SERVICE_USER,
            "password": accounts.service_password,
            "version_string": version_string(node),
        },
    )
    lines += _section(LISTENER, {"type": "listener", "service": SERVICE, "address": "0.0.0.0", "port": listener_port})
    return "\n".join(lines)


def write_cnf(path: Path, text: str) -> Path:
    """Owner-only: the file holds the monitor's and the service's passwords."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path

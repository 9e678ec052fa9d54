"""A stand-in for the ``maxscale`` executable, so the lab's ``--maxscale`` plumbing (the generated
``maxscale.cnf``, the directories, start-up and shutdown) and the writer's figures are tested where
MaxScale is not installed. It is not MaxScale.

It takes the command line MaxScale takes (``-f -L -A -D -F -P -N -M -C -d -U`` and their long
forms), reads the generated ``maxscale.cnf``, and in this one process (the pid MaxScale would have,
so stopping, killing or freezing it stops all of it):

- runs the MaxScale REST API emulator on the file's ``admin_host``/``admin_port`` with MaxScale's
  default admin account (a fresh MaxScale's too: MaxScale keeps its admin users in its data
  directory, never in ``maxscale.cnf``), the file's servers and monitor, its lock mode and its
  ``passive``, and runtime changes kept under the persist directory (``-F``), as MaxScale keeps them;
- probes the file's servers as its monitor would (``mxha.lab.emulator.probe``): every
  ``monitor_interval`` a TCP connect within ``backend_connect_timeout``; a server it cannot reach is
  ``Down`` here while ``monitor_diagnostics.master`` keeps naming it. Roles stay as configured (the
  first server is the primary, as the lab's replication starts): it never fails a server over;
- serves SQL on each listener's address and port (``mxha.lab.sql_forwarder``): every client
  connection is forwarded byte for byte to the server its REST API calls ``Master, Running`` when
  the client connects, as readwritesplit routes writes to the master; with no master the
  connection is closed. Nothing else of readwritesplit (read routing, session replay) is there.

Use: ``python -m mxha.lab.maxscale_standin -f maxscale.cnf ...``, or ``write_executable(path)``
for a file the lab can be given as ``--maxscale PATH``.
"""

from __future__ import annotations

import argparse
import configparser
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mxha.hazards import duration_seconds

if TYPE_CHECKING:
    from mxha.lab.emulator import EmulatorConfig

# MaxScale's defaults for what the cnf may leave out
DEFAULT_MONITOR_INTERVAL = "2000ms"
DEFAULT_CONNECT_TIMEOUT = "3s"
VERSION = "24.02.4"  # the MaxScale the emulator follows
STANDIN_MARK = "mxha stand-in"  # in --version's line, so the lab can tell the stand-in from MaxScale
EXIT_USAGE = 2


class CnfError(ValueError):
    """The cnf cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class StandinPlan:
    """What the stand-in runs, read from MaxScale's options and the cnf."""

    admin_host: str
    admin_port: int
    passive: bool
    monitor: str
    locks: str
    servers: tuple[str, ...]  # NAME=ADDR:PORT=STATE, as the emulator's --server reads them
    listeners: tuple[tuple[str, int], ...]  # (address, port) of each type=listener
    monitor_interval: float  # seconds between the monitor's ticks
    connect_timeout: float  # backend_connect_timeout, seconds
    state_file: Path
    pid_file: Path | None

    def emulator_config(self) -> EmulatorConfig:
        from mxha.lab.emulator import EmulatorConfig, parse_server_spec

        return EmulatorConfig(
            host=self.admin_host,
            port=self.admin_port,
            state_file=str(self.state_file),
            passive=self.passive,
            monitor=self.monitor,
            lock_mode=self.locks,
            servers=[parse_server_spec(spec) for spec in self.servers],
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="maxscale", description="mxha's stand-in for MaxScale: runs the REST API emulator", add_help=True
    )
    p.add_argument("-f", "--config", default="/etc/maxscale.cnf")
    p.add_argument("-d", "--nodaemon", action="store_true")
    p.add_argument("-L", "--logdir")
    p.add_argument("-A", "--cachedir")
    p.add_argument("-D", "--datadir")
    p.add_argument("-F", "--persistdir")
    p.add_argument("-P", "--piddir")
    p.add_argument("-N", "--language")
    p.add_argument("-M", "--module_configdir")
    p.add_argument("-C", "--configdir")
    p.add_argument("-U", "--user")
    p.add_argument("-l", "--log")
    p.add_argument("-c", "--config-check", action="store_true")
    p.add_argument("-v", "--version", action="store_true")
    p.add_argument("-V", "--version-full", action="store_true")
    return p


def _bool(cnf: Path, section: str, key: str, value: str) -> bool:
    word = value.strip().lower()
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise CnfError(f"{cnf}: [{section}] {key}: not a boolean: {value!r}")


def plan(args: argparse.Namespace) -> StandinPlan:
    """Read the cnf as MaxScale would need it; a missing or bad key is a CnfError naming it."""
    cnf = Path(args.config)
    parsed = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        with cnf.open(encoding="utf-8") as fh:
            parsed.read_file(fh)
    except OSError as exc:
        raise CnfError(f"{cnf}: cannot read: {exc.strerror or exc}") from None
    except configparser.Error as exc:
        raise CnfError(f"{cnf}: {exc.message}") from None
    if not parsed.has_section("maxscale"):
        raise CnfError(f"{cnf}: no [maxscale] section")
    glob = parsed["maxscale"]
    admin_host = glob.get("admin_host", "127.0.0.1")
    try:
        admin_port = int(glob.get("admin_port", "8989"))
    except ValueError:
        raise CnfError(f"{cnf}: [maxscale] admin_port: not a port number: {glob.get('admin_port')!r}") from None
    passive = _bool(cnf, "maxscale", "passive", glob.get("passive", "false"))
    monitors = [s for s in parsed.sections() if parsed[s].get("type") == "monitor"]
    if len(monitors) != 1:
        raise CnfError(f"{cnf}: type=monitor: the stand-in runs exactly one monitor, found {len(monitors)}")
    mon = parsed[monitors[0]]
    locks = mon.get("cooperative_monitoring_locks", "none")
    if locks not in ("none", "majority_of_all", "majority_of_running"):
        raise CnfError(f"{cnf}: [{monitors[0]}] cooperative_monitoring_locks: not a MaxScale value: {locks!r}")
    servers = []
    for i, name in enumerate(n.strip() for n in mon.get("servers", "").split(",") if n.strip()):
        if not parsed.has_section(name) or parsed[name].get("type") != "server":
            raise CnfError(f"{cnf}: [{monitors[0]}] servers: {name} is not a type=server section")
        address, port = parsed[name].get("address"), parsed[name].get("port", "3306")
        if not address:
            raise CnfError(f"{cnf}: [{name}] address: missing")
        # The first server starts as the primary, as the lab's replication does.
        servers.append(f"{name}={address}:{port}={'Master, Running' if i == 0 else 'Slave, Running'}")
    if not servers:
        raise CnfError(f"{cnf}: [{monitors[0]}] servers: none listed")
    timings = {}
    for key, default in (
        ("monitor_interval", DEFAULT_MONITOR_INTERVAL),
        ("backend_connect_timeout", DEFAULT_CONNECT_TIMEOUT),
    ):
        # a bare number: milliseconds for the interval, seconds for the timeout, as MaxScale reads them
        seconds = duration_seconds(mon.get(key, default), "ms" if key == "monitor_interval" else "s")
        if seconds is None or seconds <= 0:
            raise CnfError(f"{cnf}: [{monitors[0]}] {key}: not a duration: {mon.get(key)!r}")
        timings[key] = seconds
    listeners = []
    for name in (s for s in parsed.sections() if parsed[s].get("type") == "listener"):
        try:
            listener_port = int(parsed[name].get("port", ""))
        except ValueError:
            raise CnfError(f"{cnf}: [{name}] port: not a port number: {parsed[name].get('port')!r}") from None
        listeners.append((parsed[name].get("address", "0.0.0.0"), listener_port))
    persist = Path(args.persistdir or args.datadir or "/var/lib/maxscale")
    return StandinPlan(
        admin_host=admin_host,
        admin_port=admin_port,
        passive=passive,
        monitor=monitors[0],
        locks=locks,
        servers=tuple(servers),
        listeners=tuple(listeners),
        monitor_interval=timings["monitor_interval"],
        connect_timeout=timings["backend_connect_timeout"],
        state_file=persist / "mxha-standin.state",
        pid_file=Path(args.piddir) / "maxscale.pid" if args.piddir else None,
    )


def serve(run: StandinPlan) -> int:
    """The emulator, its probe of the servers and the SQL listeners, until SIGTERM or SIGINT."""
    from mxha.lab.emulator import Emulator
    from mxha.lab.emulator.probe import ServerProbe
    from mxha.lab.sql_forwarder import SqlForwarder
    from mxha.maxscale import MaxScaleClient, MaxScaleError

    emulator = Emulator(run.emulator_config())
    try:
        emulator.start(wait_for_port=False)
    except OSError as exc:
        print(f"maxscale: admin_host/admin_port: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    probe = ServerProbe(emulator.state, run.monitor_interval, run.connect_timeout).start()
    # the service asks the REST API, as an outside reader would: what MaxScale shows is what it routes by
    rest = MaxScaleClient(f"http://{run.admin_host}:{run.admin_port}", connect_timeout=1.0, read_timeout=1.0)

    def master() -> tuple[str, int] | None:
        from mxha.lab.sql_forwarder import master_from_servers

        try:
            return master_from_servers(rest.get_servers())
        except MaxScaleError as exc:
            logging.getLogger("mxha.lab.maxscale_standin").warning("no master known: %s", exc)
            return None

    forwarders = []
    for host, port in run.listeners:
        try:
            forwarders.append(SqlForwarder(host, port, master, run.connect_timeout).start())
        except OSError as exc:
            print(f"maxscale: listener {host}:{port}: cannot listen: {exc.strerror or exc}", file=sys.stderr)
            emulator.stop()
            return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(3600):
        pass
    for forwarder in forwarders:
        forwarder.stop()
    probe.stop()
    emulator.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.version or args.version_full:
        print(f"MaxScale {VERSION} ({STANDIN_MARK}: the REST API emulator)")
        return 0
    try:
        run = plan(args)
    except CnfError as exc:
        print(f"maxscale: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.config_check:
        return 0
    if not args.nodaemon:
        # MaxScale forks into the background without -d; the lab always passes -d, and a stand-in
        # that daemonised would leave a process the caller cannot stop by its pid.
        print("maxscale: the stand-in runs in the foreground only: pass -d", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run.state_file.parent.mkdir(parents=True, exist_ok=True)
    if run.pid_file is not None:
        run.pid_file.parent.mkdir(parents=True, exist_ok=True)
        run.pid_file.write_text(f"{os.getpid()}\n")
    return serve(run)


def write_executable(path: Path) -> Path:
    """A file to give as ``--maxscale PATH``: runs this module with this interpreter."""
    path.write_text(f'#!/bin/sh\nexec {sys.executable} -m mxha.lab.maxscale_standin "$@"\n')
    path.chmod(0o755)
    return path


if __name__ == "__main__":
    sys.exit(main())

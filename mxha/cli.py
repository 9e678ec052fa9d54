"""``mxha``: one entry point for every component.

Imports are deferred to the chosen subcommand so ``mxha check`` (run by keepalived every
few seconds) loads only the standard library and the small modules it needs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from mxha import __version__

EXIT_USAGE = 2
EXIT_DOCTOR_COULD_NOT_LOOK = 3  # mxha.doctor's own: 2 means "critical" there


def _terminal_columns() -> int:
    """What ``shutil.get_terminal_size().columns`` says (COLUMNS, else the terminal, else 80)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter, sized as argparse sizes it, without importing shutil to do so:
    argparse builds a formatter for every flag it adds, and shutil brings bz2 and lzma with it
    (3.7 ms of each ``mxha check``, which keepalived runs every few seconds)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, _terminal_columns() - 2 if width is None else width)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is ONE line (logs and keepalived keep one line per call), exit 2:
    ``mxha exporter: --web.listen-address: expected one argument (see mxha exporter --help)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # a command whose exit codes mean something else (the doctor's 2 is "critical") sets its own
        self.exit(getattr(self, "usage_exit", EXIT_USAGE), f"{self.prog}: {message} (see {self.prog} --help)\n")


if TYPE_CHECKING:
    _Subcommands = argparse._SubParsersAction[OneLineParser]  # add_subparsers(); each _add_* adds one


def _config_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--config.file",
        dest="config_file",
        required=True,
        metavar="FILE",
        help=f"YAML {what} config (see docs/configuration.md)",
    )


def _listen_flag(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=default,
        metavar="ADDR",
        help=f"listen address, Prometheus style [HOST]:PORT ({what})",
    )


def _log_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log verbosity (default info)",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``command`` (a key of ``SUBPARSERS``) only that subcommand's: what
    ``main`` parses a command line with. Each subparser costs argparse some milliseconds to build
    (a help formatter per flag), and ``mxha check`` runs every few seconds under keepalived."""
    parser = OneLineParser(
        prog="mxha",
        description="Keep exactly one MaxScale active behind a Keepalived VIP: per-node exporter, "
        "keepalived hooks, Alertmanager-driven remediator, MaxScale emulator and lab.",
        epilog="Run 'mxha COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"mxha {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add in SUBPARSERS.items():
        if command is None or name == command:
            add(sub)
    return parser


def _add_exporter(sub: _Subcommands) -> None:
    p = sub.add_parser(
        "exporter",
        help="per-node Prometheus exporter (VRRP, VIP, health check, MaxScale mode)",
        description="Serve /metrics, /state, /check and /healthz for this node.",
    )
    _config_flag(p, "node")
    _listen_flag(p, None, "default: exporter.listen_address in the config, else :9843")
    _log_flag(p)


def _add_remediator(sub: _Subcommands) -> None:
    p = sub.add_parser(
        "remediator",
        help="Alertmanager webhook that leaves exactly one MaxScale active",
        description="Serve POST /webhook, GET /status, /metrics and /healthz under waitress.",
    )
    _config_flag(p, "remediator")
    _listen_flag(p, None, "default: listen_address in the config, else :9844")
    p.add_argument("--dry-run", action="store_true", help="plan and record, never act (overrides the config)")
    _log_flag(p)


def _add_check(sub: _Subcommands) -> None:
    p = sub.add_parser(
        "check",
        help="keepalived vrrp_script: exit 0 when this node's MaxScale is healthy",
        description="Exit 0 when MaxScale answers within check.timeout and lists every "
        "expected server; non-zero otherwise. Prints one line saying why. Run by hand it only "
        "reads: it changes nothing, anywhere. keepalived's vrrp_script line adds --follow-up.",
    )
    _config_flag(p, "node")
    p.add_argument(
        "--follow-up",
        dest="follow_up",
        action="store_true",
        help="for keepalived's vrrp_script line only: also mark that the check ran and, when this "
        "MaxScale's mode (or its cooperative locks) disagrees with live state (the governing VIP on "
        "this host or not), start 'mxha notify' without arguments in the background to correct it: a "
        "MaxScale restarted active on the backup, a lost notify, a yield that ended. Needs "
        "keepalived.vips; writes in the hooks' state directory, so only its owner (keepalived's "
        "script_user) does it; check.follow_up: false turns it off",
    )
    p.add_argument(
        "--via",
        metavar="URL",
        default=None,
        help="read the exporter's cached result from URL (e.g. http://127.0.0.1:9843/check) "
        "instead of asking MaxScale: the lightweight mode",
    )


def _add_doctor(sub: _Subcommands) -> None:
    p = sub.add_parser(
        "doctor",
        help="list setup hazards (--peers: of the whole cluster) with evidence, fix and source",
        description="Read this node's setup (MaxScale's REST documents, the node config, the hooks' state "
        "directory; with --peers every node's /state and every configured MaxScale) and print each setup "
        "hazard with its evidence, its fix and the source of the rule. It only reads: it changes nothing, "
        "anywhere. What it could not check is listed as 'not checked'. Exit 0 nothing above info, 1 "
        "warnings, 2 critical, 3 it could not look (a bad config or flag included).",
    )
    p.usage_exit = EXIT_DOCTOR_COULD_NOT_LOOK  # type: ignore[attr-defined]
    _config_flag(p, "node")
    p.add_argument(
        "--peers",
        action="store_true",
        help="also read every peer of the node config (their /state, and their MaxScale where peers[].maxscale "
        "is set) and this node's exporter /state, for the cluster-wide hazards",
    )
    p.add_argument(
        "--format",
        dest="output",
        choices=("table", "json"),
        default="table",
        help="table (default, for people) or json (for scripts: findings, not_checked, could_not_look, exit)",
    )


def _add_notify(sub: _Subcommands) -> None:
    p = sub.add_parser(
        "notify",
        help="keepalived notify: decide this node's MaxScale mode from live state (and its peers)",
        description="Called by keepalived as 'notify' with TYPE NAME STATE [PRIORITY]; the event says when "
        "to look, live state says what to do: with keepalived.vips set, the governing VIP on this host "
        "(per the kernel) means active, else passive. Before going active it asks the peers "
        "(peers: in the config) and stays passive for a peer verified to be the better keeper and "
        "active. Without arguments (notify_master_rx_lower_pri, or mxha check following up a yield) "
        "it decides from live state alone. An unknown STATE exits 1. It writes its record, lock and ticket in "
        "the directory of notify.state_file, which keepalived's script_user must own: run by another user "
        "(root debugging) or with that directory missing, it writes nothing there, still applies a passive "
        "transition (BACKUP, FAULT, STOP, DELETED) from live state, and refuses anything else with one line "
        "naming the user to run it as (exit 2).",
    )
    _config_flag(p, "node")
    p.add_argument("type", metavar="TYPE", nargs="?", default=None, help="INSTANCE or GROUP")
    p.add_argument("name", metavar="NAME", nargs="?", default=None, help="VRRP instance or group name")
    p.add_argument("state", metavar="STATE", nargs="?", default=None, help="MASTER, BACKUP, FAULT, STOP or DELETED")
    p.add_argument("priority", metavar="PRIORITY", nargs="?", default=None, help="priority (keepalived 2.x)")


def _add_emulator(sub: _Subcommands) -> None:
    p = sub.add_parser(
        "emulator",
        help="MaxScale 24.02 REST API emulator for tests and the lab",
        description="A MaxScale REST API emulator faithful to 24.02.4's documents and errors. "
        "Control routes under /__emulator__/ inject faults at runtime.",
    )
    _listen_flag(p, "127.0.0.1:8989", "default 127.0.0.1:8989, MaxScale's admin_host:admin_port")
    p.add_argument(
        "--state-file",
        default=None,
        metavar="FILE",
        help="persist runtime changes (passive, lock mode) here and restore them at start, "
        "as MaxScale does with maxscale.cnf.d",
    )
    p.add_argument("--user", default="admin", help="REST API user (default admin)")
    p.add_argument("--password", default=None, help="REST API password (default mariadb)")
    p.add_argument("--password-file", default=None, metavar="FILE", help="read the password from FILE")
    p.add_argument(
        "--readonly-user", default=None, metavar="USER:PASSWORD", help="an extra read-only user (writes get 403)"
    )
    p.add_argument("--passive", action="store_true", help="start passive (a persisted value wins)")
    p.add_argument(
        "--server",
        action="append",
        default=None,
        metavar="NAME=ADDR:PORT[=STATE]",
        help="a monitored server (repeatable); default server1 (Master) and server2 (Slave)",
    )
    p.add_argument("--monitor", default="MariaDB-Monitor", help="monitor name (default MariaDB-Monitor)")
    p.add_argument(
        "--locks",
        default="none",
        choices=("none", "majority_of_all", "majority_of_running"),
        help="cooperative_monitoring_locks of the monitor (default none)",
    )
    p.add_argument("--nodename", default=None, help="host name shown in system.os.nodename")
    p.add_argument(
        "--tls-cert", default=None, metavar="FILE", help="serve HTTPS with this certificate (like admin_ssl_cert)"
    )
    p.add_argument("--tls-key", default=None, metavar="FILE", help="private key for --tls-cert")
    p.add_argument(
        "--backend",
        default=None,
        metavar="FILE",
        help="pair mode: monitor the simulated database servers shared through FILE with other emulators "
        "(locks, roles, reachability, failover as the recorded pair of real MaxScales)",
    )
    p.add_argument("--member", default=None, help="pair mode: this MaxScale's name in the backend (default --nodename)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="pair mode: recorded durations (1 s monitor ticks, the 60 s release-locks back-off) times X",
    )
    p.add_argument(
        "--relock-backoff",
        type=float,
        default=None,
        metavar="SECONDS",
        help="pair mode: the back-off after release-locks alone (default 60 s, MaxScale's, times --time-scale)",
    )
    _log_flag(p)


def _lab_subnet(value: str) -> str:
    """``--subnet``: an IPv4 network holding every address the lab gives out (the VIP is its .100)."""
    import ipaddress

    try:
        net = ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IPv4 network such as 198.51.100.0/24: {exc}") from None
    if net.prefixlen > 25:
        raise argparse.ArgumentTypeError(f"{value} is too small: the lab needs a /25 or larger (its VIP is .100)")
    if net.prefixlen < 16 or not net.is_private or net.is_loopback or net.is_link_local:
        # a lab hands out .1 to .100 and routes the whole network to its bridge from the host
        raise argparse.ArgumentTypeError(
            f"{value}: a private or documentation network of a /16 to a /25, such as 198.51.100.0/24"
        )
    return str(net)


def _lab_prefix(value: str) -> str:
    """``--prefix``: the start of every namespace and link name the lab makes (``PREFIX-node1``,
    ``PREFIX-h``): a lowercase letter and up to seven more letters or digits, so names fit Linux's
    15 characters."""
    import re

    if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", value):
        raise argparse.ArgumentTypeError(f"{value!r}: a lowercase letter, then up to 7 lowercase letters or digits")
    return value


def _add_lab(sub: _Subcommands) -> None:
    p = sub.add_parser(
        "lab",
        help="the lab in network namespaces: 2 or 3 nodes, passive or locks mode (root)",
        description="Real keepalived, Prometheus, Alertmanager, exporters, emulators and "
        "the remediator in network namespaces on 198.51.100.0/24.",
    )
    lab_sub = p.add_subparsers(dest="lab_command", metavar="ACTION")
    lp = lab_sub.add_parser("up", help="bring the lab up and return once everything answers")
    lp.add_argument(
        "--subnet",
        type=_lab_subnet,
        default="198.51.100.0/24",
        help="the lab's IPv4 network, a /25 or larger: its .1, .2, .11-.13, .21-.23 and .100 are used "
        "(default 198.51.100.0/24)",
    )
    lp.add_argument("--dir", dest="lab_dir", default=None, help="lab folder (default /run/mxha-lab)")
    lp.add_argument(
        "--prefix",
        type=_lab_prefix,
        default=None,
        help="the lab's namespace names, PREFIX-node1 ... (default mxha); a second lab beside the first "
        "needs its own --prefix, --dir and --subnet",
    )
    lp.add_argument(
        "--mode",
        choices=("passive", "locks"),
        default=None,
        help="passive: the seed tutorial's setup, one active MaxScale (the default for a new lab); locks: "
        "cooperative_monitoring_locks=majority_of_running on both emulated MaxScales, both active, "
        "mode: locks in the node configs and the remediator's cluster",
    )
    lp.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="MaxScale nodes behind the VIP: 2 (the default for a new lab) or 3 (priorities 150, 100, 50)",
    )
    lp.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="remediator replicas: 1 (the default for a new lab) or 2 (two clustered Alertmanagers delivering "
        "to two remediators that coordinate through MariaDB named locks on three real mariadbd)",
    )
    lp.add_argument(
        "--relock-backoff",
        type=float,
        default=None,
        metavar="SECONDS",
        help="locks mode: the emulated MaxScales' back-off after release-locks, and what the hooks and "
        "the remediator assume of it (default for a new lab: 60, MaxScale's own; shorter only saves waiting)",
    )
    lp.add_argument(
        "--maxscale",
        default=None,
        metavar="PATH",
        help="run this MaxScale binary on every node instead of the emulator, with a maxscale.cnf the lab "
        "writes, over three real MariaDB servers (198.51.100.21-23:3306, GTID replication from .21); "
        "needs mariadb-server. Without it the lab runs the emulator",
    )
    lp.add_argument(
        "--maxctrl", default=None, metavar="PATH", help="with --maxscale: the maxctrl that goes with that MaxScale"
    )
    lp = lab_sub.add_parser("down", help="stop every process and remove everything the lab made")
    lp.add_argument("--dir", dest="lab_dir", default=None)
    lp = lab_sub.add_parser("status", help="say whether the lab is up")
    lp.add_argument("--json", action="store_true", help="print one JSON object")
    lp.add_argument("--dir", dest="lab_dir", default=None)
    lp = lab_sub.add_parser("scenario", help="run a scenario and print its timeline and verdict")
    lp.add_argument(
        "name",
        help="a scenario of the lab's mode (`mxha lab scenario list` names them), or all",
    )
    lp.add_argument("--dir", dest="lab_dir", default=None)
    lp.add_argument("--out", default=None, help="folder for timeline pictures and JSON")
    lp = lab_sub.add_parser(
        "maxctrl",
        help="the maxctrl commands the tutorial's scripts use (alter maxscale, list servers)",
        add_help=False,
    )
    lp.add_argument("rest", nargs=argparse.REMAINDER)
    lp = lab_sub.add_parser("demo", help="up, every scenario, summary table and pictures, down (make demo)")
    lp.add_argument("--dir", dest="lab_dir", default=None)
    lp.add_argument("--out", default=None, help="folder for timeline pictures (default ./lab-out)")
    lp.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    lp.add_argument(
        "--mode",
        choices=("passive", "locks", "both"),
        default="both",
        help="which labs to run: passive (2 and 3 nodes), locks (2 nodes), or both: all three, one after "
        "the other (default)",
    )


# in the order `mxha --help` lists them
SUBPARSERS: dict[str, Callable[[_Subcommands], None]] = {
    "exporter": _add_exporter,
    "remediator": _add_remediator,
    "check": _add_check,
    "doctor": _add_doctor,
    "notify": _add_notify,
    "emulator": _add_emulator,
    "lab": _add_lab,
}


def _setup_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _run_emulator(args: argparse.Namespace) -> int:
    import os
    import signal
    import ssl
    import threading

    from mxha.config import FlagError, shown_path
    from mxha.lab.emulator import Emulator, EmulatorConfig, parse_server_spec
    from mxha.serving import listen_address_from

    _setup_logging(args.log_level)
    host, port, named = listen_address_from(args.listen_address, "", "", 8989)
    password = args.password if args.password is not None else "mariadb"
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as fh:
                password = fh.read().strip("\r\n")
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text, or not a file name"
            raise FlagError(f"--password-file: cannot read {shown_path(args.password_file)}: {why}") from None
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not os.access(path, os.R_OK):
            raise FlagError(f"{flag}: cannot read {shown_path(path)}")
    # the backend and the state file are opened once serving: a folder that is not there would be
    # a traceback from a thread
    for flag, path in (("--backend", args.backend), ("--state-file", args.state_file)):
        if path is not None and not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
            raise FlagError(f"{flag}: cannot write in the folder of {shown_path(path)}")
    cfg = EmulatorConfig(
        host=host,
        port=port,
        user=args.user,
        password=password,
        state_file=args.state_file,
        passive=args.passive,
        monitor=args.monitor,
        lock_mode=args.locks,
    )
    if args.readonly_user:
        user, _, pw = args.readonly_user.partition(":")
        cfg.readonly_user, cfg.readonly_password = user, pw
    if args.server:
        try:
            cfg.servers = [parse_server_spec(s) for s in args.server]
        except ValueError as exc:
            raise FlagError(str(exc)) from None
    if args.nodename:
        cfg.nodename = args.nodename
    cfg.tls_cert, cfg.tls_key = args.tls_cert, args.tls_key
    if args.time_scale <= 0:
        print("mxha emulator: --time-scale must be > 0", file=sys.stderr)
        return EXIT_USAGE
    if args.relock_backoff is not None and args.relock_backoff < 0:
        print("mxha emulator: --relock-backoff must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    cfg.backend, cfg.member, cfg.time_scale = args.backend, args.member, args.time_scale
    cfg.relock_backoff = args.relock_backoff
    emulator = Emulator(cfg)
    try:
        emulator.start(wait_for_port=False)
    except ssl.SSLError as exc:
        why = exc.reason or exc.strerror or exc.__class__.__name__
        raise FlagError(f"--tls-cert/--tls-key: not a certificate and its key ({why})") from None
    except OSError as exc:  # bind() and getaddrinfo() failures: the address, not the program
        raise FlagError(f"{named}: cannot listen: {exc.strerror or exc}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: emulator.stop_listening())
    signal.signal(signal.SIGUSR2, lambda *_: emulator.start())
    print(f"MaxScale emulator on {emulator.url} (user {cfg.user}); control API under /__emulator__/", flush=True)
    while not stop.wait(3600):
        pass
    emulator.stop()
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from mxha.healthcheck import main as check_main

    if args.via is not None:
        from mxha.config import FlagError, config_url

        config_url("--via", args.via, error=FlagError)
    return check_main(args.config_file, args.via, follow_up=args.follow_up)


def _run_doctor(args: argparse.Namespace) -> int:
    from mxha.doctor import main as doctor_main

    return doctor_main(args.config_file, args.peers, args.output)


def _run_notify(args: argparse.Namespace) -> int:
    from mxha.notify import main as notify_main

    if args.type is not None and args.state is None:
        print("mxha notify: give TYPE NAME STATE [PRIORITY], or no arguments at all", file=sys.stderr)
        return EXIT_USAGE

    return notify_main(args.config_file, args.type, args.name, args.state, args.priority)


def _run_exporter(args: argparse.Namespace) -> int:
    from mxha.exporter.app import main as exporter_main

    _setup_logging(args.log_level)
    return exporter_main(args.config_file, args.listen_address)


def _run_remediator(args: argparse.Namespace) -> int:
    from mxha.remediator.app import main as remediator_main

    _setup_logging(args.log_level)
    return remediator_main(args.config_file, args.listen_address, args.dry_run)


def _run_lab(args: argparse.Namespace) -> int:
    from mxha.lab.lab import main as lab_main

    _setup_logging("info")
    return lab_main(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "emulator": _run_emulator,
    "check": _run_check,
    "doctor": _run_doctor,
    "notify": _run_notify,
    "exporter": _run_exporter,
    "remediator": _run_remediator,
    "lab": _run_lab,
}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:2] == ["lab", "maxctrl"]:  # maxctrl's own options come first: argparse would take them
        try:
            from mxha.lab.maxctrl import main as maxctrl_main
        except ModuleNotFoundError:
            print("mxha lab: not in this installation", file=sys.stderr)
            return EXIT_USAGE
        return maxctrl_main(words[2:])
    # a command line that starts with a known command gets only that command's subparser; anything
    # else (mxha's own -h or --version first, a typo, nothing) the whole parser, which lists them all
    parser = build_parser(words[0] if words and words[0] in SUBPARSERS else None)
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "lab" and getattr(args, "lab_command", None) is None:
        parser.parse_args(["lab", "--help"])
    from mxha.config import ConfigError, FlagError

    try:
        return COMMANDS[args.command](args)
    except ModuleNotFoundError as exc:
        if args.command in ("lab", "emulator") and (exc.name or "").startswith("mxha.lab"):
            print(
                f"mxha {args.command}: not in this installation (the production image ships the exporter, "
                "the remediator and the hooks; the lab and the emulator come with a source checkout)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        raise
    except FlagError as exc:
        print(f"mxha {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"mxha {args.command}: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""A network-namespace harness: N nodes on a bridge, real programs inside, torn down by pid.

Used by the tests (real keepalived between namespaces) and by ``mxha lab``. Everything it
makes is recorded in ``<workdir>/harness.json`` as it is made, so a later ``teardown()``
(even from another process, after a crash halfway through) removes exactly that: the
processes it started (by pid, never by name), its namespaces and its host veth.

The lab range must be on no host interface or route: ``check_subnet_free`` refuses before
anything is created. The bridge lives in a namespace of its own, so the host firewall
(``bridge-nf-call-iptables``) never sees the lab's traffic.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mxha.files import atomic_write

log = logging.getLogger("mxha.lab.netns")


class HarnessError(RuntimeError):
    pass


def run(*argv: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, input=input_text, timeout=30)
    if check and proc.returncode != 0:
        raise HarnessError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def host_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every network the host's own namespace has an address in or a route to."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for link in json.loads(run("ip", "-j", "addr").stdout or "[]"):
        for info in link.get("addr_info", []):
            nets.append(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for family in ("-4", "-6"):
        for route in json.loads(run("ip", family, "-j", "route", "show", "table", "all").stdout or "[]"):
            dst = route.get("dst")
            if not dst or dst == "default" or route.get("type") in ("local", "broadcast", "multicast", "anycast"):
                continue
            try:
                nets.append(
                    ipaddress.ip_network(
                        dst if "/" in dst else dst + ("/32" if ":" not in dst else "/128"), strict=False
                    )
                )
            except ValueError:
                continue
    return nets


def check_subnet_free(subnet: str, ignore_interfaces: Sequence[str] = ()) -> None:
    """Refuse, with a clear message, when ``subnet`` overlaps any host address or route."""
    net = ipaddress.ip_network(subnet, strict=True)
    ignored: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    for name in ignore_interfaces:
        for link in json.loads(run("ip", "-j", "addr", "show", "dev", name, check=False).stdout or "[]"):
            for info in link.get("addr_info", []):
                ignored.add(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for other in host_networks():
        if other.version == net.version and other.overlaps(net) and other not in ignored:
            raise HarnessError(f"lab subnet {subnet} overlaps the host's {other}: pick another with --subnet")


@dataclass
class NodeNS:
    name: str
    namespace: str
    address: str
    workdir: Path


@dataclass
class Harness:
    """Build with ``Harness(workdir, prefix, subnet)``, then ``create_lan``/``add_node``/``start``."""

    workdir: Path
    prefix: str = "mxha"
    subnet: str = "198.51.100.0/24"
    nodes: dict[str, NodeNS] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)  # keepalived's script security wants no group/other write
        self.net = ipaddress.ip_network(self.subnet)
        self.prefixlen = self.net.prefixlen
        path = self.workdir / "harness.json"
        if path.exists():
            self.record = json.loads(path.read_text())
        self.record.setdefault("namespaces", [])
        self.record.setdefault("host_links", [])
        self.record.setdefault("processes", [])
        self.record.setdefault("nodes", {})
        for name, info in self.record["nodes"].items():
            self.nodes[name] = NodeNS(name, info["namespace"], info["address"], Path(info["workdir"]))

    # -- bookkeeping ----------------------------------------------------------------------
    def _save(self) -> None:
        atomic_write(str(self.workdir / "harness.json"), json.dumps(self.record, indent=1))

    @property
    def lan(self) -> str:
        return f"{self.prefix}-lan"

    def host(self, index: int) -> str:
        return str(self.net.network_address + index)

    def _add_namespace(self, name: str) -> None:
        if name in run("ip", "netns", "list").stdout.split():
            raise HarnessError(
                f"namespace {name} already exists: another lab or test is using the prefix {self.prefix}"
            )
        self.record["namespaces"].append(name)
        self._save()
        run("ip", "netns", "add", name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    # -- building -------------------------------------------------------------------------
    def create_lan(self) -> None:
        check_subnet_free(self.subnet)
        self._add_namespace(self.lan)
        run("ip", "-n", self.lan, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.lan, "link", "set", "br0", "up")

    def _attach(self, namespace: str, ifname: str, port: str, address: str) -> None:
        run("ip", "link", "add", ifname, "netns", namespace, "type", "veth", "peer", "name", port, "netns", self.lan)
        run("ip", "-n", self.lan, "link", "set", port, "master", "br0")
        run("ip", "-n", self.lan, "link", "set", port, "up")
        run("ip", "-n", namespace, "addr", "add", f"{address}/{self.prefixlen}", "dev", ifname)
        run("ip", "-n", namespace, "link", "set", ifname, "up")

    def add_node(self, name: str, index: int) -> NodeNS:
        namespace = f"{self.prefix}-{name}"
        self._add_namespace(namespace)
        address = self.host(index)
        self._attach(namespace, "eth0", f"p-{name}"[:15], address)
        node = NodeNS(name, namespace, address, self.workdir / name)
        node.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(node.workdir, 0o755)
        self.nodes[name] = node
        self.record["nodes"][name] = {"namespace": namespace, "address": address, "workdir": str(node.workdir)}
        self._save()
        return node

    def add_host_link(self, index: int = 1) -> str:
        """A veth from the host into the bridge: the host gets ``.index`` and a route to the /24 only."""
        host_if = f"{self.prefix}-h"[:15]
        self.record["host_links"].append(host_if)
        self._save()
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "p-host", "netns", self.lan)
        run("ip", "-n", self.lan, "link", "set", "p-host", "master", "br0")
        run("ip", "-n", self.lan, "link", "set", "p-host", "up")
        address = self.host(index)
        run("ip", "addr", "add", f"{address}/{self.prefixlen}", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        return address

    # -- processes ------------------------------------------------------------------------
    def start(
        self,
        node: str | None,
        argv: Sequence[str],
        *,
        label: str,
        env: dict[str, str] | None = None,
        log_name: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a program in a node's namespace (``None``: the host), logging to the workdir."""
        prefix = ["ip", "netns", "exec", self.nodes[node].namespace] if node else []
        logfile = open(self.workdir / (log_name or f"{label}.log"), "ab")  # noqa: SIM115 - child keeps it
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.Popen(
            [*prefix, *argv],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        logfile.close()
        self.record["processes"].append(
            {"pid": proc.pid, "label": label, "node": node, "argv": list(argv), "started": time.time()}
        )
        self._save()
        return proc

    def adopt(self, pid: int, label: str, node: str | None) -> None:
        """Record a process started elsewhere (in its own process group), so ``stop_process`` and
        ``teardown`` stop it by its pid like the ones ``start`` made."""
        self.record["processes"].append({"pid": pid, "label": label, "node": node, "argv": [], "started": time.time()})
        self._save()

    def start_keepalived(self, node: str, conf: Path, *, label: str | None = None) -> subprocess.Popen[bytes]:
        """Real keepalived (VRRP only) in a node's namespace, with pid files and TMPDIR (its dumps)
        in the node's workdir, so several keepalived on one host never share them."""
        d = self.nodes[node].workdir
        argv = [
            "keepalived",
            "-f",
            str(conf),
            "-p",
            str(d / "keepalived.pid"),
            "-r",
            str(d / "vrrp.pid"),
            "-c",
            str(d / "checkers.pid"),
            "--vrrp",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            # the console (stderr, kept in the process log) only: with no syslog daemon on the
            # host, glibc's syslog falls back to writing /dev/console, which made each JSON dump
            # ("Printing VRRP as JSON") take 1.3 ms instead of 0.4 (strace: the console write)
            "--no-syslog",
        ]
        return self.start(node, argv, label=label or f"keepalived-{node}", env={"TMPDIR": str(d)})

    def stop_process(self, label: str, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        for entry in [p for p in self.record["processes"] if p["label"] == label]:
            _kill_group(entry["pid"], sig, timeout)
            self.record["processes"].remove(entry)
        self._save()

    def pid_of(self, label: str) -> int | None:
        found = [p["pid"] for p in self.record["processes"] if p["label"] == label]
        return found[-1] if found else None

    def exec(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.nodes[node].namespace, *argv, check=check)

    # -- faults ---------------------------------------------------------------------------
    def block_vrrp(self, node: str) -> None:
        """Drop incoming VRRP on ``node``, link up: how real split brains happen."""
        ns = self.nodes[node].namespace
        run("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "mxha_part")
        run(
            "ip",
            "netns",
            "exec",
            ns,
            "nft",
            "add",
            "chain",
            "inet",
            "mxha_part",
            "in",
            "{ type filter hook input priority 0; }",
        )
        run(
            "ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "mxha_part", "in", "ip", "protocol", "vrrp", "drop"
        )

    def isolate(self, node: str, observer: str | None = None) -> None:
        """Drop EVERY incoming packet on ``node`` but loopback (and the ``observer``'s, the host that
        measures): its peers can neither send VRRP nor answer it. ``unblock_vrrp`` heals this too."""
        ns = self.nodes[node].namespace
        nft = ["ip", "netns", "exec", ns, "nft"]
        run(*nft, "add", "table", "inet", "mxha_part")
        run(*nft, "add", "chain", "inet", "mxha_part", "in", "{ type filter hook input priority 0; }")
        run(*nft, "add", "rule", "inet", "mxha_part", "in", "iif", "lo", "accept")
        if observer:
            run(*nft, "add", "rule", "inet", "mxha_part", "in", "ip", "saddr", observer, "accept")
        run(*nft, "add", "rule", "inet", "mxha_part", "in", "drop")

    def unblock_vrrp(self, node: str) -> None:
        run(
            "ip",
            "netns",
            "exec",
            self.nodes[node].namespace,
            "nft",
            "delete",
            "table",
            "inet",
            "mxha_part",
            check=False,
        )

    def cut_from_server(self, node: str, address: str, port: int) -> None:
        """Cut ``node`` off from one server (``address:port``), in ``node``'s namespace only: a
        one-sided cut, every other node still reaches the server. What ``node`` sends there is
        answered by a TCP reset (a connection is refused at once, an open one breaks at its next
        packet, as in the recorded pair, where the server's proxy was killed), what the server sends
        back is dropped. A dropped connect would instead make each of MaxScale's monitor ticks wait
        out its connect timeout, slowing the very ticks whose count decides a failover. Its own
        table, applied in one transaction (all of it or nothing), so healing a VRRP partition
        (``unblock_vrrp``) leaves it, and ``heal_server_cut`` removes it."""
        script = (
            "table inet mxha_dbcut {\n"
            f"  chain out {{ type filter hook output priority 0; ip daddr {address} tcp dport {port} "
            "reject with tcp reset; }\n"
            f"  chain in {{ type filter hook input priority 0; ip saddr {address} tcp sport {port} drop; }}\n"
            "}\n"
        )
        run("ip", "netns", "exec", self.nodes[node].namespace, "nft", "-f", "-", input_text=script)

    def heal_server_cut(self, node: str) -> None:
        nft = ["ip", "netns", "exec", self.nodes[node].namespace, "nft"]
        run(*nft, "delete", "table", "inet", "mxha_dbcut", check=False)

    # -- teardown -------------------------------------------------------------------------
    def teardown(self) -> None:
        entries = list(reversed(self.record.get("processes", [])))
        # clustered Alertmanagers leave their gossip one at a time: one stopping while its peer stops
        # too waits out the leave timeout; the rest stop side by side, each in its own time
        for entry in [e for e in entries if e["label"].startswith("alertmanager")]:
            _kill_group(entry["pid"], signal.SIGTERM, 5.0)
        _kill_groups([e["pid"] for e in entries if not e["label"].startswith("alertmanager")], signal.SIGTERM, 5.0)
        self.record["processes"] = []
        for host_if in self.record.get("host_links", []):
            run("ip", "link", "del", host_if, check=False)
        self.record["host_links"] = []
        existing = run("ip", "netns", "list", check=False).stdout.split()
        for ns in reversed(self.record.get("namespaces", [])):
            if ns in existing:
                _kill_namespace_leftovers(ns)
                run("ip", "netns", "del", ns, check=False)
        self.record["namespaces"] = []
        self.record["nodes"] = {}
        self.nodes = {}
        self._save()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        pass
    # not our child (`mxha lab down` runs in another process than `lab up`): a zombie whose parent
    # does not reap it (a container's pid 1 that is no init) has exited all the same
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] not in (["Z"], ["X"])


def _signal_both(pid: int, sig: int) -> None:
    """The process group first (children included), then the pid itself."""
    for send in (os.killpg, os.kill):
        try:
            send(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_group(pid: int, sig: int, timeout: float) -> None:
    """Signal the process group we started (start_new_session), then the pid; SIGKILL after timeout."""
    _kill_groups([pid], sig, timeout)


def _kill_groups(pids: list[int], sig: int, timeout: float) -> None:
    """``_kill_group`` for many at once: each stops in its own time (keepalived takes about a second
    to send its last adverts), all within one ``timeout``."""
    for pid in pids:
        _signal_both(pid, sig)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in [p for p in pids if _alive(p)]:
        _signal_both(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _kill_namespace_leftovers(namespace: str) -> None:
    """Processes still inside a namespace we created (children that left our process group)."""
    proc = run("ip", "netns", "pids", namespace, check=False)
    for pid in (int(p) for p in proc.stdout.split() if p.isdigit()):
        _kill_group(pid, signal.SIGTERM, 3.0)


def have_netns() -> str | None:
    """None when this machine can run the harness, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nft", "keepalived"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"needs {tool}"
    return None

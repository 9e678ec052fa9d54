"""``mxha lab``: the two-node lab in network namespaces, with real keepalived, Prometheus and
Alertmanager, the MaxScale emulator, the exporters and the remediator.

Layout (fixed, see docs/lab.md): 198.51.100.0/24 on a bridge in its own namespace; the host
at .1; node1 .11 (priority 150) and node2 .12 (priority 100); VIP .100 (VI_1, vrid 51);
monitor .2 with Prometheus :9090, Alertmanager :9093 and the remediator :9844.

With ``--replicas 2`` the monitor runs the real HA monitoring stack: two Alertmanagers clustered
through their own gossip (:9093 and :9095), each delivering to two remediator replicas (:9844 and
:9845) that coordinate through MariaDB named locks on three real mariadbd servers (:3306-:3308).

Two modes (``mxha lab up --mode``): ``passive`` (the seed tutorial's setup: locks off, one active
MaxScale) and ``locks`` (``cooperative_monitoring_locks=majority_of_running`` on both emulated
MaxScales, both active, ``mode: locks`` in the node configs and the remediator's cluster).

With ``--maxscale PATH`` each node runs that MaxScale binary instead of the emulator, with its own
directories and a ``maxscale.cnf`` the lab writes (``mxha.lab.maxscale_cnf``), over three real
MariaDB servers in a namespace of their own (``mxha-db``: .21, .22, .23 on :3306, GTID replication
from .21, ``mxha.lab.database``).
"""

from __future__ import annotations

import argparse
import base64
import functools
import ipaddress
import json
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import requests
import yaml

from mxha.lab.database import CLIENT_USER, MONITOR_USER, SERVER_NAMES, ServerAddress
from mxha.lab.keepalived_conf import VrrpSpec
from mxha.lab.maxscale_cnf import LISTENER_PORT
from mxha.lab.netns import Harness, HarnessError, check_subnet_free, have_netns
from mxha.lab.node import NodeSpec, installed_mxha
from mxha.lab.waiting import WaitTimeout, wait_for_url
from mxha.model import NodeState

DEFAULT_DIR = "/run/mxha-lab"
PREFIX = "mxha"
CLUSTER = "lab"
MAX_NODES = 3
MAX_REPLICAS = 2
RELOCK_BACKOFF = 60.0  # MaxScale's no-relock back-off after release-locks: one minute, fixed in its source
REMEDIATOR_PORTS = (9844, 9845)  # replica 1, replica 2
ALERTMANAGER_PORTS = ((9093, 9094), (9095, 9096))  # (web, cluster gossip) of Alertmanager 1, 2
LOCK_PORTS = (3306, 3307, 3308)  # the replicas' lock store: three mariadbd on the monitor
DB_NODE = "db"  # with --maxscale: the database servers' namespace (mxha-db)
DB_INDEXES = (21, 22, 23)  # server1, server2, server3; GTID replication from the first
DB_PORT = 3306
# MaxScale's directory options, each a folder of the node's maxscale/ folder (-N, MaxScale's
# language folder, is left to the binary's default: it holds files MaxScale installs, errmsg.sys).
MAXSCALE_DIRS = (("-L", "log"), ("-A", "cache"), ("-D", "data"), ("-F", "persist"), ("-P", "run"), ("-M", "modules"))


def replica_name(stem: str, i: int, suffix: str = "") -> str:
    """Replica ``i``'s file or process label: the first keeps the one-replica lab's names
    (``remediator.yml``, ``audit.jsonl``, ``remediator``), the second is ``remediator2.yml`` and so on."""
    return f"{stem}{'' if i == 1 else i}{suffix}"


def node_table(count: int) -> dict[str, tuple[int, int]]:
    """node1 .11 priority 150, node2 .12 priority 100, node3 .13 priority 50."""
    return {f"node{i}": (10 + i, 200 - 50 * i) for i in range(1, count + 1)}


MONITOR_INDEX = 2
VIP_INDEX = 100
LOCK_MODE = "majority_of_running"  # the recorded pair's setting
MXHA = [installed_mxha()]  # as users run it: the installed console script
# A fresh MaxScale's admin account (MaxScale keeps admin users in its data folder, not in the cnf),
# the emulator's default too; the node configs use it.
_ADMIN_AUTH = {"Authorization": "Basic " + base64.b64encode(b"admin:mariadb").decode()}


@dataclass(frozen=True)
class Layout:
    subnet: str

    def host(self, index: int) -> str:
        return str(ipaddress.ip_network(self.subnet).network_address + index)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def monitor(self) -> str:
        return self.host(MONITOR_INDEX)

    @property
    def vip(self) -> str:
        return self.host(VIP_INDEX)

    def node(self, name: str) -> str:
        return self.host(10 + int(name.removeprefix("node")))


def lab_dir(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "lab_dir", None) or os.environ.get("MXHA_LAB_DIR") or DEFAULT_DIR)


@functools.lru_cache(maxsize=8)
def _says_it_is_the_standin(binary: str) -> bool:
    """Asked once per binary, not at every scenario's skip check (``--version`` starts a process)."""
    import subprocess

    from mxha.lab.maxscale_standin import STANDIN_MARK

    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return STANDIN_MARK in out


def _relock_backoff(maxscale: str | None, asked: float | None) -> float | None:
    """The lab's no-relock back-off: a real MaxScale's is fixed in its source (60 s), so the hooks and
    the remediator must assume exactly that, never a shorter one kept from an emulator lab before;
    only the emulator can be told another (``asked``; None keeps the lab's)."""
    if maxscale is None:
        return asked
    if asked not in (None, RELOCK_BACKOFF):
        raise HarnessError(
            f"--relock-backoff: a real MaxScale's no-relock back-off is {RELOCK_BACKOFF:g} s, not a setting; "
            "only the emulator lab can shorten it"
        )
    return RELOCK_BACKOFF


def _wait(url: str, what: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> None:
    try:
        wait_for_url(url, what, timeout, headers)
    except WaitTimeout as exc:
        raise HarnessError(str(exc)) from exc


class Lab:
    def __init__(self, workdir: Path, subnet: str | None = None) -> None:
        self.workdir = workdir
        meta = workdir / "lab.json"
        saved = json.loads(meta.read_text()) if meta.exists() else {}
        self.layout = Layout(subnet or saved.get("subnet") or "198.51.100.0/24")
        self.mode: str = saved.get("mode", "passive")
        self.nodes = node_table(int(saved.get("nodes", 2)))
        self.replicas = int(saved.get("replicas", 1))
        # MaxScale's no-relock back-off after release-locks, as the emulators run it and the hooks and
        # the remediator assume it (60 s, MaxScale's own, unless `lab up --relock-backoff`)
        self.relock_backoff = float(saved.get("relock_backoff", RELOCK_BACKOFF))
        # `lab up --maxscale PATH [--maxctrl PATH]`: the real MaxScale every node runs (None: the emulator)
        self.maxscale: str | None = saved.get("maxscale")
        self.maxctrl: str | None = saved.get("maxctrl")
        # the namespaces' names: `lab up --prefix` (two labs side by side need two)
        self.prefix: str = saved.get("prefix", PREFIX)
        self.harness: Harness | None = None
        if (workdir / "harness.json").exists():
            self.harness = Harness(workdir, prefix=self.prefix, subnet=self.layout.subnet)

    # -- description (the contract's `status --json`) ------------------------------------------
    def print_doctor(self) -> None:
        """The doctor's table for this lab (``mxha lab up`` and ``make demo`` print it)."""
        _print_doctor(self)

    def describe(self) -> dict[str, Any]:
        lay, d = self.layout, self.workdir
        mon = lay.monitor
        return {
            "cluster": CLUSTER,
            "nodes": [
                {
                    "name": n,
                    "namespace": f"{self.prefix}-{n}",
                    "address": lay.node(n),
                    "exporter_url": f"http://{lay.node(n)}:9843",
                    "maxscale_url": f"http://{lay.node(n)}:8989",
                    "config_file": str(d / n / "node.yml"),
                    # which MaxScale runs there: the binary given to --maxscale, or null for the emulator
                    "maxscale_binary": self.maxscale,
                }
                for n in self.nodes
            ],
            "maxscale": self.maxscale,
            "maxctrl": self.maxctrl,
            # with --maxscale: the real MariaDB servers, and the listener clients (the writer) use on the VIP
            "database_servers": [f"{s.host}:{s.port}" for s in self.database_servers()] if self.maxscale else [],
            "sql_listener": f"{lay.vip}:{LISTENER_PORT}" if self.maxscale else None,
            "vip": lay.vip,
            "prometheus_url": f"http://{mon}:9090",
            "alertmanager_url": f"http://{mon}:9093",
            "remediator_url": f"http://{mon}:9844",
            "replicas": self.replicas,
            "remediator_urls": [f"http://{mon}:{p}" for p in REMEDIATOR_PORTS[: self.replicas]],
            "alertmanager_urls": [f"http://{mon}:{w}" for w, _ in ALERTMANAGER_PORTS[: self.replicas]],
            "webhook_token_file": str(d / "monitor" / "webhook.token"),
            "remediator_config_file": str(d / "monitor" / "remediator.yml"),
            "lab_dir": str(d),
            "mode": self.mode,
        }

    def token(self) -> str:
        return (self.workdir / "monitor" / "webhook.token").read_text().strip()

    def is_up(self) -> bool:
        if self.harness is None or not self.harness.record.get("namespaces"):
            return False
        desc = self.describe()
        urls = [n["exporter_url"] + "/healthz" for n in desc["nodes"]]
        if self.maxscale is None:
            urls += [n["maxscale_url"] + "/__emulator__/state" for n in desc["nodes"]]
        elif not all(self.maxscale_version(n) for n in self.nodes):
            return False
        urls += [desc["prometheus_url"] + "/-/ready"]
        urls += [u + "/-/ready" for u in desc["alertmanager_urls"]]
        urls += [u + "/healthz" for u in desc["remediator_urls"]]
        try:
            return all(requests.get(u, timeout=1).ok for u in urls)
        except requests.RequestException:
            return False

    # -- up ------------------------------------------------------------------------------------
    def up(
        self,
        mode: str | None = None,
        nodes: int | None = None,
        replicas: int | None = None,
        relock_backoff: float | None = None,
        maxscale: str | None = None,
        maxctrl: str | None = None,
        prefix: str | None = None,
    ) -> None:
        why = have_netns()
        if why:
            raise HarnessError(f"the lab {why}")
        for tool in ("prometheus", "prometheus-alertmanager"):
            if shutil.which(tool) is None:
                raise HarnessError(f"the lab needs {tool} (Debian package; `make demo` installs it)")
        if nodes is not None and not 2 <= nodes <= MAX_NODES:
            raise HarnessError(f"--nodes: 2 to {MAX_NODES} (priorities 150, 100, 50)")
        if replicas is not None and not 1 <= replicas <= MAX_REPLICAS:
            raise HarnessError(f"--replicas: 1 or {MAX_REPLICAS} (remediators, each with its Alertmanager)")
        if relock_backoff is not None and not 0 <= relock_backoff <= 3600:
            raise HarnessError("--relock-backoff: 0 to 3600 seconds")
        maxscale, maxctrl = _real_maxscale(maxscale, maxctrl)
        relock_backoff = _relock_backoff(maxscale, relock_backoff)
        if (replicas or 1) > 1:
            from mxha.lab import mariadb

            if mariadb.missing():
                raise HarnessError(f"--replicas 2 needs real MariaDB servers for the lock store: {mariadb.missing()}")
        if (
            self.is_up()
            and mode in (None, self.mode)
            and nodes in (None, len(self.nodes))
            and replicas in (None, self.replicas)
            and relock_backoff in (None, self.relock_backoff)
            and (maxscale, maxctrl) == (self.maxscale, self.maxctrl)
            and prefix in (None, self.prefix)
        ):
            print(
                f"lab already up ({self.workdir}, mode {self.mode}, {len(self.nodes)} nodes, {self.replicas} replicas)"
            )
            return
        if self.harness is not None:
            self.down(quiet=True)
        self.mode = mode or self.mode
        self.nodes = node_table(nodes or len(self.nodes))
        self.replicas = replicas or self.replicas
        self.relock_backoff = relock_backoff if relock_backoff is not None else self.relock_backoff
        # not kept from a previous run: without --maxscale the lab is the emulator lab
        self.maxscale, self.maxctrl = maxscale, maxctrl
        self.prefix = prefix or self.prefix
        check_subnet_free(self.layout.subnet)
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        (self.workdir / "lab.json").write_text(
            json.dumps(
                {
                    "subnet": self.layout.subnet,
                    "mode": self.mode,
                    "nodes": len(self.nodes),
                    "replicas": self.replicas,
                    "relock_backoff": self.relock_backoff,
                    "maxscale": self.maxscale,
                    "maxctrl": self.maxctrl,
                    "prefix": self.prefix,
                }
            )
        )
        h = self.harness = Harness(self.workdir, prefix=self.prefix, subnet=self.layout.subnet)
        try:
            h.create_lan()
            h.add_host_link(1)
            for name, (index, _prio) in self.nodes.items():
                h.add_node(name, index)
            h.add_node("monitor", MONITOR_INDEX)
            if self.maxscale:
                self._start_database()
            for name in self.nodes:
                self._write_node(name)
                if self.maxscale:
                    self.start_maxscale(name)
                else:
                    self.start_emulator(name)
            for name in self.nodes:
                self._start_exporter(name)
            for name in self.nodes:
                self.start_keepalived(name)
            self._write_monitor()
            if self.replicas > 1:
                self._start_lock_store()
            self.start_remediator()
            self._start_alertmanager()
            self._start_prometheus()
            self._wait_settled()
        except BaseException:
            print(f"lab up failed; logs in {self.workdir}; tearing down", file=sys.stderr)
            self.down(quiet=True, keep_logs=True)
            raise

    def node_spec(self, name: str, notify_script: str | None = None) -> NodeSpec:
        """The node's files as the examples show them: the mxha hooks, and the other node as its peer."""
        assert self.harness is not None
        return NodeSpec(
            name,
            self.layout.node(name),
            self.harness.nodes[name].workdir,
            [VrrpSpec("VI_1", 51, self.nodes[name][1], f"{self.layout.vip}/{self.layout.prefixlen}")],
            hooks=installed_mxha(),
            peers=[
                {"name": other, "state_url": f"http://{self.layout.node(other)}:9843/state"}
                for other in self.nodes
                if other != name
            ],
            notify_script=notify_script,
            crash_watch=True,
            # the tutorial's notify is in charge of MaxScale's mode then: mxha check only checks
            extra={
                "mode": self.mode,
                **({"check": {"follow_up": False}} if notify_script else {}),
                **({"notify": {"relock_backoff": self.relock_backoff}} if self._short_backoff() else {}),
            },
        )

    def _short_backoff(self) -> bool:
        """The lab runs a back-off other than MaxScale's own minute: the configs say so too."""
        return self.relock_backoff != RELOCK_BACKOFF

    def _write_node(self, name: str) -> None:
        self.node_spec(name).write()

    def use_tutorial_notify(self, on: bool, release_on_backup: str | None = None, reload: bool = True) -> None:
        """Swap both nodes' notify for the seed tutorial's script (``on``; with ``release_on_backup``,
        the newer tutorial's variant that releases that monitor's locks on BACKUP) or back to
        ``mxha notify``, and have keepalived re-read its configuration (``reload``)."""
        from mxha.lab.tutorial import tutorial_notify_script

        assert self.harness is not None
        for name in self.nodes:
            d = self.harness.nodes[name].workdir
            script: str | None = None
            if on:
                shim = d / "maxctrl"
                # the maxctrl given with --maxscale, or the lab's maxctrl-compatible command
                maxctrl = self.maxctrl or f"{installed_mxha()} lab maxctrl"
                shim.write_text(f'#!/bin/sh\nexec {maxctrl} --hosts {self.layout.node(name)}:8989 "$@"\n')
                path = d / "tutorial_notify.sh"
                path.write_text(
                    tutorial_notify_script(
                        str(shim), str(d / "tutorial-state.txt"), release_on_backup=release_on_backup
                    )
                )
                for f in (shim, path):
                    f.chmod(0o755)
                script = str(path)
            self.node_spec(name, notify_script=script).write()
            if reload:
                self.reload_keepalived(name)

    def reload_keepalived(self, name: str) -> None:
        """keepalived re-reads its configuration on SIGHUP (the new notify script included)."""
        import signal

        assert self.harness is not None
        pid = int((self.harness.nodes[name].workdir / "keepalived.pid").read_text().strip())
        os.kill(pid, signal.SIGHUP)

    def stop_pair(self) -> None:
        """Stop both keepalived, then both MaxScales, as a host shutdown would."""
        import signal

        assert self.harness is not None
        for name in self.nodes:
            self.harness.stop_process(f"keepalived-{name}")
        for name in self.nodes:
            self.harness.stop_process(self.maxscale_label(name), signal.SIGTERM)

    def start_pair(self, first: str = "node1", fresh: bool = True) -> None:
        """Start both MaxScales (``first`` a moment before the other, so it takes the cooperative locks,
        as the recorded pair's first MaxScale did) and then the keepalived, in priority order a second
        apart. ``fresh``: as a first start: the shared database state and each MaxScale's runtime
        changes (passive) are forgotten.

        Started together, the keepalived raced: each leaves FAULT when its own check first passes,
        and a lower priority that left it 0.3 s sooner (a loaded machine) ended its master-down wait
        before it heard the higher priority, was MASTER for 60 ms and ran its notify (seen in a
        test run). Hosts are not started in the same instant either."""
        assert self.harness is not None
        if fresh:
            for path in [self.workdir / "backend.json"] + [
                self.harness.nodes[n].workdir / "maxscale.state" for n in self.nodes
            ]:
                path.unlink(missing_ok=True)
        order = [first] + [n for n in self.nodes if n != first]
        for name in order:
            self.start_emulator(name)
            time.sleep(0.3)
        for i, name in enumerate(self.nodes):  # node1 (the highest priority) first
            if i:
                time.sleep(1.0)
            self.start_keepalived(name)

    def start_emulator(self, name: str) -> None:
        """The node's MaxScale: the emulator, or with --maxscale the real one (scenarios restart it)."""
        if self.maxscale is not None:
            self.start_maxscale(name)
            return
        assert self.harness is not None
        d = self.harness.nodes[name].workdir
        addr = self.layout.node(name)
        self.harness.start(
            name,
            [
                *MXHA,
                "emulator",
                "--web.listen-address",
                f"{addr}:8989",
                "--state-file",
                str(d / "maxscale.state"),
                "--nodename",
                name,
                "--backend",
                str(self.workdir / "backend.json"),
                "--locks",
                LOCK_MODE if self.mode == "locks" else "none",
                *(["--relock-backoff", f"{self.relock_backoff:g}"] if self._short_backoff() else []),
                "--log.level",
                "warning",
            ],
            label=f"emulator-{name}",
        )
        _wait(f"http://{addr}:8989/__emulator__/state", f"{name} MaxScale emulator", 15)

    def restart_maxscale_active(self, name: str) -> float:
        """Restart ``name``'s MaxScale so that it comes back active; returns the wall-clock time right
        before it starts again. The emulator: with passive=false persisted in its state file, as a real
        MaxScale keeps a runtime change across a restart. A real MaxScale (--maxscale): from a config
        that says ``passive=false`` and without its persisted runtime changes (its persist folder,
        ``-F``, emptied), as after a rebuilt host or container, or with the tutorial's config, which
        leaves passive to the notify script."""
        assert self.harness is not None
        if self.maxscale is not None:
            self.stop_emulator(name)
            persist = self.maxscale_cnf_path(name).parent / dict(MAXSCALE_DIRS)["-F"]
            shutil.rmtree(persist, ignore_errors=True)
            started = time.time()
            self.start_maxscale(name, passive=False)
            return started
        state_file = self.harness.nodes[name].workdir / "maxscale.state"
        self.stop_emulator(name)
        doc = json.loads(state_file.read_text()) if state_file.exists() else {}
        doc.setdefault("maxscale", {})["passive"] = False
        state_file.write_text(json.dumps(doc))
        started = time.time()
        self.start_emulator(name)
        return started

    # -- a real MaxScale and its database servers (--maxscale) ---------------------------------
    def maxscale_label(self, name: str) -> str:
        """The node's MaxScale process, as the harness knows it (the emulator's or the real one's)."""
        return f"maxscale-{name}" if self.maxscale else f"emulator-{name}"

    def _database_accounts(self) -> Any:
        from mxha.lab.database import DatabaseAccounts

        assert self.harness is not None
        return DatabaseAccounts.load_or_generate(self.workdir / "db-accounts.json")

    def _start_database(self) -> None:
        """Three real mariadbd in the database namespace, one address each, GTID replication from the
        first, the accounts MaxScale needs; each adopted by pid, so `down` stops them."""
        from mxha.lab import mariadb
        from mxha.lab.database import ReplicatedCluster

        assert self.harness is not None
        db = self.harness.add_node(DB_NODE, DB_INDEXES[0])
        for index in DB_INDEXES[1:]:
            self.harness.exec(
                DB_NODE, "ip", "addr", "add", f"{self.layout.host(index)}/{self.harness.prefixlen}", "dev", "eth0"
            )
        password = secrets.token_urlsafe(18)  # the lock user's: the lab's remediators do not use it here
        cluster = ReplicatedCluster(
            db.workdir,
            [(self.layout.host(i), DB_PORT) for i in DB_INDEXES],
            self._database_accounts(),
            password,
            netns=db.namespace,
        )
        try:
            cluster.start(mariadb.template(db.workdir))
        finally:
            for i, server in enumerate(cluster.servers, start=1):
                if server.proc is not None:
                    self.harness.adopt(server.proc.pid, f"mariadb-server{i}", DB_NODE)

    def maxscale_cnf_path(self, name: str) -> Path:
        assert self.harness is not None
        return self.harness.nodes[name].workdir / "maxscale" / "maxscale.cnf"

    def start_maxscale(self, name: str, passive: bool | None = None) -> None:
        """The real MaxScale (or a stand-in taking its command line) in the node's namespace, in the
        foreground (-d, so the lab stops it by pid), with its own directories and the lab's cnf
        (``passive`` overrides the mode's: see ``restart_maxscale_active``)."""
        from mxha.lab.maxscale_cnf import maxscale_cnf, write_cnf

        assert self.harness is not None and self.maxscale is not None
        home = self.maxscale_cnf_path(name).parent
        home.mkdir(parents=True, exist_ok=True)
        text = maxscale_cnf(
            name, self.layout.node(name), self.mode, self.database_servers(), self._database_accounts(), passive=passive
        )
        cnf = write_cnf(home / "maxscale.cnf", text)
        argv = [self.maxscale, "-d", "-f", str(cnf), "-C", str(home), "-U", "root"]
        for flag, folder in MAXSCALE_DIRS:
            (home / folder).mkdir(exist_ok=True)
            argv += [flag, str(home / folder)]
        self.harness.start(name, argv, label=self.maxscale_label(name))
        _wait(f"http://{self.layout.node(name)}:8989/v1/maxscale", f"{name} MaxScale", 60, _ADMIN_AUTH)

    def database_servers(self) -> list[ServerAddress]:
        """server1-3 on the database namespace's addresses, as MaxScale and the writer's report reach them."""
        return [ServerAddress(n, self.layout.host(i), DB_PORT) for n, i in zip(SERVER_NAMES, DB_INDEXES, strict=True)]

    def maxscale_is_standin(self) -> bool:
        """The lab's --maxscale is mxha's stand-in (``mxha.lab.maxscale_standin``), which says so in
        its ``--version`` line, rather than a real MaxScale."""
        return self.maxscale is not None and _says_it_is_the_standin(self.maxscale)

    def maxscale_version(self, name: str) -> str | None:
        """The version the node's MaxScale reports over its REST API (None: it does not answer)."""
        try:
            resp = requests.get(f"http://{self.layout.node(name)}:8989/v1/maxscale", headers=_ADMIN_AUTH, timeout=1)
            version = resp.json()["data"]["attributes"]["version"] if resp.ok else None
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return None
        return str(version) if version else None

    def writer(self) -> Any:
        """A client writing through the VIP's SQL listener (``mxha.lab.writer.Writer``, not started);
        only a lab with --maxscale has one."""
        from mxha.lab.writer import Writer

        if self.maxscale is None:
            raise HarnessError("the emulator serves no SQL: the writer needs a lab up with --maxscale")
        accounts = self._database_accounts()
        return Writer(
            self.layout.vip, LISTENER_PORT, CLIENT_USER, accounts.client_password, gtids_now=self.binlog_gtids
        )

    def binlog_gtids(self) -> dict[str, set[str]]:
        """Each database server's binary log GTIDs now (a server that cannot be read is left out)."""
        from mxha.lab.writer import read_servers

        accounts = self._database_accounts()
        return read_servers(self.database_servers(), MONITOR_USER, accounts.monitor_password, 3.0)[0]

    def writer_report(self, ledger: Any) -> Any:
        """The writer's figures against the database servers (``mxha.lab.writer.writer_report``): the
        final primary is the server the VIP holder's MaxScale calls primary (any node's when no node
        holds the VIP or its MaxScale names none)."""
        from mxha.lab.writer import writer_report

        views = {n: self.node_view(n) for n in self.nodes}
        named = [v["primary"] for v in views.values() if v["vip"] and v["primary"]]
        named += [v["primary"] for v in views.values() if v["primary"]]
        accounts = self._database_accounts()
        primary = named[0] if named else "none named by any MaxScale"
        return writer_report(ledger, self.database_servers(), primary, MONITOR_USER, accounts.monitor_password)

    def stop_emulator(self, name: str, hard: bool = False) -> None:
        import signal

        assert self.harness is not None
        self.harness.stop_process(self.maxscale_label(name), signal.SIGKILL if hard else signal.SIGTERM)

    def _start_exporter(self, name: str) -> None:
        assert self.harness is not None
        d = self.harness.nodes[name].workdir
        self.harness.start(
            name,
            [*MXHA, "exporter", "--config.file", str(d / "node.yml"), "--log.level", "warning"],
            label=f"exporter-{name}",
        )
        _wait(f"http://{self.layout.node(name)}:9843/healthz", f"{name} exporter", 20)

    def start_keepalived(self, name: str) -> None:
        assert self.harness is not None
        self.harness.start_keepalived(name, self.harness.nodes[name].workdir / "keepalived.conf")

    def _write_monitor(self) -> None:
        assert self.harness is not None
        d = self.harness.nodes["monitor"].workdir
        mon = self.layout.monitor
        (d / "webhook.token").write_text(secrets.token_hex(16) + "\n")
        os.chmod(d / "webhook.token", 0o600)
        # the committed, installed rule file (a test keeps it equal to the generator's output)
        (d / "mxha-rules-lab.yml").write_text(resources.files("mxha.alerts").joinpath("mxha-rules-lab.yml").read_text())
        prom = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(d / "mxha-rules-lab.yml")],
            # every Alertmanager of the cluster: Prometheus sends each alert to all of them
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"{mon}:{w}" for w, _ in ALERTMANAGER_PORTS[: self.replicas]]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "mxha-exporter",
                    "static_configs": [
                        {"targets": [f"{self.layout.node(n)}:9843" for n in self.nodes], "labels": {"cluster": CLUSTER}}
                    ],
                },
                {
                    "job_name": "mxha-remediator",
                    "static_configs": [{"targets": [f"{mon}:{p}" for p in REMEDIATOR_PORTS[: self.replicas]]}],
                },
            ],
        }
        (d / "prometheus.yml").write_text(yaml.safe_dump(prom, sort_keys=False))
        am = {
            "route": {
                "receiver": "remediator",
                "group_by": ["cluster", "alertname"],
                "group_wait": "1s",
                "group_interval": "2s",
                "repeat_interval": "10s",
            },
            "receivers": [
                {
                    "name": "remediator",
                    "webhook_configs": [  # every replica gets every notification
                        {
                            "url": f"http://{mon}:{port}/webhook",
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {"type": "Bearer", "credentials_file": str(d / "webhook.token")}
                            },
                        }
                        for port in REMEDIATOR_PORTS[: self.replicas]
                    ],
                }
            ],
        }
        (d / "alertmanager.yml").write_text(yaml.safe_dump(am, sort_keys=False))
        rem = {
            "listen_address": f"{mon}:9844",
            "audit_log": str(d / "audit.jsonl"),
            "auth": {"bearer_token_file": str(d / "webhook.token")},
            "policy": {
                "cooldown_seconds": 2,
                "unreachable_grace_seconds": 5,
                "circuit_max_actions": 4,
                "circuit_window_seconds": 60,
                "state_timeout": 1.0,
                "recheck_seconds": 2,
                **({"relock_backoff_seconds": self.relock_backoff} if self._short_backoff() else {}),
            },
            "limits": {"request_budget_seconds": 6},
            "clusters": {
                CLUSTER: {
                    "mode": self.mode,
                    "nodes": [
                        {
                            "name": n,
                            "state_url": f"http://{self.layout.node(n)}:9843/state",
                            "maxscale": {
                                "url": f"http://{self.layout.node(n)}:8989",
                                "user": "admin",
                                "password_file": str(self.harness.nodes[n].workdir / "maxscale.pass"),
                                "connect_timeout": 0.3,
                                "read_timeout": 0.7,
                            },
                        }
                        for n in self.nodes
                    ],
                }
            },
        }
        if self.replicas == 1:
            (d / "remediator.yml").write_text(yaml.safe_dump(rem, sort_keys=False))
            return
        (d / "lock.password").write_text(secrets.token_hex(12) + "\n")
        os.chmod(d / "lock.password", 0o600)
        for i, port in enumerate(REMEDIATOR_PORTS[: self.replicas], start=1):
            doc = {
                **rem,
                "listen_address": f"{mon}:{port}",
                "audit_log": str(d / replica_name("audit", i, ".jsonl")),
                "replicas": {
                    "id": f"rem{i}",
                    "lock": {
                        "servers": [f"{mon}:{p}" for p in LOCK_PORTS],
                        "user": "mxha_lock",
                        "password_file": str(d / "lock.password"),
                        "session_timeout": 7,
                        "probe_seconds": 2,
                    },
                    "peers": [f"http://{mon}:{p}" for p in REMEDIATOR_PORTS[: self.replicas] if p != port],
                },
            }
            (d / replica_name("remediator", i, ".yml")).write_text(yaml.safe_dump(doc, sort_keys=False))

    def _start_lock_store(self) -> None:
        """Three real mariadbd on the monitor: the replicas' lock store (the lab's database servers are
        emulated, so the lock store is configured on its own, as docs/replicas.md says users may)."""
        from mxha.lab import mariadb

        assert self.harness is not None
        mon = self.harness.nodes["monitor"]
        password = (mon.workdir / "lock.password").read_text().strip()
        tpl = mariadb.template(mon.workdir)
        for port in LOCK_PORTS:
            d = mon.workdir / f"mariadb-{port}"
            d.mkdir(exist_ok=True)
            db = mariadb.MariaDB(d, mon.address, port, password, netns=mon.namespace)
            db.start(tpl)
            assert db.proc is not None
            self.harness.adopt(db.proc.pid, f"mariadb-{port}", "monitor")

    def start_remediator(self) -> None:
        """Every replica (one, or two with ``--replicas 2``)."""
        assert self.harness is not None
        d = self.harness.nodes["monitor"].workdir
        for i, port in enumerate(REMEDIATOR_PORTS[: self.replicas], start=1):
            cfg = d / replica_name("remediator", i, ".yml")
            label = replica_name("remediator", i)
            self.harness.start("monitor", [*MXHA, "remediator", "--config.file", str(cfg)], label=label)
            _wait(f"http://{self.layout.monitor}:{port}/healthz", label, 20)

    def restart_remediator(self) -> None:
        assert self.harness is not None
        for i in range(1, self.replicas + 1):
            self.harness.stop_process(replica_name("remediator", i))
        self.start_remediator()

    def audit_files(self) -> list[Path]:
        """Every replica's audit trail."""
        assert self.harness is not None
        d = self.harness.nodes["monitor"].workdir
        return [d / replica_name("audit", i, ".jsonl") for i in range(1, self.replicas + 1)]

    def _start_alertmanager(self) -> None:
        """One Alertmanager, or with replicas a cluster of them joined by their own gossip."""
        assert self.harness is not None
        d = self.harness.nodes["monitor"].workdir
        mon = self.layout.monitor
        ports = ALERTMANAGER_PORTS[: self.replicas]
        for i, (web, gossip) in enumerate(ports, start=1):
            data = d / replica_name("am-data", i)
            data.mkdir(exist_ok=True)
            if len(ports) == 1:
                cluster = ["--cluster.listen-address="]
            else:
                cluster = [f"--cluster.listen-address={mon}:{gossip}", f"--cluster.advertise-address={mon}:{gossip}"]
                cluster += [f"--cluster.peer={mon}:{g}" for w, g in ports if w != web]
                cluster += ["--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=2s"]
            self.harness.start(
                "monitor",
                [
                    "prometheus-alertmanager",
                    f"--config.file={d / 'alertmanager.yml'}",
                    f"--storage.path={data}",
                    f"--web.listen-address={mon}:{web}",
                    *cluster,
                    "--log.level=warn",
                ],
                label=replica_name("alertmanager", i),
            )
        for web, _ in ports:
            _wait(f"http://{mon}:{web}/-/ready", "Alertmanager", 30)

    def _start_prometheus(self) -> None:
        assert self.harness is not None
        d = self.harness.nodes["monitor"].workdir
        (d / "prom-data").mkdir(exist_ok=True)
        self.harness.start(
            "monitor",
            [
                "prometheus",
                f"--config.file={d / 'prometheus.yml'}",
                f"--storage.tsdb.path={d / 'prom-data'}",
                f"--web.listen-address={self.layout.monitor}:9090",
                "--log.level=warn",
            ],
            label="prometheus",
        )
        _wait(f"http://{self.layout.monitor}:9090/-/ready", "Prometheus", 40)

    def _wait_settled(self, timeout: float = 40.0) -> None:
        """Up means: node1 MASTER with the VIP and active, node2 BACKUP and passive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.baseline_ok():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise HarnessError(f"the pair did not settle ({baseline_text(self.mode)})")

    def node_view(self, name: str) -> dict[str, Any]:
        addr = self.layout.node(name)
        state = NodeState.from_json(requests.get(f"http://{addr}:9843/state", timeout=2).json())
        if self.maxscale:
            return {
                "vrrp": state.governing_vrrp_state(),
                "vip": state.holds_governing_vip(),
                **maxscale_view(f"http://{addr}:8989"),
            }
        emu = requests.get(f"http://{addr}:8989/__emulator__/state", timeout=2).json()
        return {"vrrp": state.governing_vrrp_state(), "vip": state.holds_governing_vip(), **emulator_view(emu)}

    def baseline_ok(self) -> bool:
        return is_baseline({n: self.node_view(n) for n in self.nodes}, self.mode)

    # -- down ----------------------------------------------------------------------------------
    def down(self, quiet: bool = False, keep_logs: bool = False) -> None:
        harness = self.harness or Harness(self.workdir, prefix=self.prefix, subnet=self.layout.subnet)
        harness.teardown()
        self.harness = None
        if keep_logs:
            return
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        if not quiet:
            print(f"lab down: processes stopped, namespaces and {self.workdir} removed")


def emulator_view(emu: dict[str, Any]) -> dict[str, Any]:
    """What the lab follows of one emulated MaxScale (its ``/__emulator__/state``): its mode, whether it
    holds the cooperative locks (None when they are off), the server its monitor names primary and
    whether that server is Running there. Raises KeyError/AttributeError on a document without them."""
    pair = emu.get("pair") or {}
    named = pair.get("master")
    return {
        "passive": emu["passive"],
        "locks": pair.get("primary") is True if emu.get("lock_mode", "none") != "none" else None,
        "primary": named,
        "sees_primary": "Running" in str(emu.get("servers", {}).get(named, "")).split(", ") if named else None,
    }


def maxscale_view(url: str, timeout: float = 2.0) -> dict[str, Any]:
    """``emulator_view`` for a real MaxScale, read over its REST API as the hooks read it."""
    from mxha.maxscale import MaxScaleClient, MaxScaleError, read_status

    client = MaxScaleClient(url, connect_timeout=timeout, read_timeout=timeout)
    try:
        status = read_status(client, time.monotonic() + timeout, servers=True)
    except MaxScaleError as exc:
        raise requests.RequestException(str(exc)) from exc
    monitor = next((m for m in status.monitors if m.module == "mariadbmon"), None)
    named = monitor.master if monitor else None
    state = next((s for s in status.servers if s.name == named), None)
    return {
        "passive": status.passive,
        "locks": monitor.primary is True if monitor is not None and monitor.uses_locks else None,
        "primary": named,
        "sees_primary": state.running if state is not None else None,
    }


def _real_maxscale(maxscale: str | None, maxctrl: str | None) -> tuple[str | None, str | None]:
    """The checked, absolute paths of ``--maxscale`` and ``--maxctrl`` (one line naming the flag when
    one cannot be used)."""
    if maxctrl is not None and maxscale is None:
        raise HarnessError("--maxctrl: only with --maxscale (the emulator lab has its own maxctrl)")
    paths: list[str | None] = []
    for flag, given in (("--maxscale", maxscale), ("--maxctrl", maxctrl)):
        if given is None:
            paths.append(None)
            continue
        path = shutil.which(given) or given
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise HarnessError(f"{flag}: {given} is not an executable file")
        paths.append(os.path.abspath(path))
    if maxscale is not None:
        from mxha.lab import mariadb

        if mariadb.missing():
            raise HarnessError(f"--maxscale needs real MariaDB servers: {mariadb.missing()}")
    return paths[0], paths[1]


def baseline_text(mode: str) -> str:
    if mode == "locks":
        return "node1 MASTER + VIP + the locks, the others BACKUP, every MaxScale active"
    return "node1 MASTER + VIP + active, the others BACKUP and passive"


def is_baseline(views: dict[str, dict[str, Any]], mode: str) -> bool:
    """The lab at rest: node1 MASTER with the VIP, every other node BACKUP; passive mode: node1
    active, the others passive; locks mode: all active, node1 the lock primary."""
    first, others = views["node1"], [v for n, v in views.items() if n != "node1"]
    vrrp = first["vrrp"] == "MASTER" and first["vip"] is True
    vrrp = vrrp and all(v["vrrp"] == "BACKUP" and v["vip"] is False for v in others)
    if mode == "locks":
        return vrrp and all(v["passive"] is False for v in views.values()) and first["locks"] is True
    return vrrp and first["passive"] is False and all(v["passive"] is True for v in others)


def _print_doctor(lab: Lab) -> None:
    """``mxha doctor --peers`` for the lab's first node: the setup hazards the lab keeps (the locks
    lab's majority_of_running, as the recorded pair had) are shown, not hidden."""
    from mxha.config import ConfigError, load_node_config
    from mxha.doctor import look, render

    nodes = lab.describe()["nodes"]
    if not nodes:
        return
    try:
        cfg = load_node_config(nodes[0]["config_file"])
    except ConfigError as exc:
        print(f"  mxha doctor: {exc}")
        return
    print(f"\nmxha doctor --peers, as {cfg.node} sees the lab:")
    render(look(cfg, peers=True), sys.stdout)
    print()


def main(args: argparse.Namespace) -> int:
    lab = Lab(lab_dir(args), getattr(args, "subnet", None))
    action = args.lab_command
    try:
        if action == "up":
            lab.up(
                args.mode,
                args.nodes,
                args.replicas,
                args.relock_backoff,
                getattr(args, "maxscale", None),
                getattr(args, "maxctrl", None),
                getattr(args, "prefix", None),
            )
            desc = lab.describe()
            print(
                f"lab up in {desc['lab_dir']} (mode {desc['mode']}, {len(desc['nodes'])} nodes, "
                f"{desc['replicas']} remediator replica{'s' if desc['replicas'] > 1 else ''})"
            )
            for node in desc["nodes"]:
                print(
                    f"  {node['name']}: {node['address']}  exporter {node['exporter_url']}  "
                    f"MaxScale {node['maxscale_url']}  (netns {node['namespace']})"
                )
            print(
                f"  VIP {desc['vip']}; Prometheus {desc['prometheus_url']}  Alertmanager "
                f"{' '.join(desc['alertmanager_urls'])}  remediator {' '.join(desc['remediator_urls'])}"
            )
            if desc["maxscale"]:
                print(
                    f"  MaxScale {desc['maxscale']} on every node (cnf: NODE/maxscale/maxscale.cnf); database "
                    f"servers {' '.join(desc['database_servers'])}; SQL listener {desc['sql_listener']}"
                )
            lab.print_doctor()
            return 0
        if action == "down":
            lab.down()
            return 0
        if action == "status":
            desc = {**lab.describe(), "up": lab.is_up()}
            for node in desc["nodes"]:  # asked of the running MaxScale: the emulator's version, or the real one
                node["maxscale_version"] = lab.maxscale_version(node["name"]) if desc["up"] else None
            if args.json:
                print(json.dumps(desc))
            else:
                print(f"lab {'up' if desc['up'] else 'down'} ({desc['lab_dir']})")
            return 0 if desc["up"] else 1
        if action == "scenario":
            from mxha.lab.scenarios import run_named

            return run_named(lab, args.name, Path(args.out) if args.out else None)
        if action == "demo":
            from mxha.lab.scenarios import demo

            return demo(lab, Path(args.out) if args.out else Path("lab-out"), args.mode)
    except HarnessError as exc:
        print(f"mxha lab {action}: {exc}", file=sys.stderr)
        return 1
    print(f"unknown lab action {action}", file=sys.stderr)
    return 2

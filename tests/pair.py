"""Two real keepalived nodes in network namespaces, each with a MaxScale emulator and an exporter."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import requests

from mxha.lab.keepalived_conf import VrrpSpec
from mxha.lab.netns import Harness
from mxha.lab.node import NodeSpec, installed_mxha
from mxha.lab.waiting import wait_for
from mxha.model import NodeState

MXHA = [sys.executable, "-m", "mxha"]
# The namespace tests run in two pytest-xdist groups side by side (tests/conftest.py): the emulator
# lab's (`mxha lab up` with its default names) on the lower half of the documentation range; the
# tests that build their own harness, and the stand-in lab (`lab up --prefix mxhm`), on the upper
# half. Each adds a host route to its half only, so neither overlaps the other's
# (`check_subnet_free` refuses an overlap).
LAB_SUBNET = "198.51.100.0/25"
HARNESS_SUBNET = "198.51.100.128/25"


class Pair:
    """node1 (priority 150) and node2 (100) on VI_1/vrid 51 with VIP .100; VI_2 (vrid 52, .101) reversed."""

    def __init__(
        self,
        workdir: Path,
        *,
        source: str = "json",
        hooks: bool = False,
        subnet: str = HARNESS_SUBNET,
        prefix: str | None = None,
    ) -> None:
        self.prefix = prefix or f"mxt{os.getpid() % 100000}"
        self.h = Harness(workdir, prefix=self.prefix, subnet=subnet)
        self.source = source
        self.hooks = hooks
        self.vip = self.h.host(100)
        self.vip2 = self.h.host(101)
        self.prio = {"node1": 150, "node2": 100}

    # -- lifecycle --------------------------------------------------------------------------
    def up(self) -> Pair:
        h = self.h
        h.create_lan()
        h.add_host_link(1)
        for index, name in ((11, "node1"), (12, "node2")):
            node = h.add_node(name, index)
            self._write_node_files(name)
            self.start_emulator(name)
            self._start_keepalived(name)
            h.start(
                name,
                [
                    *MXHA,
                    "exporter",
                    "--config.file",
                    str(node.workdir / "node.yml"),
                    "--web.listen-address",
                    f"{node.address}:9843",
                ],
                label=f"exporter-{name}",
            )
        for name in self.h.nodes:
            wait_for(
                lambda n=name: requests.get(self.exporter_url(n) + "/healthz", timeout=1).ok, 20, f"{name} exporter"
            )
        return self

    def down(self) -> None:
        self.h.teardown()

    def _write_node_files(self, name: str) -> None:
        node = self.h.nodes[name]
        NodeSpec(
            name,
            node.address,
            node.workdir,
            [
                VrrpSpec("VI_1", 51, self.prio[name], f"{self.vip}/{self.h.prefixlen}"),
                VrrpSpec("VI_2", 52, 250 - self.prio[name], f"{self.vip2}/{self.h.prefixlen}", governing=False),
            ],
            source=self.source,
            hooks=installed_mxha() if self.hooks else None,
            min_signal_interval=0.2,
            connect_timeout=0.5,
            read_timeout=1.0,
            password_in_file=False,
            listen=False,
        ).write()

    def start_emulator(self, name: str) -> None:
        node = self.h.nodes[name]
        self.h.start(
            name,
            [
                *MXHA,
                "emulator",
                "--web.listen-address",
                f"{node.address}:8989",
                "--state-file",
                str(node.workdir / "maxscale.state"),
                "--nodename",
                name,
            ],
            label=f"emulator-{name}",
        )
        wait_for(
            lambda: requests.get(f"http://{node.address}:8989/__emulator__/state", timeout=1).ok, 15, f"{name} emulator"
        )

    def _start_keepalived(self, name: str) -> None:
        d = self.h.nodes[name].workdir
        self.h.start_keepalived(name, d / "keepalived.conf")
        wait_for(lambda: (d / "keepalived.pid").exists(), 10, f"{name} keepalived pid file")

    # -- observing --------------------------------------------------------------------------
    def exporter_url(self, name: str) -> str:
        return f"http://{self.h.nodes[name].address}:9843"

    def maxscale_url(self, name: str) -> str:
        return f"http://{self.h.nodes[name].address}:8989"

    def state(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = requests.get(self.exporter_url(name) + "/state", timeout=5).json()
        return doc

    def vrrp(self, name: str, instance: str = "VI_1") -> str | None:
        instances = NodeState.from_json(self.state(name)).keepalived.instances
        return next((i.state for i in instances if i.name == instance), None)

    def metrics(self, name: str) -> str:
        return requests.get(self.exporter_url(name) + "/metrics", timeout=5).text

    def emulator_state(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = requests.get(self.maxscale_url(name) + "/__emulator__/state", timeout=5).json()
        return doc

    def set_check(self, name: str, ok: bool) -> None:
        flag = self.h.nodes[name].workdir / "ok"
        if ok:
            flag.write_text("")
        else:
            flag.unlink(missing_ok=True)

    def wait_roles(self, master: str, timeout: float = 20) -> None:
        other = "node2" if master == "node1" else "node1"
        wait_for(
            lambda: self.vrrp(master) == "MASTER" and self.vrrp(other) in ("BACKUP", "FAULT"),
            timeout,
            f"{master} MASTER, {other} not",
        )

    def notify_state(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.h.nodes[name].workdir / "notify-state.json").read_text())
        return doc

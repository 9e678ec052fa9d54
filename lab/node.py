"""The ONE builder of a lab node's files: its node config (``node.yml``, as the examples show it)
and its keepalived.conf with the hooks. ``mxha lab``, the tests' pair and the bench all build
nodes here, each saying only what differs for it."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mxha.lab.keepalived_conf import VrrpSpec, render_keepalived_conf


def installed_mxha() -> str:
    """The installed ``mxha`` console script, as the examples tell users to put in keepalived.conf.

    keepalived resolves a script's path and runs it outside any venv: ``<venv>/bin/python -m mxha``
    would run the BASE interpreter (the venv's python is a link to it), which finds the package only
    when started inside a checkout. The console script's own shebang picks the right interpreter."""
    script = Path(sys.executable).with_name("mxha")
    if script.exists():
        return str(script)
    found = shutil.which("mxha")
    if found is None:
        raise FileNotFoundError("the mxha console script is not installed next to this Python nor on PATH")
    return found


@dataclass
class NodeSpec:
    name: str
    address: str
    workdir: Path
    instances: list[VrrpSpec]
    source: str = "json"  # keepalived.source
    hooks: str | None = None  # the mxha command (installed_mxha()); None: a plain check script, no notify
    min_signal_interval: float = 0.3
    connect_timeout: float = 0.3
    read_timeout: float = 0.7
    password_in_file: bool = True  # the examples keep it in a 0600 file
    listen: bool = True  # write exporter.listen_address (address:9843)
    extra: dict[str, Any] = field(default_factory=dict)  # more node.yml keys, merged per section
    peers: list[dict[str, Any]] = field(default_factory=list)  # node.yml `peers:` (peer-aware notify)
    notify_script: str | None = None  # replaces `mxha notify` in keepalived.conf (the tutorial's baseline)
    crash_watch: bool = False  # the exporter's crash watch writes maxscale.track, keepalived tracks it

    @property
    def track_file(self) -> Path | None:
        return self.workdir / "maxscale.track" if self.crash_watch else None

    @property
    def config_file(self) -> Path:
        return self.workdir / "node.yml"

    def node_config(self) -> dict[str, Any]:
        d = self.workdir
        maxscale: dict[str, Any] = {
            "url": f"http://{self.address}:8989",
            "user": "admin",
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }
        if self.password_in_file:
            maxscale["password_file"] = str(d / "maxscale.pass")
        else:
            maxscale["password"] = "mariadb"  # noqa: S105 - MaxScale's default, and the emulator's
        cfg: dict[str, Any] = {
            "node": self.name,
            "maxscale": maxscale,
            "check": {"expected_servers": ["server1", "server2"], "timeout": 1.0, "interval": 0.5},
            "keepalived": {
                "source": self.source,
                "pid_file": str(d / "keepalived.pid"),
                "dump_dir": str(d),
                "governing_instance": next(i.name for i in self.instances if i.governing),
                "vips": [i.vip.split("/")[0] for i in self.instances if i.governing],
                "min_signal_interval": self.min_signal_interval,
                "dump_timeout": 1.0,
                **({"notify_fifo": str(d / "notify.fifo")} if self.source == "fifo" else {}),
            },
            "notify": {"state_file": str(d / "notify-state.json"), "timeout": 3.0, "log_file": str(d / "notify.log")},
        }
        if self.track_file is not None:
            cfg["check"]["track_file"] = str(self.track_file)
        if self.peers:
            cfg["peers"] = self.peers
        if self.listen:
            cfg["exporter"] = {"listen_address": f"{self.address}:9843"}
        for section, values in self.extra.items():
            if isinstance(values, dict) and isinstance(cfg.get(section), dict):
                cfg[section] = {**cfg[section], **values}
            else:
                cfg[section] = values
        return cfg

    def write(self) -> Path:
        """Write node.yml (and the password file), keepalived.conf, and the check flag; return node.yml."""
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        if self.password_in_file:
            (d / "maxscale.pass").write_text("mariadb\n")
            os.chmod(d / "maxscale.pass", 0o600)
        self.config_file.write_text(yaml.safe_dump(self.node_config(), sort_keys=False))
        if self.hooks:
            check_cmd = f"{self.hooks} check --config.file {self.config_file} --follow-up"
            notify_cmd: str | None = f"{self.hooks} notify --config.file {self.config_file}"
            recheck_cmd: str | None = notify_cmd if self.peers else None
            if self.notify_script:
                notify_cmd, recheck_cmd = self.notify_script, None
        else:  # a check the test flips with a file, and no notify: keepalived alone
            (d / "ok").write_text("")
            check = d / "check.sh"
            check.write_text(f"#!/bin/sh\ntest -e {d}/ok\n")
            check.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
            check_cmd, notify_cmd, recheck_cmd = str(check), None, None
        (d / "keepalived.conf").write_text(
            render_keepalived_conf(
                router_id=self.name,
                interface="eth0",
                instances=self.instances,
                check_script=check_cmd,
                notify_script=notify_cmd,
                notify_fifo=str(d / "notify.fifo") if self.source == "fifo" else None,
                recheck_script=recheck_cmd,
                track_file=str(self.track_file) if self.track_file is not None and self.hooks else None,
            )
        )
        return self.config_file

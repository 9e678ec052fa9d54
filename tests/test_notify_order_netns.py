"""Overlapping notify calls end in the NEWER transition's mode, as keepalived's unprivileged script
user runs them, under CPU load.

The test plays keepalived's part exactly as keepalived does it: change the VIP in the node's
namespace, then start the notify for that state; the next transition follows 3 ms later. The hooks
run as ``nobody`` (``setpriv``), in the namespace, with the installed ``mxha`` script; three busy
processes load the two cores. Before, the calls were ordered by a clock read after interpreter
start-up, and a BACKUP followed 3 ms later by a MASTER ended passive in several runs out of 20.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pair import HARNESS_SUBNET

from mxha.lab.netns import Harness, have_netns
from mxha.lab.node import installed_mxha
from mxha.lab.waiting import wait_for

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(have_netns() is not None, reason=f"namespaces: {have_netns()}"),
]

PAIRS = 20
GAP = 0.003


def as_nobody(h: Harness, node: str, *argv: str) -> list[str]:
    return [
        "ip", "netns", "exec", h.nodes[node].namespace,
        "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
        *argv,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, Path, str]]:
    workdir = Path("/run") / f"mxha-test-order-{tmp_path_factory.getbasetemp().name}"
    h = Harness(workdir, prefix=f"mxo{os.getpid() % 100000}", subnet=HARNESS_SUBNET)
    try:
        h.create_lan()
        h.add_host_link(1)
        n = h.add_node("node1", 11)
        state_dir = n.workdir / "hooks"
        state_dir.mkdir()
        os.chmod(n.workdir, 0o755)
        subprocess.run(["chown", "nobody:nogroup", str(state_dir)], check=True)
        emulator_url = f"http://{n.address}:8989"
        h.start("node1", [installed_mxha(), "emulator", "--web.listen-address", f"{n.address}:8989"], label="emu")
        wait_for(lambda: requests.get(emulator_url + "/__emulator__/state", timeout=1).ok, 20, "emulator")
        cfg = n.workdir / "node.yml"
        cfg.write_text(
            json.dumps(  # JSON is YAML
                {
                    "node": "node1",
                    "maxscale": {"url": emulator_url, "password": "mariadb", "read_timeout": 2.0},
                    "keepalived": {"governing_instance": "VI_1", "vips": [h.host(100)]},
                    "notify": {"state_file": str(state_dir / "notify-state.json"), "timeout": 8.0},
                }
            )
        )
        probe = subprocess.run(as_nobody(h, "node1", installed_mxha(), "--version"), capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"nobody cannot run the installed mxha here: {probe.stderr.strip()[:200]}")
        yield h, cfg, emulator_url
    finally:
        h.teardown()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def set_vip(h: Harness, present: bool) -> None:
    h.exec("node1", "ip", "addr", "add" if present else "del", f"{h.host(100)}/{h.prefixlen}", "dev", "eth0")


def test_overlapping_calls_end_in_the_newer_transitions_mode(node: tuple[Harness, Path, str]) -> None:
    h, cfg, emulator_url = node
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(3)]
    outcomes = []
    try:
        vip_here = False
        for i in range(PAIRS):
            older, newer = ("BACKUP", "MASTER") if i % 2 == 0 else ("MASTER", "BACKUP")
            procs = []
            for state in (older, newer):
                if (state == "MASTER") != vip_here:  # keepalived: the VIP first, then the notify
                    set_vip(h, state == "MASTER")
                    vip_here = state == "MASTER"
                argv = as_nobody(h, "node1", installed_mxha(), "notify", "--config.file", str(cfg), "INSTANCE", "VI_1")
                procs.append(subprocess.Popen([*argv, state, "100"], stderr=subprocess.PIPE, text=True))
                if state == older:
                    time.sleep(GAP)
            codes = [p.wait(30) for p in procs]
            for p in procs:
                assert p.stderr is not None
                p.stderr.close()
            passive = requests.get(emulator_url + "/__emulator__/state", timeout=5).json()["passive"]
            outcomes.append((older, newer, codes, passive))
    finally:
        for p in load:
            p.kill()
            p.wait()
        if vip_here:
            set_vip(h, False)
    wrong = [o for o in outcomes if o[3] != (o[1] != "MASTER") or o[2] != [0, 0]]
    assert wrong == [], wrong
    assert len(outcomes) == PAIRS
    # the record is the unprivileged user's: it wrote it, and says why it decided each time
    history = json.loads((cfg.parent / "hooks" / "notify-state.json").read_text())["history"]
    assert all(("on this host" in e["result"]) or e["result"].startswith("superseded") for e in history)

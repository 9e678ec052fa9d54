"""A remediator replica cut off from the lock store by a network partition (nftables in its own
namespace) while it holds the cluster's lock: it must not act, and the other replica takes over
once the lock servers have dropped the cut-off replica's sessions (their ``wait_timeout``)."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import control
from helpers import StateServer
from pair import HARNESS_SUBNET
from test_remediator import payload
from test_remediator_replicas import AUTH, PASSWORD, lock_holder, write_replica_config

from mxha.lab import mariadb
from mxha.lab.netns import Harness, have_netns, run
from mxha.lab.waiting import wait_for

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(have_netns() is not None, reason=f"namespaces: {have_netns()}"),
    pytest.mark.skipif(mariadb.missing() is not None, reason=str(mariadb.missing())),
]

SESSION_TIMEOUT = 2


class PartitionLab:
    """Host .1: the MaxScale emulators and /state servers. Namespace `locks` (.21): three mariadbd.
    Namespaces `r1` (.31) and `r2` (.32): one remediator replica each."""

    def __init__(self, tmp: Path, make_emulator: Any) -> None:
        self.tmp = tmp
        self.h = Harness(tmp / "net", prefix=f"mxr{os.getpid() % 100000}", subnet=HARNESS_SUBNET)
        self.h.create_lan()
        self.host = self.h.add_host_link(1)
        self.h.add_node("locks", 21)
        self.h.add_node("r1", 31)
        self.h.add_node("r2", 32)
        tpl = mariadb.template(tmp)
        self.dbs: list[mariadb.MariaDB] = []
        for port in (3306, 3307, 3308):
            d = tmp / f"db{port}"
            d.mkdir()
            db = mariadb.MariaDB(
                d, self.h.nodes["locks"].address, port, PASSWORD, netns=self.h.nodes["locks"].namespace
            )
            self.dbs.append(db.start(tpl))
        self.emulators = {n: make_emulator(nodename=n, host=self.host) for n in ("node1", "node2")}
        self.states = {n: StateServer(n, host=self.host) for n in ("node1", "node2")}
        (tmp / "lock.password").write_text(PASSWORD)

    def url(self, rid: str) -> str:
        return f"http://{self.h.nodes[rid].address}:9844"

    def start_replica(self, rid: str) -> None:
        other = "r2" if rid == "r1" else "r1"
        nodes = [
            {
                "name": n,
                "state_url": self.states[n].url,
                "maxscale": {"url": self.emulators[n].url, "password": "mariadb", "read_timeout": 5.0},
            }
            for n in ("node1", "node2")
        ]
        servers = [db.address for db in self.dbs]
        policy = {"cooldown_seconds": 0, "recheck_seconds": 0}
        cfg = write_replica_config(
            self.tmp, rid, servers, self.url(other), nodes, policy, session_timeout=SESSION_TIMEOUT
        )
        addr = self.h.nodes[rid].address
        argv = [sys.executable, "-m", "mxha", "remediator", "--config.file", str(cfg)]
        self.h.start(rid, [*argv, "--web.listen-address", f"{addr}:9844"], label=f"remediator-{rid}")
        wait_for(lambda: _ok(self.url(rid) + "/healthz"), 15, f"replica {rid}")

    def cut_from_lock_store(self, rid: str) -> None:
        """Drop everything between the replica and the lock servers, both ways; all else still flows."""
        nft = ["ip", "netns", "exec", self.h.nodes[rid].namespace, "nft"]
        store = self.h.nodes["locks"].address
        run(*nft, "add", "table", "inet", "mxha_part")
        for chain, hook, field in (("in", "input", "saddr"), ("out", "output", "daddr")):
            run(*nft, "add", "chain", "inet", "mxha_part", chain, f"{{ type filter hook {hook} priority 0; }}")
            run(*nft, "add", "rule", "inet", "mxha_part", chain, "ip", field, store, "drop")

    def post(self, rid: str) -> requests.Response:
        return requests.post(
            self.url(rid) + "/webhook",
            data=json.dumps(payload("MaxScaleVRRPSplitBrain")),
            headers={**AUTH, "Content-Type": "application/json"},
            timeout=40,
        )

    def patches(self, node: str) -> int:
        return sum(1 for r in control(self.emulators[node], "requests")["requests"] if r["method"] == "PATCH")

    def close(self) -> None:
        for db in self.dbs:
            db.stop()
        for s in self.states.values():
            s.close()
        self.h.teardown()


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


@pytest.fixture
def lab(tmp_path: Path, make_emulator: Any) -> Iterator[PartitionLab]:
    lab = PartitionLab(tmp_path, make_emulator)
    try:
        yield lab
    finally:
        lab.close()


def test_a_replica_cut_off_from_the_lock_store_while_holding_it_does_not_act(lab: PartitionLab) -> None:
    lab.start_replica("r1")
    lab.start_replica("r2")
    for n, prio in (("node1", 150), ("node2", 100)):
        lab.states[n].set("MASTER", True, prio)
    control(lab.emulators["node2"], "fault", {"mode": "slow", "delay": 1.5, "methods": ["GET"]})
    answer: list[Any] = []
    threading.Thread(target=lambda: answer.append(lab.post("r1")), daemon=True).start()
    wait_for(lambda: any(lock_holder(db) is not None for db in lab.dbs), 10, "r1 holds the lock")
    time.sleep(0.3)  # its re-read under the lock is on its way
    lab.cut_from_lock_store("r1")
    cut = time.monotonic()
    control(lab.emulators["node2"], "fault", {"mode": "none"})
    resp = lab.post("r2")  # waits until the servers drop r1's silent sessions
    took_over = time.monotonic() - cut
    wait_for(lambda: bool(answer), 40, "r1's answer")
    late = answer[0]
    print(f"partition: r2 corrected {took_over:.2f}s after r1 was cut off; r1 answered {late.status_code}: {late.text}")
    assert resp.status_code == 200, resp.text
    assert re.match(r"held on [23]/3 ", resp.json()["clusters"]["mx-prod"]["lock"])
    assert late.status_code == 503, late.text
    result = late.json()["clusters"]["mx-prod"]
    assert result["lock"].startswith("lock lost: ") and [a["result"] for a in result["actions"]] == ["skipped"]
    assert lab.patches("node2") == 1 and lab.patches("node1") == 0, "one demotion, by the replica that held the lock"
    assert (
        control(lab.emulators["node2"], "state")["passive"] and not control(lab.emulators["node1"], "state")["passive"]
    )
    assert took_over < SESSION_TIMEOUT + 5

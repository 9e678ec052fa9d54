"""Remediator replicas coordinating through MariaDB named locks on a majority of lock servers.

Everything real: three Debian mariadbd servers (the lock store) started here on loopback, two
``mxha remediator`` processes as users run them, MaxScale emulators and ``/state`` servers over
HTTP. The failure modes are injected from outside: a store that does not answer, a replica killed
(SIGKILL) or frozen (SIGSTOP) while it holds the lock; the namespace partition is in
``test_remediator_replicas_netns.py``."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import requests
import yaml
from conftest import control
from helpers import MxhaServer, StateServer, free_port
from test_remediator import TOKEN, payload

from mxha.lab import mariadb
from mxha.lab.waiting import wait_for
from mxha.remediator.replicas import lock_name

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "lock-s3cret"
LOCK = lock_name("mx-prod")


@pytest.fixture(scope="module")
def lock_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[mariadb.MariaDB]]:
    why = mariadb.missing()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("lockstore")
    tpl = mariadb.template(root)
    servers = []
    try:
        for i in range(3):
            d = root / f"db{i}"
            d.mkdir()
            servers.append(mariadb.MariaDB(d, "127.0.0.1", free_port(), PASSWORD).start(tpl))
        yield servers
    finally:
        for s in servers:
            s.signal(signal.SIGCONT)
            s.stop()


def lock_holder(server: mariadb.MariaDB) -> int | None:
    """The connection id holding the cluster's lock on ``server`` (None: free), asked from outside."""
    conn = pymysql.connect(
        host=server.host, port=server.port, user=mariadb.LOCK_USER, password=PASSWORD, connect_timeout=2
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT IS_USED_LOCK(%s)", (LOCK,))
            row = cur.fetchone()
            return None if row is None or row[0] is None else int(row[0])
    finally:
        conn.close()


def write_replica_config(
    tmp: Path, rid: str, servers: list[str], peer: str, nodes: list[dict[str, Any]], policy: dict[str, Any], **lock: Any
) -> Path:
    """Replica ``rid``'s config file (cluster mx-prod, session timeout 2 s, the lock password in
    ``tmp/lock.password``, a 30 s request budget): the tests' one way to write it."""
    doc = {
        "auth": {"bearer_token": TOKEN},
        "audit_log": str(tmp / f"audit-{rid}.jsonl"),
        "policy": policy,
        "limits": {"request_budget_seconds": 30},
        "replicas": {
            "id": rid,
            "lock": {
                "servers": servers,
                "user": mariadb.LOCK_USER,
                "password_file": str(tmp / "lock.password"),
                "session_timeout": 2,
                "connect_timeout": 0.5,
                **lock,
            },
            "peers": [peer],
        },
        "clusters": {"mx-prod": {"nodes": nodes}},
    }
    path = tmp / f"{rid}.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


class Replicas:
    """Two remediator processes, r1 and r2, each the other's peer, over one split-brain-able pair."""

    def __init__(self, make_emulator: Any, tmp_path: Path, servers: list[str], **policy: Any) -> None:
        self.tmp = tmp_path
        self.emulators = {"node1": make_emulator(nodename="node1"), "node2": make_emulator(nodename="node2")}
        self.states = {"node1": StateServer("node1"), "node2": StateServer("node2")}
        self.states["node1"].priority = 150
        self.ports = {"r1": free_port(), "r2": free_port()}
        (tmp_path / "lock.password").write_text(PASSWORD + "\n")
        self.servers = servers
        self.policy = {"cooldown_seconds": 0, "unreachable_grace_seconds": 0.5, "recheck_seconds": 0, **policy}
        self.procs: dict[str, MxhaServer] = {}
        self.blind: dict[str, set[str]] = {}  # replica -> nodes it cannot reach (their addresses: closed ports)

    def config(self, rid: str) -> Path:
        other = "r2" if rid == "r1" else "r1"
        nodes = [self.node_entry(rid, n) for n in ("node1", "node2")]
        peer = f"http://127.0.0.1:{self.ports[other]}"
        return write_replica_config(self.tmp, rid, self.servers, peer, nodes, self.policy, probe_seconds=0.5)

    def node_entry(self, rid: str, node: str) -> dict[str, Any]:
        if node in self.blind.get(rid, set()):  # cut off from this replica: nothing answers there
            dead = f"http://127.0.0.1:{free_port()}"
            return {"name": node, "state_url": dead + "/state", "maxscale": {"url": dead, "password": "mariadb"}}
        return {
            "name": node,
            "state_url": self.states[node].url,
            "maxscale": {"url": self.emulators[node].url, "password": "mariadb", "read_timeout": 5.0},
        }

    def start(self, *rids: str) -> None:
        for rid in rids or ("r1", "r2"):
            self.procs[rid] = MxhaServer("remediator", self.config(rid), port=self.ports[rid])

    def split_brain(self) -> None:
        """Both MASTER with the VIP, both MaxScales active: node1 (150) is to be kept."""
        for n, prio in (("node1", 150), ("node2", 100)):
            self.states[n].set("MASTER", True, prio)
            control(self.emulators[n], "maxscale", {"passive": False})

    def post(self, rid: str, timeout: float = 40) -> requests.Response:
        return requests.post(
            f"http://127.0.0.1:{self.ports[rid]}/webhook",
            data=json.dumps(payload("MaxScaleVRRPSplitBrain")),
            headers={**AUTH, "Content-Type": "application/json"},
            timeout=timeout,
        )

    def patches(self, node: str) -> list[dict[str, Any]]:
        return [r for r in control(self.emulators[node], "requests")["requests"] if r["method"] == "PATCH"]

    def passive(self, node: str) -> bool:
        return bool(control(self.emulators[node], "state")["passive"])

    def metrics(self, rid: str) -> str:
        return requests.get(f"http://127.0.0.1:{self.ports[rid]}/metrics", timeout=5).text

    def close(self) -> None:
        for p in self.procs.values():
            if p.proc.poll() is None:
                os.kill(p.proc.pid, signal.SIGCONT)
                p.stop()
        for s in self.states.values():
            s.close()


@pytest.fixture
def make_replicas(
    make_emulator: Any, tmp_path: Path, lock_store: list[mariadb.MariaDB]
) -> Iterator[Callable[..., Replicas]]:
    """Replicas over the lock store (or the ``servers`` given), with ``policy`` overrides; all closed at teardown."""
    made: list[Replicas] = []

    def make(servers: list[str] | None = None, **policy: Any) -> Replicas:
        made.append(Replicas(make_emulator, tmp_path, servers or [s.address for s in lock_store], **policy))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def replicas(make_replicas: Callable[..., Replicas]) -> Replicas:
    return make_replicas()


def in_threads(*calls: Any) -> list[Any]:
    out: list[Any] = [None] * len(calls)

    def run(i: int, call: Any) -> None:
        try:
            out[i] = call()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion that reads it
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def clusters_of(resp: requests.Response) -> dict[str, Any]:
    return dict(resp.json()["clusters"]["mx-prod"])


# -- one correction per fault ---------------------------------------------------------------------
def test_two_replicas_each_asked_twice_make_one_correction_per_fault(
    replicas: Replicas, lock_store: list[mariadb.MariaDB]
) -> None:
    replicas.start()
    for round_ in range(4):
        replicas.split_brain()
        before = len(replicas.patches("node2"))
        # two clustered Alertmanagers, each delivering to both replicas, at the same moment
        answers = in_threads(*(lambda rid=rid: replicas.post(rid) for rid in ("r1", "r2", "r1", "r2")))
        assert all(isinstance(a, requests.Response) and a.status_code == 200 for a in answers), answers
        assert len(replicas.patches("node2")) - before == 1, f"round {round_}: one demotion, not two"
        assert replicas.patches("node1") == [], "the node to keep is never touched"
        assert replicas.passive("node2") and not replicas.passive("node1")
        acted = [clusters_of(a) for a in answers if any(x["result"] == "success" for x in clusters_of(a)["actions"])]
        # a majority, not every server: the other replica may hold one of them for a moment
        assert len(acted) == 1 and re.match(r"held on [23]/3 lock servers", acted[0]["lock"]), acted
        assert [lock_holder(s) for s in lock_store] == [None, None, None], "given back after the correction"


# -- the lock store down ----------------------------------------------------------------------------
def test_no_majority_of_lock_servers_means_no_action_said_so(
    make_replicas: Callable[..., Replicas], tmp_path: Path, lock_store: list[mariadb.MariaDB]
) -> None:
    # one server answers, one is closed, one hangs (SIGSTOPped mariadbd: connects are not answered)
    frozen = lock_store[2]
    r = make_replicas([lock_store[0].address, f"127.0.0.1:{free_port()}", frozen.address])
    try:
        frozen.signal(signal.SIGSTOP)
        r.start("r1")
        r.split_brain()
        started = time.monotonic()
        resp = r.post("r1")
        took = time.monotonic() - started
        print(f"answer with the lock store down: {took:.2f}s")
        assert resp.status_code == 503, resp.text
        result = clusters_of(resp)
        assert result["verdict"] == "lock-unavailable"
        assert result["guard"] == "lock_unavailable"
        assert "1 of 3 lock servers answered, 2 needed" in result["lock"]
        assert [a["result"] for a in result["actions"]] == ["skipped"]
        assert r.patches("node2") == [] and not r.passive("node2"), "nothing changed"
        text = r.metrics("r1")
        assert 'mxha_remediator_lock_quorum{cluster="mx-prod"} 0.0' in text
        assert 'mxha_remediator_lock_servers_answering{cluster="mx-prod"} 1.0' in text
        assert 'mxha_remediator_corrections_skipped_total{cluster="mx-prod",reason="lock_unavailable"} 1.0' in text
        assert PASSWORD not in text and PASSWORD not in resp.text
        audit = (tmp_path / "audit-r1.jsonl").read_text()
        assert "lock store unreachable" in audit and PASSWORD not in audit
    finally:
        frozen.signal(signal.SIGCONT)  # the module's other tests use this server


def test_quorum_gauge_follows_the_store_without_a_correction(replicas: Replicas) -> None:
    replicas.start("r1")
    wait_for(lambda: 'mxha_remediator_lock_quorum{cluster="mx-prod"} 1.0' in replicas.metrics("r1"), 5, "quorum 1")
    assert 'mxha_remediator_lock_servers_answering{cluster="mx-prod"} 3.0' in replicas.metrics("r1")
    status = requests.get(f"http://127.0.0.1:{replicas.ports['r1']}/status", headers=AUTH, timeout=5).json()
    assert status["replica"] == "r1"
    assert status["clusters"]["mx-prod"]["lock_store"] == {"quorum": True, "answering": 3, "servers": 3}
    assert PASSWORD not in json.dumps(status)


# -- a holder killed, a holder frozen -----------------------------------------------------------------
def _hold_during_slow_read(replicas: Replicas, lock_store: list[mariadb.MariaDB], rid: str) -> list[Any]:
    """Start a correction on ``rid`` whose reads of node2 take 1.5 s; return once it holds the lock
    (its re-read under the lock is then in flight). The answer lands in the returned list."""
    control(replicas.emulators["node2"], "fault", {"mode": "slow", "delay": 1.5, "methods": ["GET"]})
    answer: list[Any] = []

    def ask() -> None:
        try:
            answer.append(replicas.post(rid))
        except requests.RequestException as exc:  # the replica may be killed mid-request
            answer.append(exc)

    threading.Thread(target=ask, daemon=True).start()
    wait_for(lambda: any(lock_holder(s) is not None for s in lock_store), 10, f"{rid} holds the lock")
    time.sleep(0.3)  # its re-read is sent (and answered 1.2 s later, whatever then happens to it)
    return answer


def test_a_replica_killed_while_holding_the_lock_frees_it_at_once(
    replicas: Replicas, lock_store: list[mariadb.MariaDB]
) -> None:
    replicas.start()
    replicas.split_brain()
    _hold_during_slow_read(replicas, lock_store, "r1")
    replicas.procs["r1"].proc.kill()
    killed = time.monotonic()
    wait_for(lambda: all(lock_holder(s) is None for s in lock_store), 5, "the lock freed")
    freed = time.monotonic() - killed
    control(replicas.emulators["node2"], "fault", {"mode": "none"})
    resp = replicas.post("r2")
    print(f"lock freed {freed:.2f}s after SIGKILL (session timeout 2 s)")
    assert freed < 1.5, "a dead holder's connection ends with it: no waiting for the session timeout"
    assert resp.status_code == 200, resp.text
    assert re.match(r"held on [23]/3 ", clusters_of(resp)["lock"])
    assert len(replicas.patches("node2")) == 1 and replicas.passive("node2") and not replicas.passive("node1")


def test_a_frozen_holder_finds_out_before_it_acts_and_does_not_act(
    replicas: Replicas, lock_store: list[mariadb.MariaDB]
) -> None:
    replicas.start()
    replicas.split_brain()
    answer = _hold_during_slow_read(replicas, lock_store, "r1")
    pid = replicas.procs["r1"].proc.pid
    os.kill(pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        control(replicas.emulators["node2"], "fault", {"mode": "none"})
        resp = replicas.post("r2")  # waits until the server drops r1's idle lock sessions
        took_over = time.monotonic() - frozen
        assert resp.status_code == 200, resp.text
        assert re.match(r"held on [23]/3 ", clusters_of(resp)["lock"])
        assert replicas.passive("node2") and len(replicas.patches("node2")) == 1
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: bool(answer), 40, "r1's answer after it resumed")
    late = answer[0]
    print(f"r2 took the lock {took_over:.2f}s after r1 froze (session timeout 2 s); r1 answered {late.status_code}")
    assert late.status_code == 503, late.text
    result = clusters_of(late)
    assert result["lock"].startswith("lock lost: "), result
    assert [a["result"] for a in result["actions"]] == ["skipped"]
    assert len(replicas.patches("node2")) == 1, "the resumed replica wrote nothing"
    assert not replicas.passive("node1")
    assert 'reason="lock_lost"} 1.0' in replicas.metrics("r1")


# -- shared guardrails -------------------------------------------------------------------------------
def test_the_circuit_breaker_counts_the_peer_replicas_actions(make_replicas: Callable[..., Replicas]) -> None:
    r = make_replicas(circuit_max_actions=2)
    r.start()
    for rid in ("r1", "r2"):
        r.split_brain()
        assert r.post(rid).status_code == 200 and r.passive("node2")
    r.split_brain()
    resp = r.post("r1")  # its own 1 action + r2's 1 + this one's 1 > 2
    result = clusters_of(resp)
    assert result["guard"] == "circuit_open", result
    assert result["verdict"] == "circuit-open" and resp.status_code == 200
    assert len(r.patches("node2")) == 2 and not r.passive("node2")


def test_the_cooldown_counts_the_peer_replicas_actions(make_replicas: Callable[..., Replicas]) -> None:
    r = make_replicas(cooldown_seconds=60)
    r.start()
    r.split_brain()
    assert r.post("r1").status_code == 200 and r.passive("node2")
    r.split_brain()
    resp = r.post("r2")  # r2 never acted itself: only r1's action can hold it back
    assert resp.status_code == 503 and clusters_of(resp)["guard"] == "cooldown", resp.text
    assert len(r.patches("node2")) == 1
    doc = requests.get(f"http://127.0.0.1:{r.ports['r1']}/guardrails", headers=AUTH, timeout=5).json()
    assert doc["replica"] == "r1" and [a["node"] for a in doc["clusters"]["mx-prod"]["actions"]] == ["node2"]
    assert requests.get(f"http://127.0.0.1:{r.ports['r1']}/guardrails", timeout=5).status_code == 401


# -- configuration ------------------------------------------------------------------------------------
def _doc(**replicas: Any) -> dict[str, Any]:
    return {
        "auth": {"bearer_token": TOKEN},
        "replicas": replicas,
        "clusters": {
            "c": {
                "nodes": [
                    {"name": "a", "state_url": "http://127.0.0.1:1/state", "maxscale": {"url": "http://127.0.0.1:1"}}
                ]
            }
        },
    }


LOCK_SECRET = "pw-9f3e-never-shown"
LOCK_OK = {"servers": ["db1:3306", "db2", "[::1]:3307"], "user": "mxha_lock", "password": LOCK_SECRET}


@pytest.mark.parametrize(
    ("replicas", "key"),
    [
        ({"lock": {**LOCK_OK, "servers": ["db1:99999"]}}, "replicas.lock.servers[0]"),
        ({"lock": {**LOCK_OK, "servers": ["db1", "db1:3306"]}}, "replicas.lock.servers"),
        ({"lock": {**LOCK_OK, "servers": []}}, "replicas.lock.servers"),
        ({"lock": {k: v for k, v in LOCK_OK.items() if k != "user"}}, "replicas.lock.user"),
        ({"lock": {k: v for k, v in LOCK_OK.items() if k != "password"}}, "replicas.lock.password"),
        ({"lock": {**LOCK_OK, "session_timeout": 1}}, "replicas.lock.session_timeout"),
        ({"lock": {**LOCK_OK, "sesion_timeout": 7}}, "replicas.lock.sesion_timeout"),
        ({"lock": LOCK_OK, "peers": ["rem2:9844"]}, "replicas.peers[0]"),
        ({"peers": ["http://rem2:9844"]}, "replicas.lock.servers"),
    ],
)
def test_a_bad_replicas_section_stops_start_up_naming_the_key(replicas: dict[str, Any], key: str) -> None:
    from mxha.config import ConfigError
    from mxha.remediator.config import parse_remediator_config

    with pytest.raises(ConfigError) as err:
        parse_remediator_config(_doc(**replicas))
    assert str(err.value).startswith(key + ":"), str(err.value)
    assert LOCK_SECRET not in str(err.value)


def test_a_good_replicas_section_and_a_cluster_override() -> None:
    from mxha.config import ConfigError
    from mxha.remediator.config import parse_remediator_config

    cfg = parse_remediator_config(_doc(id="rem-a", lock=LOCK_OK, peers=["http://rem2:9844"]))
    assert cfg.replicas is not None and cfg.replicas.id == "rem-a"
    assert [str(s) for s in cfg.replicas.servers_for("c")] == ["db1:3306", "db2:3306", "[::1]:3307"]
    assert cfg.replicas.lock.majority == 2 and LOCK_SECRET not in repr(cfg.replicas)
    doc = _doc(lock=LOCK_OK)
    doc["clusters"]["c"]["lock_servers"] = ["db9:3306"]
    cfg = parse_remediator_config(doc)
    assert cfg.replicas is not None and [str(s) for s in cfg.replicas.servers_for("c")] == ["db9:3306"]
    doc = _doc()
    doc["clusters"]["c"]["lock_servers"] = ["db9:3306"]
    del doc["replicas"]
    with pytest.raises(ConfigError, match=r"^clusters\.c\.lock_servers: needs a replicas\.lock section"):
        parse_remediator_config(doc)


# -- views that differ ------------------------------------------------------------------------------
def test_a_replica_that_cannot_reach_a_node_does_not_promote_over_it_while_a_peer_reaches_it(
    replicas: Replicas,
) -> None:
    """r2 cannot reach node1 at all (as across a partition); r1 can. In a split brain where node1 is the
    rightful keeper and active, r2 alone would count node1 down after the grace and promote node2 next
    to it: two active. Asked before that promotion, r1 reads node1 and says it answers: no promotion."""
    replicas.blind = {"r2": {"node1"}}
    replicas.start()
    for n in ("node1", "node2"):
        replicas.states[n].set("MASTER", True, 150 if n == "node1" else 100)
    control(replicas.emulators["node2"], "maxscale", {"passive": True})
    assert replicas.post("r1").status_code == 200  # r1 sees node1 active and keeps it: nothing to do
    assert replicas.post("r2").status_code == 503  # r2: node1 silent, inside the grace (0.5 s)
    # r2 probes every second by itself; give it several probes past the grace
    wait_for(lambda: 'reason="peer_sees_node"} 0.0' not in replicas.metrics("r2"), 15, "r2 asked r1 first")
    time.sleep(3)
    assert replicas.patches("node2") == [] and replicas.passive("node2"), "no promotion over a node r1 reaches"
    assert not replicas.passive("node1")
    status = requests.get(f"http://127.0.0.1:{replicas.ports['r2']}/status", headers=AUTH, timeout=5).json()
    notes = " ".join(status["clusters"]["mx-prod"]["last_plan"]["notes"])
    assert "peer replica r1 got an answer from node1" in notes, status["clusters"]["mx-prod"]["last_plan"]
    bad = requests.get(f"http://127.0.0.1:{replicas.ports['r1']}/guardrails?observe=nope", headers=AUTH, timeout=5)
    assert bad.status_code == 400 and bad.json()["status"] == "error"


def test_a_peer_replicas_promotion_sent_without_an_answer_holds_back_another_promotion(
    make_replicas: Callable[..., Replicas],
) -> None:
    """r1 promotes node1 and gets no answer (the PATCH hangs): it may still land. VRRP then moves to
    node2; r2, asked to promote node2, reads r1's unsettled write and refuses until r1's watch ends."""
    r = make_replicas(unsettled_write_seconds=8)
    r.start()
    r.states["node1"].set("MASTER", True, 150)
    r.states["node2"].set("BACKUP", False, 100)
    for n in ("node1", "node2"):
        control(r.emulators[n], "maxscale", {"passive": True})
    control(r.emulators["node1"], "fault", {"mode": "hang", "methods": ["PATCH"]})
    first = clusters_of(r.post("r1"))  # node1's read_timeout (5 s) ends the PATCH with no answer
    assert [(a["node"], a["action"], a.get("outcome")) for a in first["actions"]] == [("node1", "promote", "unknown")]
    control(r.emulators["node1"], "fault", {"mode": "none"})  # the hung PATCH is dropped: it never lands
    r.states["node1"].set("BACKUP", False, 150)
    r.states["node2"].set("MASTER", True, 100)
    held = r.post("r2")
    result = clusters_of(held)
    assert held.status_code == 503 and result["guard"] == "unsettled_write", result
    status = requests.get(f"http://127.0.0.1:{r.ports['r2']}/status", headers=AUTH, timeout=5).json()
    notes = " ".join(status["clusters"]["mx-prod"]["last_plan"]["notes"])
    assert "a promotion of node1 sent by peer replica r1 got no answer" in notes, notes
    assert r.patches("node2") == [] and r.passive("node1") and r.passive("node2")
    # once r1's watch ends with nothing landed, node2 is promoted (by r1's own probe or r2's next delivery)
    wait_for(lambda: r.post("r2").status_code == 200 and not r.passive("node2"), 20, "node2 promoted after the watch")
    assert r.passive("node1")

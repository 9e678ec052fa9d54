"""The remediator's database-view rules over real HTTP: emulated MaxScales in pair mode (one shared,
simulated set of database servers and cooperative locks, as recorded from two real MaxScales),
each node's ``/state`` served by the exporter's own code, real Alertmanager payloads.

Time runs at ``SCALE`` of the recording: a monitor tick is 0.05 s, MaxScale's one-minute no-relock
back-off 3 s; the remediator is told the same back-off (``relock_backoff_seconds``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import control
from helpers import StateServer
from test_emulator_pair import SCALE, TICK, Pair
from test_remediator import AUTH, TOKEN, payload

from mxha.lab.emulator import Emulator
from mxha.lab.waiting import wait_for
from mxha.remediator.app import create_app
from mxha.remediator.config import parse_remediator_config
from mxha.remediator.engine import Reconciler

BACKOFF = 60 * SCALE


class LockCluster:
    """node1 (priority 150) and node2 (100): their MaxScales are members A and B of one pair."""

    def __init__(self, make: Callable[..., Emulator], tmp_path: Path, mode: str) -> None:
        self.pair = Pair(make, tmp_path / "backend.json")
        self.mode = mode
        self.states = {"node1": StateServer("node1"), "node2": StateServer("node2")}
        for s in self.states.values():
            s.mode = mode
        self.states["node1"].priority = 150
        self.audit = tmp_path / "audit.jsonl"
        self.reconciler: Reconciler | None = None

    def start(self, first: str = "node2") -> None:
        """MaxScales started one after the other: ``first`` takes every lock."""
        other = "node1" if first == "node2" else "node2"
        self.pair.start(first)
        time.sleep(3 * TICK)
        self.pair.start(other)
        wait_for(lambda: self.holder() == first, 2, f"{first} holds the locks")

    def emu(self, node: str) -> Emulator:
        return self.pair.nodes[node]

    def holder(self) -> str | None:
        held = [n for n in self.pair.nodes if self.pair.monitor(n)[0] is True]
        return held[0] if len(held) == 1 else None

    def client(self, **policy: Any) -> Any:
        doc = {
            "auth": {"bearer_token": TOKEN},
            "audit_log": str(self.audit),
            "policy": {
                "cooldown_seconds": 0,
                "recheck_seconds": 0,
                "relock_backoff_seconds": BACKOFF,
                "lock_handover_seconds": 20 * TICK,
                **policy,
            },
            "clusters": {
                "mx-prod": {
                    "mode": self.mode,
                    "nodes": [
                        {
                            "name": n,
                            "state_url": self.states[n].url,
                            "maxscale": {"url": self.emu(n).url, "password": "mariadb", "read_timeout": 1.0},
                        }
                        for n in ("node1", "node2")
                    ],
                }
            },
        }
        cfg = parse_remediator_config(json.loads(json.dumps(doc)))
        self.reconciler = Reconciler(cfg)
        return create_app(cfg, self.reconciler).test_client()

    def vip_on(self, node: str) -> None:
        for name, st in self.states.items():
            st.set("MASTER" if name == node else "BACKUP", name == node)

    def calls(self, node: str) -> list[tuple[str, str]]:
        return [
            (r["method"], r["path"])
            for r in control(self.emu(node), "requests")["requests"]
            if r["method"] in ("PATCH", "POST") and not r["path"].startswith("/__emulator__")
        ]

    def close(self) -> None:
        if self.reconciler is not None:
            self.reconciler.close()
        for s in self.states.values():
            s.close()


@pytest.fixture
def locks(make_emulator: Callable[..., Emulator], tmp_path: Path) -> Iterator[LockCluster]:
    c = LockCluster(make_emulator, tmp_path, "locks")
    yield c
    c.close()


def post(client: Any, body: Any = None) -> Any:
    resp = client.post(
        "/webhook",
        data=json.dumps(body or payload("MaxScaleLockPrimaryNotVIPHolder")),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    return resp


def result_of(resp: Any) -> dict[str, Any]:
    return dict(resp.json["clusters"]["mx-prod"])


# -- locks mode -------------------------------------------------------------------------------------
def test_locks_follow_the_vip_holder_by_release_on_the_other_node(locks: LockCluster) -> None:
    locks.start(first="node2")
    locks.vip_on("node1")
    client = locks.client()
    resp = post(client)
    result = result_of(resp)
    assert resp.status_code == 200, result
    assert result["verdict"] == "corrected" and result["keep"] == "node1", result
    [action] = result["actions"]
    assert (action["node"], action["action"], action["result"]) == ("node2", "release_locks", "success"), action
    assert "node1 took the locks" in action["reason"]
    print("handover:", action["reason"])
    assert locks.holder() == "node1"
    # every MaxScale stays active in locks mode: no mode change anywhere, one release on node2 only
    assert locks.calls("node1") == []
    assert locks.calls("node2") == [("POST", "/v1/maxscale/modules/mariadbmon/release-locks?MariaDB-Monitor")]
    assert control(locks.emu("node2"), "state")["passive"] is False
    # nothing left to do: the next delivery says ok and acts on nothing
    again = result_of(post(client))
    assert again["verdict"] == "ok" and again["actions"] == [], again
    assert locks.reconciler is not None
    status = locks.reconciler.status().clusters["mx-prod"]
    assert status.mode == "locks" and "node2" in status.relock_backoff
    audit = [json.loads(line) for line in locks.audit.read_text().splitlines()]
    assert any(r["results"] and r["results"][0]["action"] == "release_locks" for r in audit)


def test_never_releases_on_the_vip_holder(locks: LockCluster) -> None:
    locks.start(first="node2")
    locks.vip_on("node2")
    result = result_of(post(locks.client()))
    assert result["verdict"] == "ok" and result["keep"] == "node2" and result["actions"] == [], result
    assert locks.calls("node1") == [] and locks.calls("node2") == []
    assert locks.holder() == "node2"


def test_no_release_when_the_vip_holder_cannot_reach_a_majority(locks: LockCluster) -> None:
    locks.start(first="node2")
    control(locks.emu("node1"), "reach", {"unreachable": ["server2", "server3"]})
    wait_for(lambda: locks.pair.servers("node1")["server2"] == "Down", 2, "node1 sees server2 Down")
    locks.vip_on("node1")
    resp = post(locks.client())
    result = result_of(resp)
    assert result["actions"] == [] and result["verdict"] == "waiting", result
    assert "does not see a majority" in result["reason"]
    assert resp.status_code == 503  # Alertmanager retries: it may be able to later
    assert locks.calls("node2") == [] and locks.holder() == "node2"


def test_the_back_off_of_a_release_is_remembered_and_blocks_a_second_move(locks: LockCluster) -> None:
    """node2 releases to node1; the VIP goes back to node2 at once. Releasing node1 now would leave
    nobody able to lock (node2 may not relock inside its back-off): the remediator waits it out."""
    locks.start(first="node2")
    locks.vip_on("node1")
    client = locks.client()
    assert result_of(post(client))["actions"][0]["result"] == "success"
    locks.vip_on("node2")
    blocked = result_of(post(client))
    assert blocked["actions"] == [] and "back-off" in blocked["reason"], blocked
    assert locks.holder() == "node1"
    time.sleep(BACKOFF + 4 * TICK)
    moved = result_of(post(client))
    assert [(a["node"], a["result"]) for a in moved["actions"]] == [("node1", "success")], moved
    assert locks.holder() == "node2"


def test_a_release_made_by_the_hook_counts_for_the_back_off_too(locks: LockCluster) -> None:
    locks.start(first="node2")
    locks.states["node1"].locks_released_at = time.time()  # node1's notify released 0 s ago
    locks.vip_on("node1")
    result = result_of(post(locks.client()))
    assert result["actions"] == [] and "node1 is inside its no-relock back-off" in result["reason"], result
    assert locks.calls("node2") == []


def test_a_back_off_nobody_told_us_of_ends_in_a_failed_handover_said_as_such(locks: LockCluster) -> None:
    """The limit of the back-off memory: an operator's own ``release-locks`` on node1 (which holds
    none: MaxScale still starts the one-minute back-off) is invisible over REST. The remediator then
    releases node2's locks and nobody can take them; it says so (a failure, 503: try again) instead
    of calling the move done."""
    locks.start(first="node2")
    locks.vip_on("node1")
    manual = requests.post(
        f"{locks.emu('node1').url}/v1/maxscale/modules/mariadbmon/release-locks?MariaDB-Monitor",
        auth=("admin", "mariadb"),
        timeout=5,
    )
    assert manual.status_code == 400 and "Did not release any locks" in manual.text
    resp = post(locks.client(lock_handover_seconds=0.3))
    result = result_of(resp)
    [action] = result["actions"]
    assert action["result"] == "failure" and "had not taken the locks" in action["reason"], action
    assert resp.status_code == 503
    assert locks.holder() is None


# -- contradictions: report, never act ------------------------------------------------------------
@pytest.mark.parametrize("contradiction", ["passive_maxscale", "locks_off", "node_config"])
def test_a_setup_that_contradicts_locks_mode_is_refused_and_reported(locks: LockCluster, contradiction: str) -> None:
    locks.start(first="node2")
    locks.vip_on("node1")
    if contradiction == "passive_maxscale":
        control(locks.emu("node2"), "maxscale", {"passive": True})
        said = "node2's MaxScale is passive"
    elif contradiction == "locks_off":
        control(locks.emu("node1"), "monitor", {"cooperative_monitoring_locks": "none"})
        said = "node1's MaxScale has cooperative_monitoring_locks off"
    else:
        locks.states["node2"].mode = "passive"
        said = "node2's node config says mode: passive"
    client = locks.client()
    result = result_of(post(client))
    assert result["verdict"] == "refused" and said in result["reason"] and result["actions"] == [], result
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'mxha_remediator_cluster_refused{cluster="mx-prod",reason="mode"} 1.0' in metrics
    status = client.get("/status", headers=AUTH).json["clusters"]["mx-prod"]
    assert status["refused"] == "mode" and said in status["last_plan"]["reason"]
    assert locks.calls("node1") == [] and locks.calls("node2") == []


def test_a_cluster_mode_is_checked_at_start_up() -> None:
    from mxha.config import ConfigError

    doc = {
        "allow_no_auth": True,
        "clusters": {
            "c": {
                "mode": "cooperative",
                "nodes": [{"name": "n", "state_url": "http://h:1/state", "maxscale": {"url": "http://h:8989"}}],
            }
        },
    }
    with pytest.raises(ConfigError, match=r"^clusters\.c\.mode: must be one of passive, locks$"):
        parse_remediator_config(doc)


# -- passive mode with locks on (the seed tutorial's mixed setup) ------------------------------------
@pytest.fixture
def mixed(make_emulator: Callable[..., Emulator], tmp_path: Path) -> Iterator[LockCluster]:
    c = LockCluster(make_emulator, tmp_path, "passive")
    yield c
    c.close()


def test_passive_mode_releases_a_passive_lock_holder_so_the_active_keeper_can_fail_over(mixed: LockCluster) -> None:
    """The trap: the passive MaxScale keeps the locks (recorded), so the active one shows no primary
    and the one holding the locks cannot fail over."""
    mixed.start(first="node2")
    control(mixed.emu("node2"), "maxscale", {"passive": True})
    mixed.vip_on("node1")
    result = result_of(post(mixed.client(), payload("MaxScalePassiveHoldsLocks")))
    assert result["verdict"] == "corrected" and result["keep"] == "node1", result
    assert [(a["node"], a["action"], a["result"]) for a in result["actions"]] == [
        ("node2", "release_locks", "success")
    ], result
    assert mixed.holder() == "node1"
    assert control(mixed.emu("node1"), "state")["passive"] is False
    assert control(mixed.emu("node2"), "state")["passive"] is True


def test_demoting_a_node_that_holds_no_locks_releases_nothing(mixed: LockCluster) -> None:
    """release-locks on a MaxScale that holds none still starts its one-minute back-off (MaxScale's
    source): a demotion must not call it then."""
    mixed.start(first="node1")
    mixed.states["node1"].set("MASTER", True, 150)
    mixed.states["node2"].set("MASTER", True, 100)
    result = result_of(post(mixed.client()))
    assert [(a["node"], a["action"]) for a in result["actions"]] == [("node2", "demote")], result
    assert mixed.calls("node2") == [("PATCH", "/v1/maxscale")]
    assert mixed.holder() == "node1"


def test_demoting_the_lock_holder_hands_its_locks_to_the_keeper(mixed: LockCluster) -> None:
    mixed.start(first="node2")
    mixed.states["node1"].set("MASTER", True, 150)
    mixed.states["node2"].set("MASTER", True, 100)
    result = result_of(post(mixed.client()))
    assert [(a["node"], a["action"], a["result"]) for a in result["actions"]] == [("node2", "demote", "success")]
    wait_for(lambda: mixed.holder() == "node1", 20 * TICK, "node1 takes the locks node2 released")
    recent = mixed.reconciler.status().clusters["mx-prod"].recent_actions if mixed.reconciler else []
    assert [(a["node"], a["action"], a["result"]) for a in recent][-2:] == [
        ("node2", "demote", "success"),
        ("node2", "release_locks", "success"),
    ]


def test_among_two_masters_the_one_that_sees_the_primary_is_kept(mixed: LockCluster) -> None:
    """Split brain, and node1 (the higher priority) is cut off from server1, the primary both name:
    keeping node1 active would let it fail a healthy primary over. node2 is kept instead."""
    mixed.start(first="node2")
    control(mixed.emu("node1"), "reach", {"unreachable": ["server1"]})
    wait_for(lambda: mixed.pair.servers("node1")["server1"] == "Down", 2, "node1 sees server1 Down")
    mixed.states["node1"].set("MASTER", True, 150)
    mixed.states["node2"].set("MASTER", True, 100)
    result = result_of(post(mixed.client()))
    assert result["keep"] == "node2", result
    assert [(a["node"], a["action"]) for a in result["actions"]] == [("node1", "demote")], result
    assert control(mixed.emu("node2"), "state")["passive"] is False
    assert control(mixed.emu("node1"), "state")["passive"] is True

"""Peer-aware, level-triggered ``mxha notify`` (the installed console script), over real HTTP.

This node's MaxScale is an emulator; each peer is a ``/state`` server built from the exporter's own
model (``StateServer``), optionally with its own emulator as its MaxScale. The live VRRP level is
the kernel's: ``keepalived.vips`` lists ``127.0.0.1`` (always on this host: "this node holds the
VIP") or ``198.51.100.250`` (on no interface here: "it does not"). Outcomes are asserted (who ends
active, what was recorded), never timings.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import control
from helpers import StateServer, write_node_config
from hypothesis import event, given
from hypothesis import strategies as st
from reaching import SAFETY, must_reach, reached

from mxha.config import load_node_config
from mxha.lab.emulator import Emulator
from mxha.lab.node import installed_mxha
from mxha.node_observation import unknown
from mxha.policy import GO_ACTIVE, OK, UNKNOWN, WAIT, YIELD, NodeObservation, decide_for_hook

HERE = "127.0.0.1"
ELSEWHERE = "198.51.100.250"


def notify(cfg: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_mxha(), "notify", "--config.file", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def record(cfg: Path) -> dict[str, Any]:
    return json.loads((cfg.parent / "notify-state.json").read_text())


def node_cfg(tmp_path: Path, emulator: Emulator, peers: list[dict[str, Any]], vip: str = HERE, **notify: Any) -> Path:
    return write_node_config(
        tmp_path / "n.yml",
        emulator.url,
        node="node2",
        keepalived={"governing_instance": "VI_1", "vips": [vip]},
        notify={"timeout": 4.0, "peer_budget": 1.0, **notify},
        peers=peers,
    )


@pytest.fixture
def peer() -> Iterator[StateServer]:
    server = StateServer("node1")
    server.set("MASTER", True, 150)  # the better keeper, by default
    yield server
    server.close()


def passive(emulator: Emulator) -> bool:
    return bool(control(emulator, "state")["passive"])


# -- the policy's answer (pure) -------------------------------------------------------------
def obs(name: str, prio: int | None, *, vrrp: str | None = "MASTER", vip: bool = True, check: bool = True,
        ms: str = OK, passive: bool | None = False, identity: bool = True) -> NodeObservation:  # fmt: skip
    return NodeObservation(name, vrrp, prio, vip, check, maxscale=ms, passive=passive if ms == OK else None,
                           identity_ok=identity)  # fmt: skip


ME = obs("me", 100, passive=True)

peer_obs = st.builds(
    obs,
    st.sampled_from(["p2", "p3"]),  # p1 is the situation's peer
    st.one_of(st.none(), st.integers(1, 254)),
    vrrp=st.sampled_from(["MASTER", "BACKUP", "FAULT", None]),
    vip=st.booleans(),
    check=st.booleans(),
    ms=st.sampled_from([OK, UNKNOWN, "no_answer"]),
    passive=st.one_of(st.none(), st.booleans()),
    identity=st.booleans(),
)
# the peers a notify meets, as situations: a better keeper already active (it came back first), a
# better one still passive (both became MASTER at once), a worse or equal one still active, one that
# cannot be read usefully, one whose /state names another node; plus any peer at all
PEER_SITUATIONS = {
    "better keeper, active": obs("p1", 150),
    "better keeper, passive": obs("p1", 150, passive=True),
    "worse peer, active": obs("p1", 50, vrrp="BACKUP", vip=False),
    "tied peer, active": obs("p1", 100),
    "unreadable peer": obs("p1", 150, ms="no_answer"),
    "stranger": obs("p1", 150, identity=False),
}


# the yield is the case to reach: the better active keeper weighs three times
PEER_KIND = st.sampled_from([*PEER_SITUATIONS, "better keeper, active", "better keeper, active", "arbitrary"])
OTHER_PEERS = st.lists(peer_obs, max_size=2, unique_by=lambda o: o.name)


@st.composite
def peer_sets(draw: st.DrawFn) -> list[NodeObservation]:
    kind = draw(PEER_KIND)
    event(f"situation: {kind}")
    others = draw(OTHER_PEERS)
    if kind == "arbitrary":
        return others
    return [PEER_SITUATIONS[kind], *others]


@must_reach()
@SAFETY
@given(peer_sets())
def test_yields_only_to_a_verified_better_active_keeper(peers: list[NodeObservation]) -> None:
    d = decide_for_hook(ME, peers)
    event(f"decision: {d.action}")
    if reached(d.action == YIELD, "a yield"):
        p = next(p for p in peers if p.name == d.peer)
        assert p.identity_ok and p.maxscale == OK and p.passive is False
        assert p.vrrp_state == "MASTER" and p.holds_vip and p.check_ok
        assert p.priority is not None and p.priority > (ME.priority or 0)
    if d.action == WAIT:  # only on a peer whose mode was read
        p = next(p for p in peers if p.name == d.peer)
        assert p.identity_ok and p.maxscale == OK
    if not any(p.identity_ok and p.maxscale == OK for p in peers):
        assert d.action == GO_ACTIVE  # a dead, broken or unreadable peer never blocks the takeover


def test_policy_cases() -> None:
    assert decide_for_hook(ME, [obs("p", 150)]).action == YIELD
    assert decide_for_hook(ME, [obs("p", 150, ms=UNKNOWN)]).action == GO_ACTIVE
    assert decide_for_hook(ME, [obs("p", 150, identity=False)]).action == GO_ACTIVE
    assert decide_for_hook(ME, [obs("p", 100)]).action == WAIT  # a tie: not verified better
    assert decide_for_hook(ME, [obs("p", 50)]).action == WAIT  # worse but active: let it step down
    assert decide_for_hook(ME, [obs("p", 150, passive=True)]).action == WAIT  # its own notify is coming
    assert decide_for_hook(ME, [obs("p", 150, vrrp="BACKUP")]).action == WAIT
    assert decide_for_hook(ME, [obs("p", 150, check=False, passive=True)]).action == GO_ACTIVE
    assert decide_for_hook(ME, []).action == GO_ACTIVE


# -- the hook, for real ---------------------------------------------------------------------
def test_yields_to_the_better_active_peer_and_records_it(make_emulator: Any, tmp_path: Path, peer: StateServer) -> None:
    emulator = make_emulator(passive=False)  # e.g. it came back active after a restart
    cfg = node_cfg(tmp_path, emulator, [{"name": "node1", "state_url": peer.url}])
    proc = notify(cfg, "INSTANCE", "VI_1", "MASTER", "100")
    assert proc.returncode == 0, proc.stderr
    assert passive(emulator) is True
    doc = record(cfg)
    assert doc["yielded_to"] == "node1" and doc["desired_passive"] is True
    assert doc["history"][-1]["result"].startswith("passive=true set; VIP 127.0.0.1 on this host; yielded to node1")


@pytest.mark.parametrize(
    "fault,why",
    [
        ("refuse", "/state unreadable (no_answer)"),
        ("error", "/state unreadable (http)"),
        ("hang", "/state unreadable (no_answer)"),
        ("drip", "/state unreadable (document)"),  # bytes came, the deadline cut them off
        ("garbage", "/state unreadable (document)"),
        ("maxscale_error", "its MaxScale: auth (per its exporter)"),
        ("stranger", "ignored: its /state names 'node9'"),
    ],
)
def test_anything_less_than_verified_goes_active(
    make_emulator: Any, tmp_path: Path, peer: StateServer, fault: str, why: str
) -> None:
    emulator = make_emulator(passive=True)
    if fault == "refuse":
        peer.refuse()
    elif fault == "maxscale_error":
        peer.maxscale_up, peer.maxscale_error_kind = False, "auth"
    elif fault == "stranger":
        peer.claims = "node9"
    else:
        peer.set_fault(fault)
    cfg = node_cfg(tmp_path, emulator, [{"name": "node1", "state_url": peer.url}])
    started = time.monotonic()
    proc = notify(cfg, "INSTANCE", "VI_1", "MASTER", "100")
    # a bound, not a timing: the hook ends within notify.timeout (4 s here) whatever the peer does
    assert time.monotonic() - started < 4.0 + 2.0
    assert proc.returncode == 0, proc.stderr
    assert passive(emulator) is False
    doc = record(cfg)
    assert doc["yielded_to"] is None
    assert "going active: no peer is verified active" in doc["history"][-1]["result"]
    assert f"node1: {why}" in doc["history"][-1]["result"]


def test_a_worse_active_peer_is_given_the_budget_then_this_node_goes_active(
    make_emulator: Any, tmp_path: Path, peer: StateServer
) -> None:
    peer.set("MASTER", True, 50)
    emulator = make_emulator(passive=True)
    # a budget a loaded machine (make test's parallel workers) still answers a loopback peer within
    cfg = node_cfg(tmp_path, emulator, [{"name": "node1", "state_url": peer.url}], peer_budget=2.0)
    proc = notify(cfg, "INSTANCE", "VI_1", "MASTER", "100")
    assert proc.returncode == 0
    assert passive(emulator) is False and record(cfg)["yielded_to"] is None
    result = record(cfg)["history"][-1]["result"]
    assert "going active after the peer budget: node1 is active (this node is the keeper)" in result
    assert peer.passive is False  # the hook never touches another node


def test_no_look_starts_with_a_sliver_of_the_budget(
    make_emulator: Any, tmp_path: Path, peer: StateServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loaded machine oversleeps the pause between two looks. The look after it must still have
    time to be answered: one started with 0.03 s left timed out, and its "unreadable" replaced the
    active peer every earlier look had seen (CI recorded "no peer is verified active [...; 20 looks]").
    The peer's document is read over real HTTP once; the clock and the later looks are the test's."""
    import mxha.notify as hook
    import mxha.peers as peers

    peer.set("MASTER", True, 50)  # worse and active: the notify waits for it until the budget ends
    cfg = load_node_config(
        str(node_cfg(tmp_path, make_emulator(passive=True), [{"name": "node1", "state_url": peer.url}]))
    )
    seen = peers.read_peers(cfg.peers, time.monotonic() + 5)
    assert seen[0].problem is None and seen[0].observation.maxscale == OK
    clock = [0.0]

    def look(_: Any, end: float) -> list[peers.PeerReading]:
        # a look needs 0.05 s to be answered here
        return (
            seen if end - clock[0] >= 0.05 else [peers.PeerReading(unknown("node1"), "/state unreadable (no_answer)")]
        )

    def oversleep(seconds: float) -> None:
        clock[0] += seconds * 1.5

    monkeypatch.setattr(peers, "read_peers", look)
    monkeypatch.setattr(hook, "time", SimpleNamespace(monotonic=lambda: clock[0], sleep=oversleep))
    # looks at 0, 0.15, ... 0.75; without the rule a look at 0.90 had 0.03 s of the 0.93 s budget
    cfg = replace(cfg, notify=replace(cfg.notify, peer_budget=0.93))
    yielded, why = hook.consult_peers(cfg, 100, deadline=10.0, newer_call=lambda: False)
    assert yielded is None
    assert why.startswith("going active after the peer budget: node1 is active"), why


def test_a_worse_peer_stepping_down_during_the_wait_ends_the_wait(
    make_emulator: Any, tmp_path: Path, peer: StateServer
) -> None:
    peer.set("MASTER", True, 50)
    emulator = make_emulator(passive=True)
    cfg = node_cfg(tmp_path, emulator, [{"name": "node1", "state_url": peer.url}], peer_budget=5.0, timeout=10.0)

    def step_down() -> None:
        time.sleep(0.8)
        peer.set("BACKUP", False, 50)
        peer.passive = True

    threading.Thread(target=step_down, daemon=True).start()
    proc = notify(cfg, "INSTANCE", "VI_1", "MASTER", "100")
    assert proc.returncode == 0
    assert passive(emulator) is False
    result = record(cfg)["history"][-1]["result"]
    assert "going active: no peer is verified active" in result and "BACKUP prio 50 no VIP" in result


def test_both_master_at_once_the_worse_waits_for_the_better_to_go_active(
    make_emulator: Any, tmp_path: Path, peer: StateServer
) -> None:
    peer.passive = True  # the better keeper's own notify has not run yet
    emulator = make_emulator(passive=True)
    cfg = node_cfg(tmp_path, emulator, [{"name": "node1", "state_url": peer.url}], peer_budget=5.0, timeout=10.0)

    def its_notify_runs() -> None:
        time.sleep(0.8)
        peer.passive = False

    threading.Thread(target=its_notify_runs, daemon=True).start()
    assert notify(cfg, "INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    assert passive(emulator) is True and record(cfg)["yielded_to"] == "node1"


def test_the_peers_own_maxscale_wins_over_its_exporter(make_emulator: Any, tmp_path: Path, peer: StateServer) -> None:
    mine = make_emulator(passive=True)
    theirs = make_emulator(passive=True)  # its exporter says active; its MaxScale says passive
    peers = [
        {
            "name": "node1",
            "state_url": peer.url,
            "maxscale": {"url": theirs.url, "user": "admin", "password_env": "MXHA_TEST_PEER_PW"},
        }
    ]
    cfg = node_cfg(tmp_path, mine, peers, peer_budget=2.0)
    import os

    os.environ["MXHA_TEST_PEER_PW"] = "mariadb"
    try:
        assert notify(cfg, "INSTANCE", "VI_1", "MASTER", "100").returncode == 0
        assert passive(mine) is False  # not verified active: it waited its budget and went active
        control(theirs, "fault", {"mode": "reject_auth"})
        control(theirs, "maxscale", {"passive": False})
        assert notify(cfg, "INSTANCE", "VI_1", "MASTER", "100").returncode == 0
        assert passive(mine) is False and "node1: its MaxScale: auth" in record(cfg)["history"][-1]["result"]
        control(theirs, "fault", {"mode": "none"})
        assert notify(cfg, "INSTANCE", "VI_1", "MASTER", "100").returncode == 0
        assert passive(mine) is True and record(cfg)["yielded_to"] == "node1"
        assert "mariadb" not in (cfg.parent / "notify-state.json").read_text()
    finally:
        del os.environ["MXHA_TEST_PEER_PW"]


def test_going_passive_never_asks_the_peers(make_emulator: Any, tmp_path: Path, peer: StateServer) -> None:
    emulator = make_emulator(passive=False)
    peer.set_fault("hang")
    cfg = node_cfg(tmp_path, emulator, [{"name": "node1", "state_url": peer.url}], vip=ELSEWHERE)
    assert notify(cfg, "INSTANCE", "VI_1", "BACKUP", "100").returncode == 0
    assert passive(emulator) is True and peer.requests == 0


def test_live_state_wins_over_the_event(make_emulator: Any, tmp_path: Path) -> None:
    """A MASTER call that runs after the VIP left (a newer BACKUP is on its way) sets passive; a
    BACKUP call that runs once the VIP is back sets active: the order of the calls does not matter."""
    emulator = make_emulator(passive=True)
    cfg = node_cfg(tmp_path, emulator, [], vip=ELSEWHERE)
    assert notify(cfg, "INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    assert passive(emulator) is True
    assert "the event said MASTER: live state wins" in record(cfg)["history"][-1]["result"]
    cfg = node_cfg(tmp_path, emulator, [], vip=HERE)
    assert notify(cfg, "INSTANCE", "VI_1", "BACKUP", "100").returncode == 0
    assert passive(emulator) is False


def test_without_vips_the_event_decides_and_a_recheck_does_nothing(make_emulator: Any, tmp_path: Path) -> None:
    emulator = make_emulator(passive=True)
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    assert notify(cfg, "INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    assert passive(emulator) is False
    assert "no keepalived.vips configured: acting on the event" in record(cfg)["history"][-1]["result"]
    assert notify(cfg).returncode == 0
    assert passive(emulator) is False
    assert (
        record(cfg)["history"][-1]["result"] == "nothing done: a recheck needs live state (keepalived.vips is not set)"
    )


def test_recheck_ends_a_yield_once_the_peer_steps_down(make_emulator: Any, tmp_path: Path, peer: StateServer) -> None:
    """keepalived runs no notify on a node that stays MASTER: the recheck (no arguments, as
    notify_master_rx_lower_pri and mxha check's follow-up run it) ends the yield."""
    emulator = make_emulator(passive=True)
    cfg = node_cfg(tmp_path, emulator, [{"name": "node1", "state_url": peer.url}])
    assert notify(cfg, "INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    assert record(cfg)["yielded_to"] == "node1"
    history = len(record(cfg)["history"])
    assert notify(cfg).returncode == 0  # nothing changed: no history line, but rechecked_at
    assert len(record(cfg)["history"]) == history and record(cfg)["rechecked_at"] is not None
    assert passive(emulator) is True
    peer.set("FAULT", False, 150)
    peer.passive = True
    assert notify(cfg).returncode == 0
    assert passive(emulator) is False
    doc = record(cfg)
    assert doc["yielded_to"] is None and doc["history"][-1]["state"] == "RECHECK"


def test_the_check_follows_up_a_yield_by_itself(make_emulator: Any, tmp_path: Path, peer: StateServer) -> None:
    """The periodic look: each `mxha check` while yielded starts a recheck in the background."""
    emulator = make_emulator(passive=True)
    cfg = node_cfg(tmp_path, emulator, [{"name": "node1", "state_url": peer.url}])
    assert notify(cfg, "INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    assert record(cfg)["yielded_to"] == "node1"
    peer.refuse()  # the better peer died (no notify will ever run here: this node stays MASTER)
    check = subprocess.run(
        [installed_mxha(), "check", "--config.file", str(cfg), "--follow-up"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert check.returncode == 0, check.stdout
    from mxha.lab.waiting import wait_for

    wait_for(lambda: not passive(emulator), 15, "the recheck started by mxha check made this node active")
    wait_for(lambda: record(cfg)["yielded_to"] is None, 5, "the yield recorded as over")


def test_a_newer_call_is_not_starved_by_one_retrying_against_a_hung_maxscale(
    make_emulator: Any, tmp_path: Path
) -> None:
    emulator = make_emulator(passive=True)
    cfg = write_node_config(tmp_path / "n.yml", emulator.url, notify={"timeout": 4.0}, maxscale={"read_timeout": 0.8})
    control(emulator, "fault", {"mode": "hang", "duration": 2.0})
    results: dict[str, int] = {}

    def run(state: str) -> None:
        results[state] = notify(cfg, "INSTANCE", "VI_1", state).returncode

    older = threading.Thread(target=run, args=("MASTER",))
    older.start()
    time.sleep(0.4)
    newer = threading.Thread(target=run, args=("BACKUP",))
    newer.start()
    older.join()
    newer.join()
    assert results["BACKUP"] == 0
    assert passive(emulator) is True
    by_state = {h["state"]: h for h in record(cfg)["history"]}
    assert "handed over to a newer call" in by_state["MASTER"]["result"]
    assert by_state["BACKUP"]["ok"] is True


def test_peers_config_errors_name_the_key(tmp_path: Path) -> None:
    from mxha.config import ConfigError, parse_node_config

    cases = [
        ({"peers": {"name": "x"}}, "peers: must be a list"),
        ({"peers": [{"state_url": "http://h/state"}]}, "peers[0].name: required"),
        ({"peers": [{"name": "node2", "state_url": "http://h/state"}]}, "peers[0].name: 'node2' is this node"),
        ({"peers": [{"name": "a", "state_url": "ftp://h"}]}, "peers[0].state_url"),
        ({"peers": [{"name": "a", "state_url": "http://h/state", "maxscale": {}}]}, "peers[0].maxscale.url: required"),
        ({"peers": [{"name": "a", "state_url": "http://h/s", "color": 1}]}, "peers[0].color: unknown key"),
        ({"notify": {"peer_budget": 0}}, "notify.peer_budget"),
    ]
    for doc, message in cases:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_node_config({"node": "node2", **doc})


def test_notify_with_peers_imports_nothing_heavy(make_emulator: Any, tmp_path: Path, peer: StateServer) -> None:
    import sys

    cfg = node_cfg(tmp_path, make_emulator(), [{"name": "node1", "state_url": peer.url}])
    probe = (
        f"import sys; from mxha.cli import main; rc = main(['notify', '--config.file', {str(cfg)!r}, 'INSTANCE', "
        "'VI_1', 'MASTER', '100']); heavy = [m for m in ('requests', 'flask', 'prometheus_client', 'waitress', "
        "'urllib3', 'hypothesis') if m in sys.modules]; print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"
    assert record(cfg)["yielded_to"] == "node1"


def run_check(cfg: Path) -> subprocess.CompletedProcess[str]:
    """The check as keepalived's vrrp_script line runs it: with its follow-up."""
    return subprocess.run(
        [installed_mxha(), "check", "--config.file", str(cfg), "--follow-up"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


@pytest.mark.parametrize(
    "vip,start_passive,end_passive,why",
    [
        (ELSEWHERE, False, True, "MaxScale passive=false but the VIP is elsewhere"),  # restarted active on the backup
        (HERE, True, False, "MaxScale passive=true but the VIP is here"),  # a notify lost while MaxScale was down
    ],
)
def test_the_check_brings_a_maxscale_in_line_with_live_state(
    make_emulator: Any, tmp_path: Path, vip: str, start_passive: bool, end_passive: bool, why: str
) -> None:
    from mxha.lab.waiting import wait_for

    emulator = make_emulator(passive=start_passive)
    cfg = node_cfg(tmp_path, emulator, [], vip=vip)
    check = run_check(cfg)
    assert check.returncode == 0 and f"(recheck started: {why})" in check.stdout, check.stdout
    wait_for(lambda: passive(emulator) is end_passive, 15, "the recheck set the mode live state asks for")
    wait_for(lambda: record(cfg)["history"][-1]["state"] == "RECHECK", 5, "the recheck recorded")


def test_the_check_leaves_a_maxscale_in_line_alone(make_emulator: Any, tmp_path: Path) -> None:
    emulator = make_emulator(passive=False)
    cfg = node_cfg(tmp_path, emulator, [], vip=HERE)
    check = run_check(cfg)
    assert check.returncode == 0 and "recheck" not in check.stdout
    time.sleep(0.5)
    assert not (cfg.parent / "notify-state.json").exists()
    emulator_failing = make_emulator(passive=True)  # an unhealthy check never starts anything
    cfg = node_cfg(tmp_path, emulator_failing, [], vip=HERE)
    control(emulator_failing, "fault", {"mode": "error"})
    assert run_check(cfg).returncode == 1
    time.sleep(0.5)
    assert not (cfg.parent / "notify-state.json").exists()

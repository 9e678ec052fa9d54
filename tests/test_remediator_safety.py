"""The remediator's promise under the faults an outside review used to break it.

"Never leave two MaxScales active, and never leave none active when a node could be", over
real HTTP: two MaxScale emulators, two /state servers built with the exporter's own code, the
real CLI (waitress) where the server matters. One test (or a few) per defect of issue 11.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import control
from helpers import MxhaServer
from test_remediator import AUTH, TOKEN, Cluster, payload, post

from mxha.config import ConfigError
from mxha.lab.emulator import Emulator
from mxha.lab.emulator.model import Fault
from mxha.remediator.config import parse_remediator_config

MXHA = [sys.executable, "-m", "mxha"]


@pytest.fixture
def cluster(make_emulator: Any, tmp_path: Path) -> Any:
    c = Cluster(make_emulator, tmp_path)
    yield c
    c.close()


def actions(resp: Any) -> list[tuple[str, str, str]]:
    return [(a["node"], a["action"], a["result"]) for a in resp.json["clusters"]["mx-prod"]["actions"]]


def verdict(resp: Any) -> str:
    return str(resp.json["clusters"]["mx-prod"]["verdict"])


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


# -- 1. a stale "not answering since" ------------------------------------------------------------
def test_a_blip_long_ago_does_not_make_a_later_blip_count_as_down(make_emulator: Any, tmp_path: Path) -> None:
    c = Cluster(make_emulator, tmp_path, unreachable_grace_seconds=2.0, probe_seconds=0.3)
    try:
        # node2 holds the VIP and is active; node1 is not a candidate. node2 blips once.
        c.states["node1"].set("BACKUP", False, 150)
        c.states["node2"].set("MASTER", True, 100)
        c.set_passive("node1", True)
        client = c.app()
        c.emulators["node2"].stop_listening()
        c.states["node2"].refuse()
        assert verdict(post(client, payload())) == "no-candidate"
        c.emulators["node2"].start()  # back after the blip; no alert reaches the remediator
        c.states["node2"].listen()
        time.sleep(3.0)  # longer than the grace
        # VRRP moves to node1 (its MaxScale is passive), and node2 blips again, still active
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        c.emulators["node2"].stop_listening()
        c.states["node2"].refuse()
        resp = post(client, payload())
        assert verdict(resp) == "waiting", resp.json  # a fresh streak, not one 3 s old
        assert c.passive("node1") is True
        c.emulators["node2"].start()
        assert c.passive("node2") is False  # it was active all along: promoting node1 would have made two
    finally:
        c.close()


# -- 2. a MaxScale that answers is not down ---------------------------------------------------------
@pytest.mark.parametrize("fault", ["reject_auth", "error", "drip"])
def test_an_answering_but_erroring_maxscale_never_counts_as_down(
    make_emulator: Any, tmp_path: Path, fault: str
) -> None:
    c = Cluster(make_emulator, tmp_path, unreachable_grace_seconds=0.3, probe_seconds=0.2)
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        c.set_passive("node1", True)  # node2 is the active one, and answers only with errors
        control(c.emulators["node2"], "fault", {"mode": fault, "delay": 0.3})
        client = c.app(limits={"request_budget_seconds": 2.0})
        for _ in range(3):
            resp = post(client, payload())
            assert resp.status_code == 503 and verdict(resp) == "waiting", resp.json
            assert "mode unknown" in resp.json["clusters"]["mx-prod"]["reason"]
            time.sleep(0.4)  # past the grace each time
        assert c.passive("node1") is True
        control(c.emulators["node2"], "fault", {"mode": "none"})
        assert c.passive("node2") is False  # still active: a promotion would have made two
        status = client.get("/status", headers=AUTH).json["clusters"]["mx-prod"]
        node2 = next(o for o in status["last_observed"] if o["name"] == "node2")
        assert node2["maxscale"] == "unknown" and node2["maxscale_error_kind"] != "no_answer"
    finally:
        c.close()


def test_silent_maxscale_whose_exporter_says_it_is_up_is_unknown_not_down(cluster: Cluster) -> None:
    cluster.doc["policy"].update(unreachable_grace_seconds=0.2, probe_seconds=0.2)
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("BACKUP", False, 100)
    cluster.set_passive("node1", True)
    cluster.emulators["node2"].stop_listening()  # we cannot reach it; its own exporter can
    client = cluster.app()
    post(client, payload())
    time.sleep(0.5)
    resp = post(client, payload())
    assert verdict(resp) == "waiting" and cluster.passive("node1") is True
    # its exporter now says its MaxScale does not answer either: that counts, after the grace
    cluster.states["node2"].maxscale_up = False
    cluster.states["node2"].maxscale_error_kind = "no_answer"
    post(client, payload())

    def promotions() -> list[dict[str, Any]]:
        audit = [json.loads(line) for line in cluster.audit.read_text().splitlines()]
        return [r for a in audit for r in a["results"] if r["action"] == "promote"]

    assert wait_until(lambda: promotions(), 5)  # the remediator's own probe did it
    assert promotions()[-1]["result"] == "success" and promotions()[-1]["over_down"] == ["node2"]
    assert cluster.passive("node1") is False


def test_exporter_error_kind_in_state_says_why(make_emulator: Any, tmp_path: Path) -> None:
    """/state's maxscale.error_kind, from the real exporter code reading a real emulator."""
    from helpers import write_node_config
    from test_exporter import make_reader

    expected = {"reject_auth": "auth", "error": "http", "drip": "document", "hang": "no_answer"}
    for fault, kind in expected.items():
        emulator: Emulator = make_emulator()
        cfg = write_node_config(tmp_path / f"{fault}.yml", emulator.url, maxscale={"read_timeout": 0.5})
        control(emulator, "fault", {"mode": fault, "delay": 0.2})
        doc = make_reader(cfg, None).snapshot().to_state().to_json()
        assert doc["maxscale"]["up"] is False and doc["maxscale"]["error_kind"] == kind, (fault, doc["maxscale"])
        control(emulator, "fault", {"mode": "none"})
    emulator = make_emulator()
    emulator.stop_listening()
    cfg = write_node_config(tmp_path / "refused.yml", emulator.url)
    assert make_reader(cfg, None).snapshot().to_state().to_json()["maxscale"]["error_kind"] == "no_answer"


def test_a_counted_down_node_that_comes_back_active_is_demoted_at_once(make_emulator: Any, tmp_path: Path) -> None:
    c = Cluster(make_emulator, tmp_path, unreachable_grace_seconds=0.4, probe_seconds=0.2)
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        c.set_passive("node1", True)
        c.emulators["node2"].stop_listening()  # a hung or dead node2, still active inside
        c.states["node2"].refuse()
        client = c.app()
        post(client, payload())
        assert wait_until(lambda: c.passive("node1") is False, 5)  # promoted by the probe after the grace
        c.emulators["node2"].start()  # it comes back, active: two active, the documented trade-off
        c.states["node2"].listen()
        back = time.monotonic()
        assert wait_until(lambda: c.passive("node2") is True, 5)  # demoted without any alert
        assert time.monotonic() - back < 2.0
        assert c.passive("node1") is False
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'mxha_remediator_promotions_over_down_total{cluster="mx-prod"} 1.0' in metrics
    finally:
        c.close()


# -- 3. the guards decide for the whole correction ---------------------------------------------------
def test_circuit_breaker_never_cuts_a_correction_in_half(make_emulator: Any, tmp_path: Path) -> None:
    c = Cluster(make_emulator, tmp_path, circuit_max_actions=3, circuit_window_seconds=60)
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        client = c.app()
        for _ in range(2):  # two demotions of node2 fill the window to 2 of 3
            c.set_passive("node2", False)
            assert actions(post(client, payload())) == [("node2", "demote", "success")]
        c.set_passive("node1", True)  # now the correction needs two actions: demote node2, promote node1
        c.set_passive("node2", False)
        resp = post(client, payload())
        assert verdict(resp) == "circuit-open"
        assert actions(resp) == [("node2", "demote", "skipped"), ("node1", "promote", "skipped")]
        assert (c.passive("node1"), c.passive("node2")) == (True, False)  # one active, as before
    finally:
        c.close()


def test_cooldown_never_cuts_a_correction_in_half(make_emulator: Any, tmp_path: Path) -> None:
    c = Cluster(make_emulator, tmp_path, cooldown_seconds=60)
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        c.set_passive("node1", True)
        c.set_passive("node2", True)
        client = c.app()
        assert actions(post(client, payload())) == [("node1", "promote", "success")]
        c.set_passive("node1", True)  # behind our back: node1 passive, node2 active
        c.set_passive("node2", False)
        resp = post(client, payload())
        assert resp.status_code == 503 and verdict(resp) == "cooldown"
        assert [a[2] for a in actions(resp)] == ["skipped", "skipped"]
        assert (c.passive("node1"), c.passive("node2")) == (True, False)
    finally:
        c.close()


# -- 4. the keeper and every other node are read again right before the promotion --------------------
def test_vrrp_moving_during_the_reconcile_stops_the_promotion(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("BACKUP", False, 100)
    cluster.set_passive("node1", True)  # plan: demote node2, then promote node1
    control(cluster.emulators["node2"], "fault", {"mode": "slow", "delay": 0.6, "methods": ["PATCH"]})

    def vrrp_moves_while_node2_is_demoted() -> None:
        time.sleep(0.3)  # reading takes milliseconds; the demotion of node2 takes 0.6 s
        cluster.states["node1"].set("BACKUP", False, 150)
        cluster.states["node2"].set("MASTER", True, 100)

    mover = threading.Thread(target=vrrp_moves_while_node2_is_demoted)
    client = cluster.app()
    mover.start()
    resp = post(client, payload())
    mover.join()
    assert actions(resp)[0] == ("node2", "demote", "success")
    assert actions(resp)[1][:2] == ("node1", "promote") and actions(resp)[1][2] == "skipped", resp.json
    assert "state changed" in resp.json["clusters"]["mx-prod"]["actions"][1]["reason"]
    assert "node1 vrrp_state 'MASTER' -> 'BACKUP'" in resp.json["clusters"]["mx-prod"]["actions"][1]["reason"]
    assert cluster.passive("node1") is True


def test_a_notify_activating_another_node_during_the_reconcile_stops_the_promotion(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("BACKUP", False, 100)
    cluster.set_passive("node1", True)
    control(cluster.emulators["node2"], "fault", {"mode": "slow", "delay": 0.3})
    stop = threading.Event()

    def notify_style_activation() -> None:
        # as soon as our demotion of node2 has landed, something activates node2 again
        while not stop.is_set():
            if cluster.passive("node2") is True:
                cluster.set_passive("node2", False)
                return
            time.sleep(0.01)

    t = threading.Thread(target=notify_style_activation)
    t.start()
    resp = post(cluster.app(), payload())
    stop.set()
    t.join()
    assert actions(resp)[-1][:2] == ("node1", "promote") and actions(resp)[-1][2] in ("skipped", "failure")
    assert (cluster.passive("node1"), cluster.passive("node2")) == (True, False)


# -- 5. the request budget is a deadline -----------------------------------------------------------
@pytest.mark.parametrize("fault", ["drip", "hang"])
def test_a_dripping_or_hanging_peer_cannot_hold_a_reconcile_past_the_budget(cluster: Cluster, fault: str) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    cluster.doc["policy"]["state_timeout"] = 5.0  # per-read timeouts alone would wait this long
    for node in cluster.doc["clusters"]["mx-prod"]["nodes"]:
        node["maxscale"]["read_timeout"] = 5.0
    cluster.states["node2"].set_fault(fault, drip_delay=0.3)
    control(cluster.emulators["node2"], "fault", {"mode": fault, "delay": 0.3})
    client = cluster.app(limits={"request_budget_seconds": 1.5})
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(client, payload()), range(4)))
    took = time.monotonic() - started
    assert took < 1.5 + 2.5, took  # the budget, not the 5 s read timeout of a peer dripping for longer
    assert all(a.status_code in (200, 503) for a in answers)
    assert cluster.passive("node1") is False  # nothing was promoted or demoted on a guess
    cluster.states["node2"].set_fault("none")
    control(cluster.emulators["node2"], "fault", {"mode": "none"})


# -- 5b. a change sent without an answer may still land -------------------------------------------------
def _late_patch(c: Cluster, node: str) -> None:
    """``node``'s next PATCH is applied 1.5 s late, after a 1 s request budget: the remediator sends it and
    gets no answer; the fault itself ends after 1 s, so later reads and writes are prompt."""
    control(c.emulators[node], "fault", {"mode": "slow", "delay": 1.5, "methods": ["PATCH"], "duration": 1.0})


def _sample_active(c: Cluster, stop: threading.Event, seen: list[tuple[float, bool, bool]]) -> None:
    """Both modes every 10 ms, read in-process (as fast as the emulators change them)."""
    while not stop.is_set():
        modes = []
        for n in ("node1", "node2"):
            with c.emulators[n].state.lock:
                modes.append(bool(c.emulators[n].state.passive))
        seen.append((time.monotonic(), modes[0], modes[1]))
        time.sleep(0.01)


def test_a_demotion_that_lands_after_its_answer_was_lost_is_healed_without_an_alert(
    make_emulator: Any, tmp_path: Path
) -> None:
    # recheck_seconds 0: only the watch on the unsettled write looks again (no Alertmanager resend)
    c = Cluster(make_emulator, tmp_path, probe_seconds=0.2, recheck_seconds=0)
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        c.set_passive("node1", True)  # the correction: demote node2, promote node1
        _late_patch(c, "node2")
        client = c.app(limits={"request_budget_seconds": 1.0})
        resp = post(client, payload())
        assert resp.status_code == 500
        assert actions(resp) == [("node2", "demote", "failure"), ("node1", "promote", "skipped")]
        demote = resp.json["clusters"]["mx-prod"]["actions"][0]
        assert demote["outcome"] == "unknown" and "may still be applied" in demote["reason"], demote
        assert resp.json["clusters"]["mx-prod"]["actions"][1]["reason"] == "demotion of node2 not confirmed"
        # VRRP moves before the late demotion lands: node2 becomes the rightful keeper, active: "ok"
        c.states["node1"].set("BACKUP", False, 150)
        c.states["node2"].set("MASTER", True, 100)
        status = client.get("/status", headers=AUTH).json["clusters"]["mx-prod"]
        assert status["unsettled_writes"]["node2"]["action"] == "demote", status
        assert wait_until(lambda: c.passive("node2") is True, 3)  # the late demotion lands: none active
        landed = time.monotonic()
        assert wait_until(lambda: c.passive("node2") is False, 3)  # the watch saw it: node2 promoted again
        assert time.monotonic() - landed < 1.5
        assert c.passive("node1") is True
        assert client.get("/status", headers=AUTH).json["clusters"]["mx-prod"]["unsettled_writes"] == {}
        audit = [json.loads(line) for line in c.audit.read_text().splitlines()]
        assert any(r["triggers"][0]["status"] == "probe" and r["results"] for r in audit), audit
    finally:
        c.close()


def test_an_acknowledged_demotion_whose_read_back_fails_is_applied_and_the_promotion_waits(
    cluster: Cluster,
) -> None:
    """MaxScale answers the PATCH, then stops answering usably: the demotion happened (MaxScale said so),
    and the promotion waits, since node2's mode can no longer be read."""
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("BACKUP", False, 100)
    cluster.set_passive("node1", True)
    st = cluster.emulators["node2"].state
    applied = st.set_passive

    def then_fail(passive: bool, via: str) -> None:
        applied(passive, via)
        if via == "rest":
            st.fault = Fault("error", methods=("GET",))  # every read from now on: HTTP 500

    st.set_passive = then_fail  # type: ignore[method-assign]
    client = cluster.app()
    resp = post(client, payload())
    assert actions(resp) == [("node2", "demote", "success"), ("node1", "promote", "skipped")], resp.json
    got = resp.json["clusters"]["mx-prod"]["actions"]
    assert "acknowledged by MaxScale; reading it back failed" in got[0]["reason"], got
    assert "state changed: node2 maxscale 'ok' -> 'unknown'" in got[1]["reason"], got
    assert (cluster.passive("node1"), cluster.passive("node2")) == (True, True)
    with st.lock:
        st.fault = Fault()
    assert actions(post(client, payload())) == [("node1", "promote", "success")]


def test_no_other_node_is_promoted_while_a_promotion_sent_without_an_answer_may_land(
    make_emulator: Any, tmp_path: Path
) -> None:
    c = Cluster(make_emulator, tmp_path, probe_seconds=0.2, recheck_seconds=0)
    stop, seen = threading.Event(), []  # type: ignore[var-annotated]
    sampler = threading.Thread(target=_sample_active, args=(c, stop, seen))
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        c.set_passive("node1", True)
        c.set_passive("node2", True)  # the correction: promote node1
        _late_patch(c, "node1")
        client = c.app(limits={"request_budget_seconds": 1.0})
        sampler.start()
        resp = post(client, payload())
        assert actions(resp) == [("node1", "promote", "failure")], resp.json
        assert resp.json["clusters"]["mx-prod"]["actions"][0]["outcome"] == "unknown"
        # VRRP moves to node2 before node1's promotion lands: promoting node2 now could make two active
        c.states["node1"].set("BACKUP", False, 150)
        c.states["node2"].set("MASTER", True, 100)
        assert wait_until(lambda: c.passive("node1") is False, 3)  # node1's promotion lands late
        assert wait_until(lambda: (c.passive("node1"), c.passive("node2")) == (True, False), 4)
        time.sleep(0.3)
        stop.set()
        sampler.join()
        two = [t for t, p1, p2 in seen if not p1 and not p2]
        assert two == [], f"two active for {len(two) * 10} ms"
        audit = [json.loads(line) for line in c.audit.read_text().splitlines()]
        guards = [r["guard"] for r in audit if r["guard"]]
        assert "unsettled_write" in guards, [(r["plan"]["verdict"], r["guard"]) for r in audit]
        notes = [n for r in audit if r["guard"] == "unsettled_write" for n in r["plan"]["notes"]]
        assert any("a promotion of node1 sent by this replica got no answer" in n for n in notes), notes
    finally:
        stop.set()
        if sampler.is_alive():
            sampler.join()
        c.close()


# -- 6. empty secrets -----------------------------------------------------------------------------
def _base_config(tmp_path: Path, auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "auth": auth,
        "clusters": {
            "c": {"nodes": [{"name": "a", "state_url": "http://127.0.0.1:1/state", "maxscale": {"url": "http://x:1"}}]}
        },
    }


def test_an_empty_basic_password_is_refused_naming_the_key(tmp_path: Path, monkeypatch: Any) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=r"^auth\.basic_password_file: .* empty"):
        parse_remediator_config(_base_config(tmp_path, {"basic_user": "am", "basic_password_file": str(empty)}))
    monkeypatch.setenv("MXHA_EMPTY", "")
    with pytest.raises(ConfigError, match=r"^auth\.basic_password_env: .* empty"):
        parse_remediator_config(_base_config(tmp_path, {"basic_user": "am", "basic_password_env": "MXHA_EMPTY"}))
    with pytest.raises(ConfigError, match=r"^auth\.bearer_token_file: .* empty"):
        parse_remediator_config(_base_config(tmp_path, {"bearer_token_file": str(empty)}))


def test_the_cli_stops_on_an_empty_secret_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    cfg = tmp_path / "r.yml"
    cfg.write_text(yaml.safe_dump(_base_config(tmp_path, {"basic_user": "am", "basic_password_file": str(empty)})))
    proc = subprocess.run(
        [*MXHA, "remediator", "--config.file", str(cfg)], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "auth.basic_password_file" in lines[0], proc.stderr


# -- 7. bodies are capped before auth, by the WSGI server itself -------------------------------------
def _upload_unauthenticated(port: int, path: str, declared: int, send: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
        )
        chunk = b" " * 65536
        sent = 0
        try:
            while sent < send:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server stopped reading: what we want
        s.settimeout(5)
        try:
            return s.recv(4096)
        except OSError:
            return b""


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_remediator_caps_an_unauthenticated_body_before_buffering_it(tmp_path: Path) -> None:
    cfg = tmp_path / "r.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "auth": {"bearer_token": TOKEN},
                "limits": {"max_body_bytes": 65536},
                "clusters": {
                    "c": {
                        "nodes": [
                            {"name": "a", "state_url": "http://127.0.0.1:1/state", "maxscale": {"url": "http://x:1"}}
                        ]
                    }
                },
            }
        )
    )
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    with MxhaServer("remediator", cfg, env={"TMPDIR": str(tmp)}) as server:
        answer = _upload_unauthenticated(server.port, "/webhook", 200 * 1024 * 1024, 20 * 1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert _dir_bytes(tmp) < 1024 * 1024
        # within the cap, an unauthenticated body gets the JSON 401 as before
        small = requests.post(f"{server.url}/webhook", data=b"{}", timeout=5)
        assert small.status_code == 401 and small.json()["status"] == "error"


def test_exporter_takes_no_bodies(tmp_path: Path, make_emulator: Any) -> None:
    from helpers import write_node_config

    cfg = write_node_config(tmp_path / "n.yml", make_emulator().url, keepalived={"pid_file": str(tmp_path / "none")})
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    with MxhaServer("exporter", cfg, env={"TMPDIR": str(tmp)}) as server:
        answer = _upload_unauthenticated(server.port, "/metrics", 50 * 1024 * 1024, 8 * 1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert _dir_bytes(tmp) < 1024 * 1024


# -- 9. a priority tie is refused loudly ------------------------------------------------------------
def test_split_brain_with_equal_priorities_is_refused_and_reported(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 100)
    cluster.states["node2"].set("MASTER", True, 100)
    client = cluster.app()
    resp = post(client, payload())
    assert resp.status_code == 200 and verdict(resp) == "refused" and actions(resp) == []
    assert "share the highest VRRP priority 100" in resp.json["clusters"]["mx-prod"]["reason"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'mxha_remediator_cluster_refused{cluster="mx-prod",reason="priority_tie"} 1.0' in metrics
    assert client.get("/status", headers=AUTH).json["clusters"]["mx-prod"]["refused"] == "priority_tie"
    # fixed: different priorities, and the refusal clears
    cluster.states["node1"].set("MASTER", True, 150)
    assert actions(post(client, payload())) == [("node2", "demote", "success")]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'mxha_remediator_cluster_refused{cluster="mx-prod",reason="priority_tie"} 0.0' in metrics


# -- 10. a /state from the wrong node ---------------------------------------------------------------
def test_swapped_state_urls_are_refused_and_reported(cluster: Cluster) -> None:
    # the VIP is on node2, but the /state read for node1 (which says MASTER + VIP) is node2's
    nodes = cluster.doc["clusters"]["mx-prod"]["nodes"]
    nodes[0]["state_url"], nodes[1]["state_url"] = nodes[1]["state_url"], nodes[0]["state_url"]
    cluster.states["node1"].set("BACKUP", False, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    cluster.set_passive("node2", True)
    cluster.set_passive("node1", True)
    client = cluster.app()
    resp = post(client, payload())
    assert verdict(resp) == "refused" and actions(resp) == []
    assert (cluster.passive("node1"), cluster.passive("node2")) == (True, True)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'mxha_remediator_cluster_refused{cluster="mx-prod",reason="node_identity"} 1.0' in metrics
    audit = json.loads(cluster.audit.read_text().splitlines()[-1])
    assert audit["plan"]["refusal"] == "node_identity"
    observed = {o["name"]: o["state_node"] for o in audit["observed"]}
    assert observed == {"node1": "node2", "node2": "node1"}


# -- 11. credentials in URLs never printed ------------------------------------------------------------
def test_url_credentials_are_redacted_everywhere(cluster: Cluster) -> None:
    secret = "s3cr3t-in-url"
    for node in cluster.doc["clusters"]["mx-prod"]["nodes"]:
        node["state_url"] = node["state_url"].replace("http://", f"http://scraper:{secret}@")
    cluster.states["node2"].refuse()
    cluster.states["node1"].set_fault("error")
    client = cluster.app()
    resp = post(client, payload())
    text = json.dumps(resp.json) + json.dumps(client.get("/status", headers=AUTH).json)
    text += cluster.audit.read_text() + client.get("/metrics").get_data(as_text=True)
    assert "cannot connect" in text  # the errors are there ...
    assert secret not in text and "scraper:" not in text  # ... without the credentials


def test_url_credentials_are_sent_as_basic_auth(make_emulator: Any, tmp_path: Path) -> None:
    from mxha.transport import JsonHttpClient

    emulator = make_emulator()
    url = emulator.url.replace("http://", "http://admin:mariadb@") + "/v1/maxscale"
    assert JsonHttpClient(url).get_json()["data"]["id"] == "maxscale"
    bad = JsonHttpClient(emulator.url.replace("http://", "http://admin:wrong@") + "/v1/maxscale")
    with pytest.raises(Exception, match="HTTP 401") as info:
        bad.get_json()
    assert "wrong" not in str(info.value) and "wrong" not in repr(bad)


def test_a_rescue_promotion_is_never_held_back_by_the_guards(make_emulator: Any, tmp_path: Path) -> None:
    """With no MaxScale active, promoting the VIP holder cannot make two active: neither the circuit
    breaker nor the cooldown may leave the cluster with none (seen in the lab: 60 s with none)."""
    c = Cluster(make_emulator, tmp_path, circuit_max_actions=2, circuit_window_seconds=60, cooldown_seconds=60)
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        client = c.app()
        for _ in range(2):  # fill the window, and put node1 in its cooldown
            c.set_passive("node1", True)
            c.set_passive("node2", True)
            assert actions(post(client, payload())) == [("node1", "promote", "success")]
        c.set_passive("node2", False)  # a demotion is not a rescue: the breaker holds it
        resp = post(client, payload())
        assert verdict(resp) == "circuit-open" and c.passive("node2") is False
        c.set_passive("node2", True)
        c.set_passive("node1", True)  # none active now
        resp = post(client, payload())
        assert actions(resp) == [("node1", "promote", "success")], resp.json
        assert (c.passive("node1"), c.passive("node2")) == (False, True)
    finally:
        c.close()


# -- 12. a cluster whose nodes say mode: locks ---------------------------------------------------------
def test_a_locks_mode_cluster_is_refused_never_made_passive(cluster: Cluster) -> None:
    """In mode: locks every MaxScale is meant to be active; this policy would demote one. Until the
    locks policy exists, the remediator says so and does nothing."""
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("BACKUP", False, 100)
    cluster.set_passive("node1", False)
    cluster.set_passive("node2", False)
    cluster.states["node2"].mode = "locks"
    client = cluster.app()
    resp = post(client, payload())
    assert verdict(resp) == "refused" and actions(resp) == []
    assert (cluster.passive("node1"), cluster.passive("node2")) == (False, False)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'mxha_remediator_cluster_refused{cluster="mx-prod",reason="mode"} 1.0' in metrics

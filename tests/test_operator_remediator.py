"""Operator mistakes and operator views, remediator and exporter side (issue 27, items 6, 7 and 9).

Over real HTTP: MaxScale emulators, /state servers built with the exporter's own code, the
remediator's app under waitress on loopback (in this process, so its decision state can be
inspected), the exporter as its CLI runs it.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import control
from flask import Flask
from helpers import StateServer
from test_remediator import AUTH, payload

from mxha.lab.emulator import Emulator
from mxha.remediator.app import create_app
from mxha.remediator.config import parse_remediator_config
from mxha.remediator.engine import Reconciler


class Served:
    """A WSGI app under waitress on an ephemeral loopback port, in this process, as the CLI serves it."""

    def __init__(self, app: Flask, threads: int = 8) -> None:
        from waitress import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=threads, ident="mxha-remediator")
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self._run, name="waitress", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except OSError:
            pass  # the listener closed under the loop: how it is stopped

    def close(self) -> None:
        from waitress import wasyncore

        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        self.thread.join(5)


class Pair:
    """node1 (priority 150) and node2 (100): an emulator and a /state server each; a remediator over them."""

    def __init__(self, make_emulator: Callable[..., Emulator], tmp_path: Path, password: str = "mariadb") -> None:
        self.password = password
        self.emulators = {n: make_emulator(nodename=n, password=password) for n in ("node1", "node2")}
        self.states = {n: StateServer(n) for n in ("node1", "node2")}
        self.audit = tmp_path / "audit.jsonl"
        self.served: Served | None = None
        self.reconciler: Reconciler | None = None

    def config(self, policy: dict[str, Any], read_timeout: float = 1.0, **top: Any) -> dict[str, Any]:
        return {
            "auth": {"bearer_token": "test-token-123"},
            "audit_log": str(self.audit),
            "policy": {"cooldown_seconds": 0, "recheck_seconds": 0, **policy},
            "clusters": {
                "mx-prod": {
                    "nodes": [
                        {
                            "name": n,
                            "state_url": self.states[n].url,
                            "maxscale": {
                                "url": self.emulators[n].url,
                                "password": self.password,
                                "read_timeout": read_timeout,
                            },
                        }
                        for n in ("node1", "node2")
                    ]
                }
            },
            **top,
        }

    def serve(self, doc: dict[str, Any], clock: Callable[[], float] = time.monotonic) -> str:
        cfg = parse_remediator_config(json.loads(json.dumps(doc)))
        self.reconciler = Reconciler(cfg, clock=clock)
        self.served = Served(create_app(cfg, self.reconciler))
        return self.served.url

    def keeper_node1(self) -> None:
        """node1 holds the VIP as MASTER and is active; node2 is its backup."""
        self.states["node1"].set("MASTER", True, 150)
        self.states["node2"].set("BACKUP", False, 100)
        control(self.emulators["node1"], "maxscale", {"passive": False})

    def passive(self, node: str) -> bool:
        return bool(control(self.emulators[node], "state")["passive"])

    def close(self) -> None:
        if self.served is not None:
            self.served.close()
        if self.reconciler is not None:
            self.reconciler.close()
        for s in self.states.values():
            s.close()


@pytest.fixture
def pair(make_emulator: Callable[..., Emulator], tmp_path: Path) -> Iterator[Pair]:
    p = Pair(make_emulator, tmp_path)
    yield p
    p.close()


def webhook(url: str, session: Any = requests, timeout: float = 20) -> requests.Response:
    return session.post(  # type: ignore[no-any-return]
        f"{url}/webhook",
        data=json.dumps(payload()),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=timeout,
    )


def get(url: str, path: str, session: Any = requests) -> requests.Response:
    return session.get(f"{url}{path}", headers=AUTH, timeout=20)  # type: ignore[no-any-return]


# -- 6. a read for a peer neither changes nor races decision state ------------------------------------
class Clock:
    """The reconciler's clock, moved by the test (guardrails take their clock as an argument)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hooks_release_is_timed_on_the_reconcilers_wall_clock(pair: Pair) -> None:
    """The no-relock back-off after a hook's release (its /state says when, wall-clock) is judged on
    the clock the reconciler is given, like every other time its decisions rest on."""
    wall = Clock()
    pair.keeper_node1()
    pair.states["node2"].locks_released_at = wall.now - 5  # node2's hook released 5 s ago
    cfg = parse_remediator_config(json.loads(json.dumps(pair.config({"relock_backoff_seconds": 60}))))
    reconciler = Reconciler(cfg, wall_clock=wall)
    try:

        def in_backoff() -> dict[str, bool]:
            readings = reconciler.observe("mx-prod", time.monotonic() + 5)
            return {r.observation.name: r.observation.relock_backoff for r in readings}

        assert in_backoff() == {"node1": False, "node2": True}
        wall.now += 60
        assert in_backoff() == {"node1": False, "node2": False}
    finally:
        reconciler.close()


def test_a_peer_read_changes_no_streak_and_no_unsettled_write(pair: Pair) -> None:
    clock = Clock()
    pair.keeper_node1()
    # node2 silent: its MaxScale and its exporter give no answer
    pair.emulators["node2"].stop_listening()
    pair.states["node2"].refuse()
    # a long grace and probe: nothing but this test's requests reads the nodes
    policy = {"unreachable_grace_seconds": 300, "probe_seconds": 60, "unsettled_write_seconds": 60}
    url = pair.serve(pair.config(policy, read_timeout=0.3), clock)
    assert pair.reconciler is not None
    rt = pair.reconciler.runtimes["mx-prod"]
    webhook(url)
    streak_before = rt.streaks.get("node2")
    assert streak_before is not None, "the reconcile counts node2's silence"
    seen = (streak_before.since, streak_before.last)
    clock.now += 1.0
    asked = time.time()
    peer = get(url, "/guardrails?observe=mx-prod")
    assert peer.status_code == 200, peer.text
    # the read was made (a peer asks so that `answered` is fresh) ...
    assert peer.json()["clusters"]["mx-prod"]["answered"]["node1"] >= asked
    # ... and counted nothing: node2's streak is the reconcile's, as it left it
    after = rt.streaks.get("node2")
    assert after is not None and (after.since, after.last) == seen, (seen, after)
    status = get(url, "/status").json()["clusters"]["mx-prod"]
    assert status["not_answering_for"] == {"node2": 1.0}, status["not_answering_for"]

    # node2 back, active behind node1: the demotion's PATCH is applied 1 s late, after its answer
    # was given up on (read_timeout 0.3 s): an unsettled write
    pair.emulators["node2"].start()
    pair.states["node2"].listen()
    control(pair.emulators["node2"], "maxscale", {"passive": False})
    control(pair.emulators["node2"], "fault", {"mode": "slow", "delay": 1.0, "methods": ["PATCH"]})
    demoted = webhook(url).json()["clusters"]["mx-prod"]
    assert [(a["node"], a["action"], a.get("outcome")) for a in demoted["actions"]] == [
        ("node2", "demote", "unknown")
    ], demoted
    control(pair.emulators["node2"], "fault", {"mode": "none"})
    deadline = time.monotonic() + 5
    while not pair.passive("node2") and time.monotonic() < deadline:  # the late PATCH lands
        time.sleep(0.05)
    assert pair.passive("node2")
    watched = dict(rt.unsettled)
    assert set(watched) == {"node2"}
    peer = get(url, "/guardrails?observe=mx-prod")
    assert peer.status_code == 200, peer.text
    assert dict(rt.unsettled) == watched, "a peer's read settled nothing"
    assert [w["node"] for w in peer.json()["clusters"]["mx-prod"]["unsettled"]] == ["node2"]
    assert set(get(url, "/status").json()["clusters"]["mx-prod"]["unsettled_writes"]) == {"node2"}
    # the reconcile's own read is what settles it
    assert webhook(url).json()["clusters"]["mx-prod"]["verdict"] == "ok"
    assert dict(rt.unsettled) == {}


def test_peer_reads_and_status_hammered_during_reconciles_of_flapping_nodes(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """Peer reads (``/guardrails?observe=``) and ``/status`` from many threads while reconciles run
    (webhooks and the remediator's own probes) and node2 flaps: active again, silent, back; every
    demotion of it gets no answer in time and lands late (an unsettled write), so streaks and
    unsettled writes change all the time. No 5xx, no exception logged."""
    caplog.set_level(logging.INFO)
    pair.keeper_node1()
    policy = {
        "unreachable_grace_seconds": 0.3,
        "probe_seconds": 0.1,
        "unsettled_write_seconds": 0.6,
        "circuit_max_actions": 100000,
    }
    url = pair.serve(pair.config(policy, read_timeout=0.15, limits={"request_budget_seconds": 2.0}))
    control(pair.emulators["node2"], "fault", {"mode": "slow", "delay": 0.3, "methods": ["PATCH"]})
    stop = threading.Event()
    answers: dict[str, list[tuple[int, str]]] = {"observe": [], "status": [], "webhook": []}
    failures: list[str] = []

    def hammer(kind: str, call: Callable[[Any], requests.Response]) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    resp = call(session)
                    answers[kind].append((resp.status_code, resp.text))
                except requests.RequestException as exc:
                    failures.append(f"{kind}: {exc}")

    def flap() -> None:
        rng = random.Random(27)
        while not stop.is_set():
            choice = rng.random()
            if choice < 0.55:
                control(pair.emulators["node2"], "maxscale", {"passive": False})
            elif choice < 0.7:
                pair.emulators["node2"].stop_listening(0.25)
                pair.states["node2"].refuse()
                stop.wait(0.25)
                pair.states["node2"].listen()
            else:
                control(pair.emulators["node2"], "maxscale", {"passive": True})
            stop.wait(rng.uniform(0.05, 0.3))

    calls: list[tuple[str, Callable[[Any], requests.Response]]] = [
        *[("observe", lambda s: get(url, "/guardrails?observe=mx-prod", s))] * 6,
        *[("status", lambda s: get(url, "/status", s))] * 2,
        *[("webhook", lambda s: webhook(url, s))] * 2,
    ]
    threads = [threading.Thread(target=hammer, args=c) for c in calls] + [threading.Thread(target=flap)]

    def churn() -> tuple[int, int]:
        """Unsettled writes made, and settled by a read that saw them applied, so far."""
        messages = [r.getMessage() for r in list(caplog.records)]
        return sum("outcome unknown" in m for m in messages), sum("without an answer is applied" in m for m in messages)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: a race shows in seconds, not hours
    try:
        for t in threads:
            t.start()
        started = time.monotonic()
        # at least 5 s, and until the state the reads could race has changed often enough
        while time.monotonic() - started < 5 or (min(churn()) < 4 and time.monotonic() - started < 30):
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        sys.setswitchinterval(switch)
    pair.emulators["node2"].start()
    pair.states["node2"].listen()
    assert failures == []
    for kind in ("observe", "status"):
        bad = [a for a in answers[kind] if a[0] != 200]
        assert bad == [], f"{kind}: {len(bad)} of {len(answers[kind])} not 200: {[b[1][:300] for b in bad[:3]]}"
    # a webhook's 500 (an action failed) and 503 (waiting) are answers; an exception is not
    bad_hooks = [a for a in answers["webhook"] if json.loads(a[1])["status"] not in ("ok", "retry")]
    assert bad_hooks == [], [b[1][:300] for b in bad_hooks[:3]]
    raised = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert raised == [], [r.getMessage() for r in raised[:3]]
    # what was meant to happen did: many reads, and the state they could race changed often
    assert len(answers["observe"]) >= 60 and len(answers["status"]) >= 20, {k: len(v) for k, v in answers.items()}
    unsettled, settled = churn()
    streaks = sum(1 for _, text in answers["status"] if json.loads(text)["clusters"]["mx-prod"]["not_answering_for"])
    assert unsettled >= 4 and settled >= 4 and streaks >= 1, (unsettled, settled, streaks)


# -- 7. a dry run shows no action taken ---------------------------------------------------------------
def samples(metrics: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in an exposition."""
    out = {}
    for line in metrics.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line.rpartition(" ")
            out[labels[len(name) :]] = float(value)
    return out


def test_a_dry_run_answers_shows_audits_and_counts_no_action(pair: Pair) -> None:
    # node1 is the keeper but passive, node2 active: the correction would demote node2, promote node1
    pair.keeper_node1()
    control(pair.emulators["node1"], "maxscale", {"passive": True})
    control(pair.emulators["node2"], "maxscale", {"passive": False})
    url = pair.serve(pair.config({"unreachable_grace_seconds": 1}, dry_run=True))
    resp = webhook(url)
    assert resp.status_code == 200 and resp.json()["dry_run"] is True
    answer = resp.json()["clusters"]["mx-prod"]
    assert answer["verdict"] == "would-correct", answer
    assert answer["reason"].startswith("dry run, nothing was sent: "), answer["reason"]
    assert [(a["node"], a["action"], a["result"]) for a in answer["actions"]] == [
        ("node2", "demote", "dry_run"),
        ("node1", "promote", "dry_run"),
    ]
    assert all(a["reason"] == "dry run: not sent" for a in answer["actions"])
    # nothing was sent
    for n in ("node1", "node2"):
        sent = control(pair.emulators[n], "requests")["requests"]
        assert [r for r in sent if r["method"] != "GET" and r["path"].startswith("/v1")] == []
    assert (pair.passive("node1"), pair.passive("node2")) == (True, False)

    status = get(url, "/status").json()
    cluster = status["clusters"]["mx-prod"]
    assert status["dry_run"] is True and cluster["last_plan"]["verdict"] == "would-correct", cluster["last_plan"]
    assert {a["result"] for a in cluster["recent_actions"]} == {"dry_run"}
    assert cluster["circuit"]["actions_in_window"] == 0

    record = json.loads(pair.audit.read_text().splitlines()[-1])
    assert record["dry_run"] is True and record["plan"]["verdict"] == "would-correct"
    assert record["plan"]["reason"].startswith("dry run, nothing was sent")
    assert {r["result"] for r in record["results"]} == {"dry_run"}

    metrics = requests.get(f"{url}/metrics", timeout=5).text
    # actions_total{result} is what the dashboard's panel and MaxScaleRemediationFailing read: a dry run
    # adds to none of its series (not even a result="dry_run" one that a sum would take for actions)
    actions = samples(metrics, "mxha_remediator_actions_total")
    assert actions and not [k for k, v in actions.items() if v > 0 or 'result="dry_run"' in k], actions
    decisions = samples(metrics, "mxha_remediator_decisions_total")
    assert decisions == {'{cluster="mx-prod",verdict="would-correct"}': 1.0}, decisions
    assert "_created" not in metrics  # counters come without their creation-time twin series


# -- 9. a source that fails is logged once, and once when it recovers -----------------------------------
SECRET = "s3cr3t-Rotated-pw"


def test_the_exporter_logs_a_refused_password_once_and_its_recovery_once(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    from helpers import MxhaServer, write_node_config

    emulator = make_emulator(password=SECRET)
    cfg = write_node_config(
        tmp_path / "node.yml",
        emulator.url,
        maxscale={"password": SECRET},
        # no keepalived here: its source fails all along, and says so once; no snapshot cache
        keepalived={"pid_file": str(tmp_path / "none.pid"), "dump_dir": str(tmp_path), "min_signal_interval": 0},
    )
    server = MxhaServer("exporter", cfg)
    try:

        def scrapes(n: int) -> list[str]:
            return [
                line
                for _ in range(n)
                for line in requests.get(server.url + "/metrics", timeout=5).text.splitlines()
                if line.startswith("mxha_maxscale_up ")
            ]

        assert scrapes(3) == ["mxha_maxscale_up 1.0"] * 3
        control(emulator, "fault", {"mode": "reject_auth"})  # the admin password was rotated
        assert scrapes(6) == ["mxha_maxscale_up 0.0"] * 6
        emulator.stop_listening()  # then MaxScale stops answering at all
        assert scrapes(4) == ["mxha_maxscale_up 0.0"] * 4
        emulator.start()
        control(emulator, "fault", {"mode": "none"})  # the config gets the new password
        assert scrapes(3) == ["mxha_maxscale_up 1.0"] * 3
    finally:
        server.proc.terminate()
        server.proc.wait(10)
        assert server.proc.stderr is not None
        log = server.proc.stderr.read()
        server.proc.stderr.close()
    source = f"MaxScale {emulator.url}"
    mine = [line for line in log.splitlines() if source in line]
    assert len(mine) == 3, log
    assert "WARNING" in mine[0] and f"{source}: failing (credentials refused): GET /v1/maxscale: HTTP 401" in mine[0]
    assert f"{source}: still failing, now no answer (was credentials refused)" in mine[1], mine[1]
    assert f"{source}: recovered after " in mine[2] and "failing (no answer)" in mine[2], mine[2]
    keepalived = [line for line in log.splitlines() if "keepalived: " in line]
    assert len(keepalived) == 1 and "keepalived: failing (unreadable): keepalived not running" in keepalived[0]
    assert SECRET not in log


def test_the_remediator_logs_each_failing_node_source_once_and_its_recovery_once(
    make_emulator: Callable[..., Emulator], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pair = Pair(make_emulator, tmp_path, password=SECRET)
    try:
        pair.keeper_node1()
        control(pair.emulators["node2"], "maxscale", {"passive": True})
        url = pair.serve(pair.config({"unreachable_grace_seconds": 1}))
        assert webhook(url).json()["clusters"]["mx-prod"]["verdict"] == "ok"
        control(pair.emulators["node2"], "fault", {"mode": "reject_auth"})  # the admin password was rotated
        pair.states["node2"].set_fault("error")  # and its exporter answers HTTP 500
        for _ in range(5):
            answer = webhook(url).json()["clusters"]["mx-prod"]
            node2 = next(o for o in answer_observed(url) if o["name"] == "node2")
            assert node2["maxscale_error_kind"] == "auth" and node2["state_status"] == "error", node2
        control(pair.emulators["node2"], "fault", {"mode": "none"})
        pair.states["node2"].set_fault("none")
        for _ in range(3):
            answer = webhook(url).json()["clusters"]["mx-prod"]
            assert answer["verdict"] == "ok", answer
    finally:
        pair.close()
    lines = [r.getMessage() for r in caplog.records]
    maxscale = f"cluster mx-prod: node2's MaxScale {pair.emulators['node2'].url}"
    said = [m for m in lines if maxscale in m]
    assert len(said) == 2, said
    assert said[0] == f"{maxscale}: failing (credentials refused): GET /v1/maxscale: HTTP 401: Access denied"
    assert said[1].startswith(f"{maxscale}: recovered after ") and said[1].endswith("(credentials refused)")
    state = f"cluster mx-prod: node2's /state {pair.states['node2'].url}"
    said = [m for m in lines if state in m]
    assert len(said) == 2, said
    assert said[0].startswith(f"{state}: failing (HTTP error): GET /state: HTTP 500"), said[0]
    assert said[1].startswith(f"{state}: recovered after ") and said[1].endswith("(HTTP error)"), said[1]
    assert not [m for m in lines if "node1's" in m], "node1 never failed: nothing is said of it"
    assert not [m for m in lines if SECRET in m]


def answer_observed(url: str) -> list[dict[str, Any]]:
    return list(get(url, "/status").json()["clusters"]["mx-prod"]["last_observed"])

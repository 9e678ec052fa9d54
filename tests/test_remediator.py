"""The remediator over real HTTP: two MaxScale emulators, two /state servers, real Alertmanager payloads."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import ALERTMANAGER_FIXTURES, control
from flask.testing import FlaskClient
from helpers import StateServer

from mxha.remediator.app import create_app
from mxha.remediator.config import parse_remediator_config
from mxha.remediator.engine import Reconciler

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Cluster:
    def __init__(self, make_emulator: Any, tmp_path: Path, **policy: Any) -> None:
        self.emulators = {"node1": make_emulator(nodename="node1"), "node2": make_emulator(nodename="node2")}
        self.states = {"node1": StateServer("node1"), "node2": StateServer("node2")}
        self.states["node1"].priority = 150
        self.audit = tmp_path / "audit.jsonl"
        self.doc: dict[str, Any] = {
            "auth": {"bearer_token": TOKEN},
            "audit_log": str(self.audit),
            "policy": {"cooldown_seconds": 0, "unreachable_grace_seconds": 0.5, "recheck_seconds": 0, **policy},
            "clusters": {
                "mx-prod": {
                    "nodes": [
                        {
                            "name": n,
                            "state_url": self.states[n].url,
                            "maxscale": {"url": self.emulators[n].url, "password": "mariadb", "read_timeout": 1.0},
                        }
                        for n in ("node1", "node2")
                    ]
                }
            },
        }

    def app(self, **overrides: Any) -> FlaskClient:
        doc = {**self.doc, **overrides}
        cfg = parse_remediator_config(json.loads(json.dumps(doc)))
        self.reconciler = Reconciler(cfg)
        return create_app(cfg, self.reconciler).test_client()

    def passive(self, node: str) -> bool:
        return bool(control(self.emulators[node], "state")["passive"])

    def set_passive(self, node: str, passive: bool) -> None:
        control(self.emulators[node], "maxscale", {"passive": passive})

    def patches(self, node: str) -> list[dict[str, Any]]:
        return [r for r in control(self.emulators[node], "requests")["requests"] if r["method"] == "PATCH"]

    def close(self) -> None:
        if hasattr(self, "reconciler"):
            self.reconciler.close()
        for s in self.states.values():
            s.close()


@pytest.fixture
def cluster(make_emulator: Any, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(make_emulator, tmp_path)
    yield c
    c.close()


def payload(
    alertname: str = "MaxScaleVRRPSplitBrain", cluster: str = "mx-prod", status: str = "firing", **labels: str
) -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "receiver": "remediator",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": alertname, "cluster": cluster, **labels},
                "annotations": {},
                "startsAt": "2026-11-25T23:50:35Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://p",
                "fingerprint": "26dee649f9c4a484",
            }
        ],
    }


def post(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/webhook", data=json.dumps(body), headers={**AUTH, "Content-Type": "application/json", **(headers or {})}
    )


# -- scenarios --------------------------------------------------------------------------------
def test_split_brain_demotes_the_lower_priority_node(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    client = cluster.app()
    resp = post(client, json.loads((ALERTMANAGER_FIXTURES / "webhook-1.body").read_text()))
    assert resp.status_code == 200, resp.json
    result = resp.json["clusters"]["mx-prod"]
    assert result["verdict"] == "corrected" and result["keep"] == "node1"
    assert [(a["node"], a["action"], a["result"]) for a in result["actions"]] == [("node2", "demote", "success")]
    assert (cluster.passive("node1"), cluster.passive("node2")) == (False, True)
    assert cluster.patches("node1") == []


def test_restarted_backup_that_came_back_active_is_demoted(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("BACKUP", False, 100)
    resp = post(cluster.app(), payload("MaxScaleBackupActive", instance="node2:9843"))
    assert resp.status_code == 200
    assert (cluster.passive("node1"), cluster.passive("node2")) == (False, True)


def test_master_passive_is_promoted_after_others_verified_passive(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("BACKUP", False, 100)
    cluster.set_passive("node1", True)
    cluster.set_passive("node2", True)
    resp = post(cluster.app(), payload("MaxScaleMasterPassive"))
    assert resp.status_code == 200
    assert [(a["node"], a["action"]) for a in resp.json["clusters"]["mx-prod"]["actions"]] == [("node1", "promote")]
    assert (cluster.passive("node1"), cluster.passive("node2")) == (False, True)


def test_demote_happens_before_promote(cluster: Cluster) -> None:
    # VIP on node2 (node1 in FAULT), but node1's MaxScale is the active one
    cluster.states["node1"].set("FAULT", False, 150, check_ok=False)
    cluster.states["node2"].set("MASTER", True, 100)
    cluster.set_passive("node2", True)
    resp = post(cluster.app(), payload("MaxScaleMasterPassive"))
    actions = [(a["node"], a["action"], a["result"]) for a in resp.json["clusters"]["mx-prod"]["actions"]]
    assert actions == [("node1", "demote", "success"), ("node2", "promote", "success")]
    t1 = cluster.patches("node1")[0]["time"]
    t2 = cluster.patches("node2")[0]["time"]
    assert t1 < t2


def test_failed_patch_is_a_5xx_and_recorded_and_nothing_promoted(cluster: Cluster) -> None:
    cluster.states["node1"].set("FAULT", False, 150, check_ok=False)
    cluster.states["node2"].set("MASTER", True, 100)
    cluster.set_passive("node2", True)
    control(cluster.emulators["node1"], "fault", {"mode": "error", "methods": ["PATCH"]})
    client = cluster.app()
    resp = post(client, payload())
    assert resp.status_code == 500
    actions = resp.json["clusters"]["mx-prod"]["actions"]
    assert [(a["node"], a["action"], a["result"]) for a in actions] == [
        ("node1", "demote", "failure"),
        ("node2", "promote", "skipped"),
    ]
    assert cluster.passive("node2") is True  # never two active
    metrics = client.get("/metrics").get_data(as_text=True)
    assert (
        'mxha_remediator_actions_total{action="demote",cluster="mx-prod",node="node1",result="failure"} 1.0' in metrics
    )
    audit = [json.loads(line) for line in cluster.audit.read_text().splitlines()]
    assert audit[-1]["results"][0]["result"] == "failure"


def test_no_candidate_changes_nothing(cluster: Cluster) -> None:
    cluster.states["node1"].set("FAULT", False, 150, check_ok=False)
    cluster.states["node2"].set("BACKUP", False, 100)
    resp = post(cluster.app(), payload("MaxScaleVIPMissing"))
    assert resp.status_code == 200 and resp.json["clusters"]["mx-prod"]["verdict"] == "no-candidate"
    assert cluster.patches("node1") == cluster.patches("node2") == []


def test_config_sync_refuses(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    control(cluster.emulators["node2"], "maxscale", {"config_sync_cluster": "MariaDB-Monitor"})
    resp = post(cluster.app(), payload())
    assert resp.json["clusters"]["mx-prod"]["verdict"] == "refused"
    assert "config sync" in resp.json["clusters"]["mx-prod"]["reason"]
    assert cluster.passive("node2") is False


def test_silent_other_node_blocks_promotion_until_the_grace_then_counts_as_down(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("BACKUP", False, 100)
    cluster.set_passive("node1", True)
    cluster.emulators["node2"].stop_listening()  # nothing answers on node2: MaxScale nor exporter
    cluster.states["node2"].refuse()
    client = cluster.app()
    first = post(client, payload())
    assert first.status_code == 503 and first.json["clusters"]["mx-prod"]["verdict"] == "waiting"
    assert cluster.passive("node1") is True
    import time

    time.sleep(0.8)  # the grace is 0.5 s; the remediator probes node2 meanwhile by itself
    second = post(client, payload())
    assert second.status_code == 200 and cluster.passive("node1") is False
    cluster.reconciler.close()


def test_fifty_concurrent_duplicate_deliveries_act_once(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    client = cluster.app(policy={"cooldown_seconds": 0, "unreachable_grace_seconds": 1})
    body = json.loads((ALERTMANAGER_FIXTURES / "webhook-1.body").read_text())
    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda _: post(client, body).status_code, range(50)))
    assert codes == [200] * 50
    assert len(cluster.patches("node2")) == 1 and cluster.patches("node1") == []


def test_cooldown_holds_a_second_action_on_the_same_node(make_emulator: Any, tmp_path: Path) -> None:
    c = Cluster(make_emulator, tmp_path, cooldown_seconds=60)
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        client = c.app()
        post(client, payload())
        assert c.passive("node2") is True
        c.set_passive("node2", False)  # something re-activates it at once
        resp = post(client, payload())
        assert resp.json["clusters"]["mx-prod"]["actions"][0]["reason"] == "cooldown"
        assert c.passive("node2") is False
    finally:
        c.close()


def test_circuit_breaker_opens_after_n_actions(make_emulator: Any, tmp_path: Path) -> None:
    c = Cluster(make_emulator, tmp_path, circuit_max_actions=3, circuit_window_seconds=60)
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        client = c.app()
        for _ in range(3):
            c.set_passive("node2", False)
            assert post(client, payload()).status_code == 200
            assert c.passive("node2") is True
        c.set_passive("node2", False)
        resp = post(client, payload())
        assert c.passive("node2") is False
        assert resp.json["clusters"]["mx-prod"]["actions"][0]["reason"] == "circuit_open"
        assert 'mxha_remediator_circuit_open{cluster="mx-prod"} 1.0' in client.get("/metrics").get_data(as_text=True)
        status = client.get("/status", headers=AUTH).json
        assert status["clusters"]["mx-prod"]["circuit"]["open"] is True
        again = post(client, payload())
        assert again.json["clusters"]["mx-prod"]["verdict"] == "circuit-open"
    finally:
        c.close()


def test_dry_run_plans_and_records_but_does_not_act(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    resp = post(cluster.app(dry_run=True), payload())
    assert resp.json["clusters"]["mx-prod"]["actions"][0]["result"] == "dry_run"
    assert cluster.passive("node2") is False and cluster.patches("node2") == []
    assert json.loads(cluster.audit.read_text().splitlines()[-1])["dry_run"] is True


def test_resolved_alert_also_reconciles(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("BACKUP", False, 100)
    cluster.set_passive("node2", True)
    resp = post(cluster.app(), json.loads((ALERTMANAGER_FIXTURES / "webhook-3.body").read_text()))
    assert resp.status_code == 200 and resp.json["clusters"]["mx-prod"]["verdict"] == "ok"


def test_unknown_cluster_acknowledged_counted_never_acted(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    client = cluster.app()
    resp = post(client, payload(cluster="other"))
    assert resp.status_code == 200 and resp.json["ignored_alerts"] == 1 and resp.json["clusters"] == {}
    assert cluster.patches("node2") == []
    assert 'mxha_remediator_alerts_total{outcome="ignored_unknown_cluster",status="firing"} 1.0' in client.get(
        "/metrics"
    ).get_data(as_text=True)


def test_status_and_audit_hold_no_secrets(cluster: Cluster) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    client = cluster.app()
    post(client, payload())
    text = json.dumps(client.get("/status", headers=AUTH).json) + cluster.audit.read_text()
    text += client.get("/metrics").get_data(as_text=True)
    assert TOKEN not in text and "mariadb" not in text.replace("mariadbmon", "")
    assert client.get("/status").status_code == 401
    assert client.get("/healthz").status_code == 200


# -- the maxctrl driver against a stand-in that behaves as the reference says maxctrl does ----------
STANDIN = """#!/usr/bin/env python3
import json, os, sys, urllib.request, base64
args = sys.argv[1:]
password = sys.stdin.readline().strip() if "-p" in args and args[args.index("-p") + 1] == "" else None
with open(os.environ["MAXCTRL_LOG"], "a") as fh:
    fh.write(json.dumps({"argv": args, "stdin_password": password}) + "\\n")
host = args[args.index("-h") + 1]
if "," in host:
    sys.exit("Error: host lists are not allowed in this test")
cmd = args[args.index("-t") + 2:]
if cmd[:3] == ["alter", "maxscale", "passive"]:
    body = json.dumps({"data": {"attributes": {"parameters": {"passive": cmd[3] == "true"}}}}).encode()
    req = urllib.request.Request(f"http://{host}/v1/maxscale", data=body, method="PATCH")
    token = base64.b64encode(f"{args[args.index('-u') + 1]}:{password}".encode()).decode()
    req.add_header("Authorization", "Basic " + token)
    try:
        urllib.request.urlopen(req, timeout=5)
    except Exception as exc:
        print(f"Error: Server at {host} responded with {exc}", file=sys.stderr)
        sys.exit(1)
    print("OK")
    sys.exit(0)
print("Error: Unknown command", file=sys.stderr)
sys.exit(1)
"""


def test_maxctrl_driver_one_host_password_on_stdin(cluster: Cluster, tmp_path: Path) -> None:
    exe = tmp_path / "maxctrl"
    exe.write_text(STANDIN)
    exe.chmod(stat.S_IRWXU)
    log = tmp_path / "maxctrl.log"
    os.environ["MAXCTRL_LOG"] = str(log)
    for n in cluster.doc["clusters"]["mx-prod"]["nodes"]:
        n.update(driver="maxctrl", maxctrl_path=str(exe))
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    resp = post(cluster.app(), payload())
    assert resp.status_code == 200, resp.json
    assert cluster.passive("node2") is True
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 1
    argv = calls[0]["argv"]
    host = cluster.emulators["node2"].url.removeprefix("http://")
    assert argv[:4] == ["-h", host, "-u", "admin"] and argv[4:6] == ["-p", ""]
    assert argv[-4:] == ["alter", "maxscale", "passive", "true"]
    assert calls[0]["stdin_password"] == "mariadb" and "mariadb" not in argv


def test_maxctrl_failure_is_recorded(cluster: Cluster, tmp_path: Path) -> None:
    exe = tmp_path / "maxctrl"
    exe.write_text("#!/bin/sh\necho 'Error: Could not connect to MaxScale' >&2\nexit 1\n")
    exe.chmod(stat.S_IRWXU)
    for n in cluster.doc["clusters"]["mx-prod"]["nodes"]:
        n.update(driver="maxctrl", maxctrl_path=str(exe))
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    resp = post(cluster.app(), payload())
    assert resp.status_code == 500
    assert "Could not connect" in resp.json["clusters"]["mx-prod"]["actions"][0]["reason"]


# -- hostile input ------------------------------------------------------------------------------
GOOD = payload()


def _mutate(**changes: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(GOOD))
    doc.update(changes)
    return doc


def _alert(**changes: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(GOOD))
    doc["alerts"][0].update(changes)
    return doc


BAD_BODIES: list[tuple[str, bytes | str, int]] = [
    ("empty", b"", 400),
    ("truncated", json.dumps(GOOD)[:50], 400),
    ("not json", "hello", 400),
    ("array", "[]", 400),
    ("string", '"x"', 400),
    ("null", "null", 400),
    ("number", "5", 400),
    ("no version", json.dumps({k: v for k, v in GOOD.items() if k != "version"}), 400),
    ("version 3", json.dumps(_mutate(version="3")), 400),
    ("version int", json.dumps(_mutate(version=4)), 400),
    ("alerts missing", json.dumps({k: v for k, v in GOOD.items() if k != "alerts"}), 400),
    ("alerts object", json.dumps(_mutate(alerts={})), 400),
    ("alerts string", json.dumps(_mutate(alerts="x")), 400),
    ("alert not object", json.dumps(_mutate(alerts=[1])), 400),
    ("status bogus", json.dumps(_alert(status="exploded")), 400),
    ("status missing", json.dumps(_alert(status=None)), 400),
    ("labels list", json.dumps(_alert(labels=["a"])), 400),
    ("label int", json.dumps(_alert(labels={"cluster": 5})), 400),
    ("label null", json.dumps(_alert(labels={"cluster": None})), 400),
    ("huge label", json.dumps(_alert(labels={"cluster": "mx-prod", "x": "y" * 20000})), 400),
    ("fingerprint int", json.dumps(_alert(fingerprint=5)), 400),
    ("too many alerts", json.dumps(_mutate(alerts=[{"status": "firing", "labels": {}}] * 1001)), 400),
    ("deep nesting", "[" * 100000 + "]" * 100000, 413),
    ("invalid utf8", b"\xff\xfe{}", 400),
    ("nan", '{"version": "4", "alerts": NaN}', 400),
]


@pytest.mark.parametrize("name,body,code", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_malformed_bodies_get_4xx_json_and_no_action(cluster: Cluster, name: str, body: bytes | str, code: int) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    client = cluster.app(limits={"max_body_bytes": 150000})
    resp = client.post("/webhook", data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == code, resp.get_data(as_text=True)
    assert resp.json["status"] == "error" and resp.json["error"]
    assert cluster.patches("node2") == []


@pytest.mark.parametrize(
    "headers,code",
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": TOKEN}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({**AUTH, "Content-Type": "text/plain"}, 415),
        ({**AUTH, "Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_auth_and_content_type(cluster: Cluster, headers: dict[str, str], code: int) -> None:
    client = cluster.app()
    headers = {"Content-Type": "application/json", **headers}
    resp = client.post("/webhook", data=json.dumps(GOOD), headers=headers)
    assert resp.status_code == code and resp.json["status"] == "error"
    assert cluster.patches("node2") == []


def test_ten_megabyte_body_is_413(cluster: Cluster) -> None:
    resp = cluster.app().post(
        "/webhook", data=b"{" + b" " * (10 * 1024 * 1024) + b"}", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413 and resp.json["status"] == "error"


@pytest.mark.parametrize(
    "label",
    [
        "127.0.0.1:8989",
        "http://evil.example/",
        "$(reboot)",
        "; rm -rf /",
        "node1",
        "../../etc/passwd",
        "mx-prod ",
        "MX-PROD",
        "mx-prod\n",
    ],
)
def test_labels_that_look_like_hosts_or_shell_are_ignored(cluster: Cluster, label: str) -> None:
    cluster.states["node1"].set("MASTER", True, 150)
    cluster.states["node2"].set("MASTER", True, 100)
    resp = post(cluster.app(), payload(cluster=label, instance=label, node=label))
    assert resp.status_code == 200 and resp.json["ignored_alerts"] == 1
    assert cluster.patches("node2") == []


def test_basic_auth_works_too(cluster: Cluster) -> None:
    import base64

    client = cluster.app(auth={"basic_user": "am", "basic_password": "pw"})
    ok = base64.b64encode(b"am:pw").decode()
    bad = base64.b64encode(b"am:nope").decode()
    assert post(client, GOOD, {"Authorization": f"Basic {ok}"}).status_code == 200
    assert post(client, GOOD, {"Authorization": f"Basic {bad}"}).status_code == 401


def test_config_requires_auth_unless_told(tmp_path: Path) -> None:
    from mxha.config import ConfigError

    nodes = [{"name": "a", "state_url": "http://127.0.0.1:1/state", "maxscale": {"url": "http://127.0.0.1:1"}}]
    with pytest.raises(ConfigError, match="^auth:"):
        parse_remediator_config({"clusters": {"c": {"nodes": nodes}}})
    with pytest.raises(ConfigError, match=r"clusters\.c\.nodes\[0\]\.state_url"):
        parse_remediator_config(
            {"auth": {"bearer_token": "x"}, "clusters": {"c": {"nodes": [{**nodes[0], "state_url": "ftp://x"}]}}}
        )


def test_recheck_catches_an_undone_correction_without_a_new_delivery(make_emulator: Any, tmp_path: Path) -> None:
    import time

    c = Cluster(make_emulator, tmp_path, recheck_seconds=0.5)
    try:
        c.states["node1"].set("MASTER", True, 150)
        c.states["node2"].set("BACKUP", False, 100)
        client = c.app()
        assert post(client, payload()).status_code == 200
        assert c.passive("node2") is True
        c.set_passive("node2", False)  # undone behind our back; Alertmanager will not resend for a while
        deadline = time.monotonic() + 5
        while c.passive("node2") is False and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.passive("node2") is True
        audit = [json.loads(line) for line in c.audit.read_text().splitlines()]
        assert any(t["status"] == "recheck" for a in audit for t in a["triggers"])
        c.reconciler.close()
    finally:
        c.close()


def test_an_unwritable_audit_log_stops_start_up_with_one_line(tmp_path: Path) -> None:
    """The production image's non-root user met this first: the example's /var/lib/mxha could not
    be created, and the remediator died with a traceback instead of naming the key."""
    import subprocess
    import sys

    (tmp_path / "not-a-dir").write_text("")
    nodes = [{"name": "a", "state_url": "http://127.0.0.1:1/state", "maxscale": {"url": "http://127.0.0.1:1"}}]
    doc = {
        "auth": {"bearer_token": "x"},
        "audit_log": str(tmp_path / "not-a-dir" / "audit.jsonl"),  # unwritable even for root
        "clusters": {"c": {"nodes": nodes}},
    }
    (tmp_path / "rem.yml").write_text(json.dumps(doc))
    mxha = Path(sys.executable).with_name("mxha")
    proc = subprocess.run(
        [str(mxha), "remediator", "--config.file", str(tmp_path / "rem.yml"), "--web.listen-address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"mxha remediator: config error: audit_log: cannot write {tmp_path}/not-a-dir/audit.jsonl: File exists"
    ]

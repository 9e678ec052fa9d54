"""The whole loop in the lab: real keepalived, Prometheus, Alertmanager, exporters, emulators and
the remediator; every scenario of both modes (one lab up per mode, one after the other), the
dashboard's queries, `mxha lab status --json`, teardown."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import REPO
from pair import LAB_SUBNET

from mxha.lab.lab import Lab
from mxha.lab.netns import have_netns, run
from mxha.lab.scenarios import DEMO_LABS, SCENARIOS, WRITER_SKIPPED

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(have_netns() is not None, reason=f"the lab: {have_netns()}"),
]
LAB_DIR = Path("/run/mxha-lab-test")
TEST_RELOCK_BACKOFF = 15


def mxha(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mxha", *args], capture_output=True, text=True, timeout=timeout)


def exited(pid: int) -> bool:
    """Gone, or a zombie: it has exited and waits for its parent (``lab up`` started it and has exited
    itself, so it is init's, which reaps in its own time)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


@pytest.fixture(scope="module", params=DEMO_LABS, ids=[f"{m}-{n}nodes-{r}replicas" for m, n, r in DEMO_LABS])
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    mode, count, replicas = request.param
    # locks mode: a quarter of MaxScale's one-minute no-relock back-off, which two scenarios wait out
    # (make demo keeps the minute); every check of theirs is relative to the lab's back-off
    backoff = ["--relock-backoff", str(TEST_RELOCK_BACKOFF)] if mode == "locks" else []
    up = ["lab", "up", "--mode", mode, "--nodes", str(count), "--replicas", str(replicas), *backoff]
    up += ["--subnet", LAB_SUBNET]  # the harness tests run beside the lab's on the other half
    proc = mxha(*up, "--dir", str(LAB_DIR))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((LAB_DIR / "harness.json").read_text())
    try:
        yield Lab(LAB_DIR)
    finally:
        pids = [p["pid"] for p in json.loads((LAB_DIR / "harness.json").read_text())["processes"]]
        down = mxha("lab", "down", "--dir", str(LAB_DIR))
        # down removes every process (by pid), namespace, veth and file the lab made
        assert down.returncode == 0, down.stderr
        assert not LAB_DIR.exists()
        assert not any(ns.startswith("mxha-") for ns in run("ip", "netns", "list").stdout.split())
        assert "mxha-h" not in run("ip", "-br", "link").stdout
        assert all(exited(pid) for pid in pids + [p["pid"] for p in record["processes"]])
        assert mxha("lab", "status", "--dir", str(LAB_DIR)).returncode == 1


def test_status_json_follows_the_contract(lab: Lab) -> None:
    proc = mxha("lab", "status", "--json", "--dir", str(LAB_DIR))
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["up"] is True and doc["cluster"] == "lab" and doc["mode"] == lab.mode
    assert [(n["name"], n["address"], n["exporter_url"], n["maxscale_url"]) for n in doc["nodes"]] == [
        (f"node{i}", f"198.51.100.1{i}", f"http://198.51.100.1{i}:9843", f"http://198.51.100.1{i}:8989")
        for i in range(1, len(lab.nodes) + 1)
    ]
    assert doc["prometheus_url"] == "http://198.51.100.2:9090"
    assert doc["alertmanager_url"] == "http://198.51.100.2:9093"
    assert doc["remediator_url"] == "http://198.51.100.2:9844"
    ports = [9844, 9845][: lab.replicas]
    assert doc["remediator_urls"] == [f"http://198.51.100.2:{p}" for p in ports]
    assert doc["alertmanager_urls"] == [f"http://198.51.100.2:{p}" for p in [9093, 9095][: lab.replicas]]
    for key in ("webhook_token_file", "remediator_config_file"):
        assert Path(doc[key]).exists()
    for node in doc["nodes"]:
        assert Path(node["config_file"]).exists() and node["namespace"] in run("ip", "netns", "list").stdout


def test_up_twice_is_safe(lab: Lab) -> None:
    proc = mxha("lab", "up", "--dir", str(LAB_DIR))  # no --mode: the running lab's
    assert proc.returncode == 0 and "already up" in proc.stdout and f"mode {lab.mode}" in proc.stdout


def test_hooks_work_inside_a_node_namespace(lab: Lab) -> None:
    cfg = str(LAB_DIR / "node2" / "node.yml")
    proc = subprocess.run(
        ["ip", "netns", "exec", "mxha-node2", sys.executable, "-m", "mxha", "check", "--config.file", cfg],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("OK: 2/2 expected servers listed")


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


# series that exist only while something is wrong: a healthy lab gives no data for them
EMPTY_WHEN_HEALTHY = ("ALERTS", "mxha_setup_hazard")


def test_every_dashboard_query_runs_and_exporter_queries_return_data(lab: Lab) -> None:
    dashboard = json.loads((REPO / "dashboards" / "mxha-pair.json").read_text())
    prom = lab.describe()["prometheus_url"]
    import time

    for title, expr in _queries(dashboard):
        q = expr.replace("$cluster", "lab").replace("$__rate_interval", "15s")
        may_be_empty = any(name in expr for name in EMPTY_WHEN_HEALTHY)
        deadline = time.monotonic() + 20  # Prometheus scrapes every second; give it a few rounds
        while True:
            resp = requests.get(f"{prom}/api/v1/query", params={"query": q}, timeout=5)
            assert resp.status_code == 200, f"{title}: {resp.text}"
            result = resp.json()["data"]["result"]
            if result or may_be_empty or time.monotonic() > deadline:
                break
            time.sleep(1)
        if not may_be_empty:
            assert result, f"{title}: no data for {q}"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(lab: Lab, name: str) -> None:
    scenario = SCENARIOS[name]
    if lab.mode not in scenario.modes or len(lab.nodes) not in scenario.counts or lab.replicas not in scenario.replicas:
        pytest.skip(
            f"{name} runs on another lab (modes {scenario.modes}, nodes {scenario.counts}, {scenario.replicas})"
        )
    if len(lab.nodes) == 3 and 2 in scenario.counts:
        pytest.skip(f"{name} runs on the 2-node lab here (make demo runs it on the 3-node lab too: time)")
    proc = mxha("lab", "scenario", name, "--dir", str(LAB_DIR), timeout=400)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert "verdict: PASSED" in proc.stdout
    assert WRITER_SKIPPED in proc.stdout  # the emulator lab says why no client wrote through the VIP
    assert re.search(r"\[PASS\] no remediator promotion left two MaxScales active", proc.stdout)

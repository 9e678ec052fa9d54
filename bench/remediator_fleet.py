"""One remediator serving a fleet: N clusters of two nodes, every cluster firing at once, each
notification delivered twice (two Alertmanager peers that each think they should send it).

    .venv/bin/python bench/remediator_fleet.py [--clusters 100] [--threads 8]

The fleet (2N emulated MaxScales and 2N ``/state`` endpoints, each on its own loopback port) lives
in ONE helper process, so the machine's two cores measure the remediator, not 4N processes; its
CPU is printed separately. The remediator is the real ``mxha remediator`` process, as users run
it. Every cluster needs exactly one action: even clusters have a backup whose MaxScale came back
active (node2 BACKUP and active), odd ones a split brain (both MASTER with the VIP, both active,
node1 the higher priority); in both, node2 must be demoted and nothing else.

Prints answer times (p50/p99/max) against Alertmanager's 10 s, the actions each cluster got
(from the emulators' own request logs: PATCHes received), the remediator's CPU and RSS.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import yaml
from measure import cpu_seconds, pct, rss_mib  # bench/, the scripts' own folder

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
TOKEN = secrets.token_hex(16)
ALERTMANAGER_TIMEOUT = 10.0


# -- the fleet, in one helper process ------------------------------------------------------------
def fleet_main(clusters: int, ready: Any, stop: Any) -> None:
    from helpers import StateServer

    from mxha.lab.emulator import Emulator, EmulatorConfig

    nodes: dict[str, dict[str, Any]] = {}
    for c in range(clusters):
        for n, prio in (("node1", 150), ("node2", 100)):
            emu = Emulator(EmulatorConfig(port=0, nodename=n, passive=False))
            emu.start()
            state = StateServer(n)
            split = c % 2 == 1
            state.set("MASTER" if (n == "node1" or split) else "BACKUP", n == "node1" or split, prio)
            nodes[f"c{c:03d}/{n}"] = {"maxscale": emu.url, "state": state.url, "_keep": (emu, state)}
    ready.put({k: {"maxscale": v["maxscale"], "state": v["state"]} for k, v in nodes.items()})
    stop.wait()
    for v in nodes.values():
        emu, state = v["_keep"]
        state.close()
        emu.stop()


def payload(cluster: str, alertname: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "remediator",
        "groupKey": f'{{}}:{{cluster="{cluster}", alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "groupLabels": {"cluster": cluster, "alertname": alertname},
        "commonLabels": {"cluster": cluster, "alertname": alertname},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": alertname, "cluster": cluster, "severity": "critical"},
                "annotations": {},
                "startsAt": "2026-11-27T20:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus",
                "fingerprint": f"{abs(hash(cluster + alertname)):016x}"[:16],
            }
        ],
    }


def run(clusters: int, threads: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Queue(), ctx.Event()
    fleet = ctx.Process(target=fleet_main, args=(clusters, ready, stop), daemon=True)
    fleet.start()
    urls = ready.get(timeout=120)
    work = Path(tempfile.mkdtemp(prefix="mxha-fleet-"))
    cfg = {
        "listen_address": "127.0.0.1:0",
        "audit_log": str(work / "audit.jsonl"),
        "auth": {"bearer_token": TOKEN},
        "policy": {"cooldown_seconds": 10, "recheck_seconds": 0, "state_timeout": 1.5},
        "limits": {"threads": threads, "request_budget_seconds": 8},
        "clusters": {
            f"c{c:03d}": {
                "nodes": [
                    {
                        "name": n,
                        "state_url": urls[f"c{c:03d}/{n}"]["state"],
                        "maxscale": {"url": urls[f"c{c:03d}/{n}"]["maxscale"], "password": "mariadb"},
                    }
                    for n in ("node1", "node2")
                ]
            }
            for c in range(clusters)
        },
    }
    from helpers import free_port

    port = free_port()
    cfg["listen_address"] = f"127.0.0.1:{port}"
    (work / "rem.yml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mxha", "remediator", "--config.file", str(work / "rem.yml"), "--log.level", "warning"]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        rss_idle = rss_mib(proc.pid)
        # every cluster's faults are in place: node2's MaxScale is active everywhere (the default)
        deliveries = [
            (f"c{c:03d}", "MaxScaleBackupActive" if c % 2 == 0 else "MaxScaleVRRPSplitBrain", peer)
            for c in range(clusters)
            for peer in ("am-a", "am-b")  # each Alertmanager peer sends its own copy
        ]
        latencies: list[float] = []
        codes: dict[int, int] = {}
        lock = threading.Lock()

        def deliver(item: tuple[str, str, str]) -> None:
            cluster, alertname, _peer = item
            t0 = time.perf_counter()
            try:
                r = requests.post(
                    base + "/webhook",
                    json=payload(cluster, alertname),
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=30,
                )
                code = r.status_code
            except requests.RequestException:
                code = 0
            with lock:
                latencies.append(time.perf_counter() - t0)
                codes[code] = codes.get(code, 0) + 1

        cpu0, fleet_cpu0 = cpu_seconds(proc.pid), cpu_seconds(fleet.pid or 0)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(deliveries)) as pool:  # all at once, as a storm
            list(pool.map(deliver, deliveries))
        storm = time.perf_counter() - started
        cpu = cpu_seconds(proc.pid) - cpu0
        fleet_cpu = cpu_seconds(fleet.pid or 0) - fleet_cpu0
        rss_after = rss_mib(proc.pid)
        # what each cluster got: PATCHes the emulators received
        per_cluster: dict[str, dict[str, int]] = {}
        for key, u in urls.items():
            cluster, node = key.split("/")
            reqs = requests.get(u["maxscale"] + "/__emulator__/requests", timeout=5).json()["requests"]
            patches = sum(1 for q in reqs if q["method"] == "PATCH")
            per_cluster.setdefault(cluster, {})[node] = patches
        exact = sum(1 for v in per_cluster.values() if v == {"node1": 0, "node2": 1})
        return {
            "clusters": clusters,
            "deliveries": len(deliveries),
            "threads": threads,
            "storm_s": storm,
            "p50": statistics.median(latencies),
            "p99": pct(latencies, 99),
            "max": max(latencies),
            "within_timeout": sum(1 for x in latencies if x < ALERTMANAGER_TIMEOUT),
            "codes": codes,
            "exact": exact,
            "wrong": {k: v for k, v in per_cluster.items() if v != {"node1": 0, "node2": 1}},
            "cpu": cpu,
            "fleet_cpu": fleet_cpu,
            "rss_idle": rss_idle,
            "rss_after": rss_after,
        }
    finally:
        proc.terminate()
        proc.wait(10)
        stop.set()
        fleet.join(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=8, help="the remediator's limits.threads (default 8)")
    args = ap.parse_args()
    r = run(args.clusters, args.threads)
    print(f"\n### One remediator, {r['clusters']} clusters, every one firing at once, each delivery twice\n")
    print(
        "| deliveries | limits.threads | answers p50 (s) | p99 (s) | max (s) | inside 10 s | HTTP codes | "
        "clusters with exactly one action (demote node2) | storm wall (s) | remediator CPU (s) | "
        "fleet process CPU (s) | remediator RSS idle / after (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {r['deliveries']} | {r['threads']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | "
        f"{r['within_timeout']}/{r['deliveries']} | {json.dumps(r['codes'], sort_keys=True)} | "
        f"{r['exact']}/{r['clusters']} | {r['storm_s']:.2f} | {r['cpu']:.2f} | {r['fleet_cpu']:.2f} | "
        f"{r['rss_idle']:.1f} / {r['rss_after']:.1f} |"
    )
    if r["wrong"]:
        print(f"\nclusters that did not get exactly one demotion of node2: {r['wrong']}")
    return 0 if not r["wrong"] and r["within_timeout"] == r["deliveries"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""What the peer-aware ``mxha notify`` costs, per call, as keepalived runs it (a fresh process of the
installed ``mxha`` script), printed as a table (never asserted in tests).

    .venv/bin/python bench/notify.py [--runs 20]

This node's MaxScale is an emulator on loopback; the peer is a ``/state`` server built from the
exporter's own model. The live VRRP level is the kernel's: ``keepalived.vips: [127.0.0.1]`` (on
this host: MASTER). Each case runs ``--runs`` times; wall time is start to exit, CPU is the
child's user+system time. The outcome column counts how the calls ended (the emulator's mode).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import StateServer, write_node_config  # noqa: E402

from mxha.lab.emulator import Emulator, EmulatorConfig  # noqa: E402
from mxha.lab.node import installed_mxha  # noqa: E402

NO_PEERS_BUDGET_MS = 300.0  # wall, per call: keepalived runs notify scripts one after the other

CASES: list[tuple[str, str]] = [
    ("no peers (today's behaviour)", "none"),
    ("better active peer: yields", "better"),
    ("peer refuses connections", "refuse"),
    ("peer /state hangs (bounded by peer_budget 1 s)", "hang"),
    ("peer's MaxScale errors (per its exporter)", "error"),
    ("worse active peer that never steps down (waits the budget)", "worse"),
]


def passive(emulator: Emulator) -> bool:
    import requests

    return bool(requests.get(f"{emulator.url}/__emulator__/state", timeout=2).json()["passive"])


def run_case(case: str, runs: int, work: Path) -> dict[str, Any]:
    emulator = Emulator(EmulatorConfig(port=0))
    emulator.start()
    peer = StateServer("node1")
    try:
        peer.set("MASTER", True, 150 if case != "worse" else 50)
        if case == "refuse":
            peer.refuse()
        elif case == "hang":
            peer.set_fault("hang")
        elif case == "error":
            peer.maxscale_up, peer.maxscale_error_kind = False, "http"
        peers = [] if case == "none" else [{"name": "node1", "state_url": peer.url}]
        cfg = write_node_config(
            work / f"{case}.yml",
            emulator.url,
            node="node2",
            keepalived={"governing_instance": "VI_1", "vips": ["127.0.0.1"]},
            notify={"timeout": 5.0, "peer_budget": 1.0, "state_file": str(work / f"{case}-state.json")},
            peers=peers,
        )
        walls, cpus, ends = [], [], {"active": 0, "passive": 0}
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(
                [installed_mxha(), "notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "MASTER", "100"],
                capture_output=True,
                check=False,
                timeout=30,
            )
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
            ends["passive" if passive(emulator) else "active"] += 1
        last = json.loads((work / f"{case}-state.json").read_text())["history"][-1]["result"]
        return {"walls": walls, "cpus": cpus, "ends": ends, "last": last}
    finally:
        peer.close()
        emulator.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    print(f"mxha notify MASTER, {args.runs} runs per case, {os.cpu_count()} CPUs\n")
    print("| case | wall median (ms) | wall p99 (ms) | CPU median (ms) | ended active / passive |")
    print("|---|---|---|---|---|")
    no_peers = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for title, case in CASES:
            r = run_case(case, args.runs, Path(tmp))
            print(
                f"| {title} | {statistics.median(r['walls']) * 1000:.0f} | {pct(r['walls'], 0.99) * 1000:.0f} | "
                f"{statistics.median(r['cpus']) * 1000:.0f} | {r['ends']['active']} / {r['ends']['passive']} |"
            )
            if case == "none":
                no_peers = statistics.median(r["walls"]) * 1000
    verdict = "met" if no_peers <= NO_PEERS_BUDGET_MS else "MISSED"
    budget = f"mxha notify without peers, median wall <= {NO_PEERS_BUDGET_MS:.0f} ms"
    print(f"\nBudget: {budget}: {no_peers:.0f} ms, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

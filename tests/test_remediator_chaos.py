"""Chaos: random faults on both nodes, interleaved with concurrent webhook deliveries.

Two MaxScale emulators and two /state servers over real HTTP; a fixed seed; about 40 s of
faults: slow, hanging, dripping, 401 and 500 answers, refused connections, VRRP/VIP/check
flips, `passive` flipped behind the remediator's back, notify-style activations.

Afterwards the timeline of every `passive` change (the emulators record each one, with the time
and whether it came over the REST API, i.e. from the remediator, or behind its back) is replayed
against the audit trail and the requests the remediator made, and checked:
- no action of the remediator turned a state into one with two active MaxScales, except a
  promotion over a node counted down after the grace (the documented trade-off, counted apart,
  with how fast that node was demoted once it answered again);
- no action of the remediator turned a state with one active into one with none, except a
  correction dropped half-way because the state changed under it, or a demotion sent without an
  answer that MaxScale applied after the remediator gave up on it (its audit record says
  ``outcome: unknown``; no promotion follows a demotion not confirmed; both counted apart, the
  latter with how long until a node was active again);
- both only where nothing changed behind its back between its last read and its action (a
  change inside that window is a race no reader can see, and is counted apart);
- once the faults stop, with a valid candidate, it ends with exactly one active.
"demoted_after_answering_again_s" is, for each node promoted over while counted down, the time from
its MaxScale answering usably again to the remediator demoting it (other faults, or no candidate
at that moment, may rightly delay it).
The counts are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import bisect
import json
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import control
from test_remediator import Cluster, payload, post

SEED = int(os.environ.get("MXHA_CHAOS_SEED", "20261127"))  # set it to replay or explore a schedule
CHAOS_SECONDS = 40.0
NODES = ("node1", "node2")
MAXSCALE_FAULTS = ["none"] * 14 + ["slow", "hang", "drip", "reject_auth", "error", "refuse"]
STATE_FAULTS = ["none"] * 12 + ["error", "hang", "drip", "garbage", "refuse"]
PICTURES = [  # (vrrp, holds_vip, check_ok) per node
    {"node1": ("MASTER", True, True), "node2": ("BACKUP", False, True)},
    {"node1": ("MASTER", True, True), "node2": ("BACKUP", False, True)},
    {"node1": ("BACKUP", False, True), "node2": ("MASTER", True, True)},
    {"node1": ("MASTER", True, True), "node2": ("MASTER", True, True)},  # split brain
    {"node1": ("FAULT", False, False), "node2": ("MASTER", True, True)},
    {"node1": ("BACKUP", False, True), "node2": ("BACKUP", False, True)},  # no candidate
    {"node1": ("MASTER", True, False), "node2": ("BACKUP", False, True)},  # VIP holder fails its check
]


class Chaos:
    def __init__(self, c: Cluster, rng: random.Random) -> None:
        self.c = c
        self.rng = rng
        self.ms_fault = {n: "none" for n in NODES}
        self.listening = {n: True for n in NODES}
        self.picture = PICTURES[0]
        self.log: list[tuple[float, str, str]] = []  # (time, node, what)
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        node = self.rng.choice(NODES)
        roll = self.rng.random()
        if roll < 0.04:
            self.hung_active_backup()
        elif roll < 0.2:
            self.maxscale_fault(node, self.rng.choice(MAXSCALE_FAULTS))
        elif roll < 0.35:
            self.state_fault(node, self.rng.choice(STATE_FAULTS))
        elif roll < 0.55:
            self.picture = self.rng.choice(PICTURES)
            for n, (vrrp, vip, check) in self.picture.items():
                self.c.states[n].set(vrrp, vip, check_ok=check)
            self.log.append((time.time(), "*", f"vrrp {self.picture}"))
        elif roll < 0.7:  # notify-style: the MASTERs go active, the others passive
            for n, (vrrp, _, _) in self.picture.items():
                self.set_passive(n, vrrp != "MASTER")
        else:  # behind the tools' back
            self.set_passive(node, self.rng.random() < 0.5)

    def hung_active_backup(self) -> None:
        """The case the grace is for: node2 active, then silent (MaxScale and what its exporter says),
        while node1 holds the VIP with a passive MaxScale."""
        self.picture = PICTURES[0]
        for n, (vrrp, vip, check) in self.picture.items():
            self.c.states[n].set(vrrp, vip, check_ok=check)
        self.maxscale_fault("node1", "none")
        self.state_fault("node1", "none")
        self.state_fault("node2", "none")
        self.set_passive("node2", False)
        self.set_passive("node1", True)
        if self.listening["node2"]:
            self.maxscale_fault("node2", "refuse")
        self.c.states["node2"].maxscale_up = False
        self.log.append((time.time(), "*", "hung active backup"))

    def set_passive(self, node: str, passive: bool) -> None:
        emulator = self.c.emulators[node]
        if self.listening[node]:
            control(emulator, "maxscale", {"passive": passive})
        else:  # a MaxScale nobody can reach still has a mode: change it where it lives
            with emulator.state.lock:
                emulator.state.set_passive(passive, "control")
        self.log.append((time.time(), node, f"passive={passive}"))

    def maxscale_fault(self, node: str, fault: str) -> None:
        emulator = self.c.emulators[node]
        if fault == "refuse":
            if self.listening[node]:
                emulator.stop_listening()
                self.listening[node] = False
                # its own exporter sees the same silence, most of the time
                self.c.states[node].maxscale_up = self.rng.random() < 0.3
                self.c.states[node].maxscale_error_kind = "no_answer"
        else:
            if not self.listening[node]:
                emulator.start()
                self.listening[node] = True
                self.c.states[node].maxscale_up = True
            control(emulator, "fault", {"mode": fault, "delay": 0.05 if fault == "drip" else 0.15})
            if fault in ("none", "slow") and self.ms_fault[node] not in ("none", "slow"):
                self.log.append((time.time(), node, "answers again"))
        self.ms_fault[node] = fault
        self.log.append((time.time(), node, f"maxscale {fault}"))

    def state_fault(self, node: str, fault: str) -> None:
        state = self.c.states[node]
        if fault == "refuse":
            state.refuse()
        else:
            state.listen()
            state.set_fault(fault, drip_delay=0.05)
        self.log.append((time.time(), node, f"state {fault}"))

    def calm(self) -> None:
        for n in NODES:
            self.maxscale_fault(n, "none")
            self.state_fault(n, "none")
        self.picture = PICTURES[0]
        for n, (vrrp, vip, check) in self.picture.items():
            self.c.states[n].set(vrrp, vip, check_ok=check)


def _timeline(c: Cluster) -> list[tuple[float, str, bool, str]]:
    changes = []
    for n in NODES:
        # read in-process: a node that stopped listening still has its history
        with c.emulators[n].state.lock:
            recorded = list(c.emulators[n].state.mode_changes)
        for m in recorded:
            changes.append((m["time"], n, m["passive"], m["via"]))
    return sorted(changes)


def test_chaos_never_two_active_never_none_by_our_hand(make_emulator: Any, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    c = Cluster(
        make_emulator,
        tmp_path,
        unreachable_grace_seconds=0.8,
        probe_seconds=0.2,
        recheck_seconds=0.5,
        cooldown_seconds=0,
        circuit_max_actions=8,
        circuit_window_seconds=4,
        state_timeout=0.4,
    )
    for node in c.doc["clusters"]["mx-prod"]["nodes"]:
        node["maxscale"].update(read_timeout=0.4, connect_timeout=0.3)
    chaos = Chaos(c, rng)
    try:
        chaos.set_passive("node2", True)
        client = c.app(limits={"request_budget_seconds": 1.5})
        reads: dict[str, list[float]] = {n: [] for n in NODES}  # when the remediator read each mode
        seen_reads: set[tuple[str, float]] = set()

        def collect_reads() -> None:
            for n in NODES:
                with c.emulators[n].state.lock:
                    served = list(c.emulators[n].state.requests)
                for r in served:
                    if r["method"] == "GET" and r["path"].startswith("/v1/maxscale") and r["status"] == 200:
                        if (n, r["time"]) not in seen_reads:
                            seen_reads.add((n, r["time"]))
                            bisect.insort(reads[n], r["time"])

        stop = threading.Event()
        answers: Counter[int] = Counter()
        answer_times: list[float] = []

        def deliver(seed: int) -> None:
            local = random.Random(seed)
            while not stop.is_set():
                started = time.monotonic()
                resp = post(client, payload(local.choice(["MaxScaleVRRPSplitBrain", "MaxScaleMasterPassive"])))
                answer_times.append(time.monotonic() - started)
                answers[resp.status_code] += 1
                stop.wait(local.uniform(0.05, 0.4))

        senders = [threading.Thread(target=deliver, args=(SEED + i,)) for i in range(3)]
        for t in senders:
            t.start()
        end = time.monotonic() + CHAOS_SECONDS
        next_collect = time.monotonic() + 3
        while time.monotonic() < end:
            chaos.step()
            time.sleep(rng.uniform(0.05, 0.35))
            if time.monotonic() > next_collect:
                collect_reads()
                next_collect = time.monotonic() + 3
        stop.set()
        for t in senders:
            t.join()
        chaos.calm()
        chaos.set_passive("node1", True)  # a start that needs a correction: node1 keeper, passive
        chaos.set_passive("node2", False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            post(client, payload())
            states = {n: c.passive(n) for n in NODES}
            if states == {"node1": False, "node2": True}:
                break
            time.sleep(0.3)
        final = {n: c.passive(n) for n in NODES}
        c.reconciler.close()
        time.sleep(0.3)
        collect_reads()
        report = check_timeline(_timeline(c), c.audit, reads, chaos.log)
        report.update(
            steps=chaos.steps,
            deliveries=dict(answers),
            slowest_answer=round(max(answer_times), 3),
        )
        print("\nchaos report:", json.dumps(report, indent=1, sort_keys=True))
        assert report["violations"] == [], report["violations"]
        assert final == {"node1": False, "node2": True}, final
        assert report["reconciles"] > 50 and report["actions"].get("success", 0) > 10  # it did act
        assert max(answer_times) < 1.5 + 1.0
    finally:
        c.close()


def check_timeline(
    timeline: list[tuple[float, str, bool, str]],
    audit_path: Path,
    reads: dict[str, list[float]],
    chaos_log: list[tuple[float, str, str]],
) -> dict[str, Any]:
    audit = [json.loads(line) for line in audit_path.read_text().splitlines()]
    results = [(r["time"], r, rec) for rec in audit for r in rec["results"]]
    behind_back = {n: sorted(t for t, node, passive, via in timeline if node == n and via == "control") for n in NODES}

    def changed_behind_back(node: str, before: float) -> bool:
        """Did something else change ``node``'s mode after the remediator last read it, before ``before``?"""
        i = bisect.bisect_right(reads[node], before) - 1
        last_read = reads[node][i] if i >= 0 else 0.0
        j = bisect.bisect_right(behind_back[node], last_read)
        return j < len(behind_back[node]) and behind_back[node][j] <= before

    def record_of(node: str, action: str, at: float) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The audit entry of the action that made the change at ``at``: recorded after it, or, for a
        change sent without an answer (``outcome: unknown``), recorded before MaxScale applied it."""
        for t, r, rec in results:
            if r["node"] == node and r["action"] == action and r["result"] == "success" and 0 <= t - at < 2.0:
                return r, rec
        for t, r, rec in results:
            if r["node"] == node and r["action"] == action and r.get("outcome") == "unknown" and -2.0 < t - at < 2.0:
                return r, rec
        return None

    def nearby(node: str, at: float) -> list[str]:
        """What the audit says of ``node`` around ``at``: for a violation's message."""
        return [
            f"{t - at:+.3f}s {r['action']} {r['result']} {r.get('reason', '')[:120]!r}"
            for t, r, _ in results
            if r["node"] == node and abs(t - at) < 3.0
        ]

    passive = {n: False for n in NODES}
    violations: list[str] = []
    counts: Counter[str] = Counter()
    over_down_pending: dict[str, float] = {}
    demoted_after_return: list[float] = []
    none_since: float | None = None  # a late demotion left none active from then
    active_again_after_late_demotion: list[float] = []
    answered_again = {
        n: sorted(t for t, node, what in chaos_log if node == n and what == "answers again") for n in NODES
    }
    for t, node, value, via in timeline:
        before = dict(passive)
        passive[node] = value
        if none_since is not None and any(p is False for p in passive.values()):
            active_again_after_late_demotion.append(round(t - none_since, 3))
            none_since = None
        if via != "rest":
            if value is True:
                over_down_pending.pop(node, None)  # made passive behind our back: nothing left to measure
            continue
        others_active = [n for n in NODES if n != node and before[n] is False]
        if value is False:  # a promotion by the remediator
            found = record_of(node, "promote", t)
            over = set(found[0].get("over_down", [])) if found else set()
            for other in others_active:
                if other in over:
                    counts["promotion over a node counted down"] += 1
                    over_down_pending[other] = t
                elif changed_behind_back(other, t):
                    counts["race: other node changed after its last read"] += 1
                else:
                    violations.append(
                        f"{t:.3f} promoted {node} while {other} was active; audit of {node} nearby: {nearby(node, t)}"
                    )
        else:  # a demotion
            if node in over_down_pending:
                back = [a for a in answered_again[node] if a >= over_down_pending[node]]
                if back:
                    demoted_after_return.append(round(t - back[0], 3))
                del over_down_pending[node]
            if before[node] is False and not any(passive[n] is False for n in NODES):
                found = record_of(node, "demote", t)
                rec = found[1] if found else None
                if found is not None and found[0].get("outcome") == "unknown":
                    counts["demotion sent without an answer, applied late: no promotion followed"] += 1
                    if not any(r["action"] == "promote" and r["result"] == "success" for r in rec["results"]):
                        none_since = t
                    continue
                promoted = rec is not None and any(
                    r["action"] == "promote" and r["result"] == "success" for r in rec["results"]
                )
                dropped = rec is not None and any(
                    r["action"] == "promote" and r["result"] in ("skipped", "failure") for r in rec["results"]
                )
                keeper = (rec or {}).get("plan", {}).get("keep")
                if promoted:
                    counts["demotion then promotion (one unit)"] += 1
                elif dropped:
                    counts["correction dropped half-way: state changed or promotion failed"] += 1
                elif keeper and changed_behind_back(keeper, t):
                    counts["race: keeper changed after its last read"] += 1
                else:
                    violations.append(
                        f"{t:.3f} demoted {node}, the only active one (keeper {keeper}); audit of {node} nearby: "
                        f"{nearby(node, t)}"
                    )
    guards = Counter(rec.get("guard") for rec in audit if rec.get("guard"))
    verdicts = Counter(rec["plan"]["verdict"] for rec in audit)
    actions = Counter(r["result"] for rec in audit if not rec["shared"] for r in rec["results"])
    return {
        "violations": violations,
        "classified": dict(counts),
        "demoted_after_answering_again_s": demoted_after_return,
        "active_again_after_late_demotion_s": active_again_after_late_demotion,
        "reconciles": sum(1 for rec in audit if not rec["shared"]),
        "verdicts": dict(verdicts),
        "refusals_by_guard": dict(guards),
        "actions": dict(actions),
        "waits": verdicts.get("waiting", 0),
    }


def test_the_checker_flags_what_it_must(tmp_path: Path) -> None:
    """The timeline checker is not a test that cannot fail: fed the two bad cases, it says so."""
    audit = tmp_path / "audit.jsonl"
    records = [
        {
            "shared": False,
            "plan": {"verdict": "corrected", "keep": "node1"},
            "guard": None,
            "results": [{"time": 10.001, "node": "node1", "action": "promote", "result": "success"}],
        },
        {
            "shared": False,
            "plan": {"verdict": "corrected", "keep": "node2"},
            "guard": None,
            "results": [{"time": 20.001, "node": "node1", "action": "demote", "result": "success"}],
        },
    ]
    audit.write_text("".join(json.dumps(r) + "\n" for r in records))
    timeline = [
        (1.0, "node1", True, "control"),
        (1.0, "node2", False, "control"),  # node2 active
        (10.0, "node1", False, "rest"),  # promoted node1 while node2 active: two active, by us
        (15.0, "node2", True, "control"),
        (20.0, "node1", True, "rest"),  # demoted the only active one, no promotion: none, by us
    ]
    reads = {"node1": [9.9, 19.9], "node2": [9.9, 19.9]}
    report = check_timeline(timeline, audit, reads, [])
    assert len(report["violations"]) == 2, report
    # the same promotion right after node2 was changed behind its back is a race, not a violation
    timeline[1] = (9.95, "node2", False, "control")
    reads = {"node1": [9.9, 19.9], "node2": [9.9, 19.95]}
    report = check_timeline(timeline, audit, reads, [])
    assert report["classified"] == {"race: other node changed after its last read": 1}, report


def test_the_checker_tells_a_late_demotion_from_a_violation(tmp_path: Path) -> None:
    """A demotion that lands after its answer was lost counts apart only when the audit says its outcome
    was unknown (and no promotion followed it); the same change with an ordinary failure is a violation."""
    audit = tmp_path / "audit.jsonl"
    demote = {"time": 20.0, "node": "node2", "action": "demote", "result": "failure", "reason": "x"}
    record = {
        "shared": False,
        "plan": {"verdict": "corrected", "keep": "node1"},
        "guard": None,
        "results": [
            {**demote, "outcome": "unknown"},
            {"time": 20.0, "node": "node1", "action": "promote", "result": "skipped", "reason": "not confirmed"},
        ],
    }
    timeline = [
        (1.0, "node1", True, "control"),
        (1.0, "node2", False, "control"),
        (20.2, "node2", True, "rest"),  # landed 0.2 s after the remediator gave up on it
        (20.9, "node1", False, "rest"),
    ]
    record2 = {**record, "results": [{"time": 20.91, "node": "node1", "action": "promote", "result": "success"}]}
    audit.write_text(json.dumps(record) + "\n" + json.dumps(record2) + "\n")
    reads = {"node1": [19.9], "node2": [19.9]}
    report = check_timeline(timeline, audit, reads, [])
    assert report["violations"] == [], report
    assert report["classified"] == {"demotion sent without an answer, applied late: no promotion followed": 1}
    assert report["active_again_after_late_demotion_s"] == [0.7]
    record["results"][0] = demote  # an ordinary failure: MaxScale said no, so it cannot have landed
    audit.write_text(json.dumps(record) + "\n" + json.dumps(record2) + "\n")
    report = check_timeline(timeline, audit, reads, [])
    assert len(report["violations"]) == 1 and "audit of node2 nearby" in report["violations"][0], report

"""keepalived runs `mxha check` and `mxha notify` for real, in network namespaces (no remediator)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pair import Pair, wait_for

from mxha.lab.netns import have_netns

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(have_netns() is not None, reason=f"real keepalived: {have_netns()}"),
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = Path("/run") / f"mxha-test-hooks-{tmp_path_factory.getbasetemp().name}"
    p = Pair(workdir, source="json", hooks=True)
    try:
        p.up()
        p.wait_roles("node1", timeout=30)
        yield p
    finally:
        p.down()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def modes(p: Pair) -> tuple[bool, bool]:
    return p.emulator_state("node1")["passive"], p.emulator_state("node2")["passive"]


def test_notify_sets_modes_at_start(pair: Pair) -> None:
    wait_for(lambda: modes(pair) == (False, True), 20, "node1 active, node2 passive")
    # the record is written once the call has set MaxScale's mode: a moment after the mode shows
    wait_for(lambda: pair.notify_state("node1")["governing_state"] == "MASTER", 10, "node1's MASTER recorded")
    wait_for(lambda: pair.notify_state("node2")["governing_state"] == "BACKUP", 10, "node2's BACKUP recorded")


def test_failover_and_preemption_with_the_hooks(pair: Pair) -> None:
    pair.h.stop_process("emulator-node1", sig=9)
    wait_for(lambda: pair.vrrp("node1") == "FAULT" and pair.vrrp("node2") == "MASTER", 20, "VIP to node2")
    wait_for(lambda: pair.emulator_state("node2")["passive"] is False, 15, "node2 active")
    # MaxScale was dead during node1's FAULT notify: it gave up within its timeout and recorded that
    last = wait_for(
        lambda: (
            pair.notify_state("node1")["history"][-1]["state"] == "FAULT" and pair.notify_state("node1")["history"][-1]
        ),
        10,
        "FAULT recorded",
    )
    assert last["ok"] is False and "gave up" in last["result"]
    assert pair.notify_state("node1")["desired_passive"] is True
    pair.start_emulator("node1")  # state file kept: it comes back in the mode it persisted
    wait_for(lambda: pair.vrrp("node1") == "MASTER" and pair.vrrp("node2") == "BACKUP", 25, "preemption")
    wait_for(lambda: modes(pair) == (False, True), 15, "node1 active, node2 passive again")
    wait_for(lambda: pair.notify_state("node1")["governing_state"] == "MASTER", 10, "node1's MASTER recorded")

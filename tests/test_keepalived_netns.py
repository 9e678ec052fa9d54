"""The exporter against REAL keepalived in network namespaces: steady state, FAULT, split brain."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pair import Pair, wait_for

from mxha.lab.netns import have_netns

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(have_netns() is not None, reason=f"real keepalived tests: {have_netns()}"),
]


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(params=["json", "text", "fifo"], scope="module")
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = Path("/run") / f"mxha-test-{request.param}-{tmp_path_factory.getbasetemp().name}"
    p = Pair(workdir, source=request.param)
    try:
        p.up()
        p.wait_roles("node1", timeout=25)
        yield p
    finally:
        p.down()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def test_steady_state(pair: Pair) -> None:
    m1, m2 = pair.metrics("node1"), pair.metrics("node2")
    assert metric(m1, "mxha_keepalived_up") == 1
    assert metric(m1, "mxha_vrrp_state", vrrp_instance="VI_1", vrid="51", interface="eth0", state="MASTER") == 1
    assert metric(m1, "mxha_vrrp_state", vrrp_instance="VI_1", state="BACKUP") == 0
    assert metric(m2, "mxha_vrrp_state", vrrp_instance="VI_1", state="BACKUP") == 1
    assert metric(m1, "mxha_vrrp_priority", vrrp_instance="VI_1", vrid="51") == 150
    assert metric(m2, "mxha_vrrp_base_priority", vrrp_instance="VI_1", vrid="51") == 100
    assert metric(m1, "mxha_vip_present", vip=pair.vip, vrrp_instance="VI_1", governing="true") == 1
    assert metric(m2, "mxha_vip_present", vip=pair.vip, vrrp_instance="VI_1", governing="true") == 0
    # VI_2 goes the other way round and is not the governing instance
    wait_for(
        lambda: metric(pair.metrics("node2"), "mxha_vip_present", vip=pair.vip2, governing="false") == 1,
        15,
        "VI_2 on node2",
    )
    assert metric(m1, "mxha_maxscale_up") == 1 and metric(m1, "mxha_check_success") == 1
    if pair.source != "fifo":
        assert metric(m1, "mxha_vrrp_became_master_total", vrrp_instance="VI_1") >= 1  # type: ignore[operator]
    if pair.source == "text":
        assert metric(m1, "mxha_vrrp_script_status", script="chk_maxscale") == 1
    state = pair.state("node1")
    assert state["keepalived"]["source"] == pair.source
    vi1 = next(i for i in state["keepalived"]["instances"] if i["name"] == "VI_1")
    assert vi1["governing"] is True and vi1["vips"] == [{"address": pair.vip, "present": True}]


def test_no_secret_anywhere(pair: Pair) -> None:
    for name in ("node1", "node2"):
        for path in ("/metrics", "/state", "/check"):
            body = requests.get(pair.exporter_url(name) + path, timeout=5).text
            assert "s3cretPW" not in body and "mariadb" not in body.replace("mariadbmon", "")


def test_exposition_passes_promtool(pair: Pair) -> None:
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=pair.metrics("node1"), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_failing_check_puts_node1_in_fault_and_moves_the_vip(pair: Pair) -> None:
    pair.set_check("node1", False)
    try:
        wait_for(lambda: pair.vrrp("node1") == "FAULT" and pair.vrrp("node2") == "MASTER", 20, "node1 FAULT")
        m1 = pair.metrics("node1")
        assert metric(m1, "mxha_vrrp_state", vrrp_instance="VI_1", state="FAULT") == 1
        wait_for(lambda: metric(pair.metrics("node2"), "mxha_vip_present", vip=pair.vip) == 1, 10, "VIP on node2")
        assert metric(pair.metrics("node1"), "mxha_vip_present", vip=pair.vip) == 0
        if pair.source == "text":
            assert metric(m1, "mxha_vrrp_script_status", script="chk_maxscale") == 0
    finally:
        pair.set_check("node1", True)
    pair.wait_roles("node1", timeout=25)


def test_real_split_brain_both_master_both_hold_the_vip(pair: Pair) -> None:
    pair.h.block_vrrp("node2")
    try:
        wait_for(lambda: pair.vrrp("node1") == "MASTER" and pair.vrrp("node2") == "MASTER", 20, "both MASTER")
        for name in ("node1", "node2"):
            wait_for(
                lambda n=name: metric(pair.metrics(n), "mxha_vip_present", vip=pair.vip) == 1, 10, f"VIP on {name}"
            )
    finally:
        pair.h.unblock_vrrp("node2")
    pair.wait_roles("node1", timeout=25)


def test_keepalived_stopped_gives_up_0_with_reason(pair: Pair) -> None:
    pid = pair.h.pid_of("keepalived-node2")
    assert pid is not None
    pair.h.stop_process("keepalived-node2")
    try:
        wait_for(lambda: metric(pair.metrics("node2"), "mxha_keepalived_up") == 0, 10, "keepalived_up 0")
        state = pair.state("node2")
        assert state["keepalived"]["up"] is False and state["keepalived"]["instances"] == []
        assert re.search(r"not running|gone|no new dump|pid", state["keepalived"]["error"])
        # VIP presence is still asked of the kernel, for the VIPs last seen
        assert metric(pair.metrics("node2"), "mxha_vip_present", vip=pair.vip) == 0
    finally:
        pair._start_keepalived("node2")
    wait_for(lambda: metric(pair.metrics("node2"), "mxha_keepalived_up") == 1, 15, "keepalived back")

"""Setup hazards as pure rules (``mxha.hazards``): on the RECORDED documents of a real MaxScale
24.02.4 pair (``shared/fixtures/maxscale-24.02.4-pair``), on sane documents (silent), and on the
config, file and ``/state`` facts that show the node and cluster hazards."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from conftest import SHARED

from mxha.hazards import (
    CATALOGUE,
    auto_failover_on,
    client_view_hazards,
    clock_offset,
    clock_skew_hazards,
    lock_wait_timeout,
    maxscale_hazards,
    mode_mismatch_hazards,
    priority_tie_hazards,
    state_dir_hazards,
)

PAIR = SHARED / "fixtures" / "maxscale-24.02.4-pair"


def body(name: str) -> Any:
    return json.loads((PAIR / f"{name}.json").read_text())["body"]


def names(found: tuple[Any, ...]) -> set[str]:
    return {h.hazard for h in found}


# (the /v1/maxscale and the monitor document of one MaxScale at one recorded point)
PASSIVE_STEPS = [
    ("22-A-get-maxscale-passive", "19-A-get-monitor-5s-after-passive"),  # step 4: A passive, lock primary
    ("50-B-get-maxscale-passive", "52-B-get-monitor-passive-before-cut"),  # step 7: B passive, lock primary
]
ACTIVE_STEPS = [
    ("05-A-get-maxscale-start", "01-A-get-monitor-start"),
    ("06-B-get-maxscale-start", "02-B-get-monitor-start"),
    ("24-A-get-maxscale-reactivated", "25-A-get-monitor-after-passive-false"),
    ("51-A-get-maxscale-active", "53-A-get-monitor-before-cut"),
    ("75-B-get-maxscale-reactivated", "71-B-get-monitor-15s-after-restore-server2"),
]


@pytest.mark.parametrize(("maxscale", "monitor"), PASSIVE_STEPS)
def test_recorded_passive_steps_show_their_hazards_and_nothing_else(maxscale: str, monitor: str) -> None:
    found, skipped = maxscale_hazards(body(maxscale), body(monitor))
    assert names(found) == {"locks_not_partition_safe", "failcount_below_lock_minimum", "passive_with_locks"}
    assert skipped == ()
    failcount = next(h for h in found if h.hazard == "failcount_below_lock_minimum")
    # the numbers of the recording: failcount 5 at 1 s against the 7 s both logs announced
    assert "failcount 5" in failcount.evidence and "wait_timeout 7s" in failcount.evidence


@pytest.mark.parametrize(("maxscale", "monitor"), ACTIVE_STEPS)
def test_recorded_active_steps_show_the_lock_hazards_only(maxscale: str, monitor: str) -> None:
    found, skipped = maxscale_hazards(body(maxscale), body(monitor))
    assert names(found) == {"locks_not_partition_safe", "failcount_below_lock_minimum"}
    assert skipped == ()


def test_recorded_pair_has_no_services_or_listeners_so_the_client_view_is_not_checked() -> None:
    found, skipped = client_view_hazards({"A": (None, None), "B": (None, None)})
    assert found == ()
    assert {s.what for s in skipped} == {"clients_see_different_services", "identical_version_string"}
    assert all("/v1/services" in s.why and "/v1/listeners" in s.why for s in skipped)


def test_wait_timeout_is_what_the_recorded_maxscale_logged() -> None:
    params = body("01-A-get-monitor-start")["data"]["attributes"]["parameters"]
    assert lock_wait_timeout(params) == 7  # "will set connection wait_timeout to 7 seconds"
    log = (PAIR / "mxsA-maxscale.log").read_text()
    assert "wait_timeout to 7 seconds" in log


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"monitor_interval": "2000ms", "backend_read_timeout": "3s", "backend_write_timeout": "5s"}, 12),
        ({"monitor_interval": "1500ms", "backend_read_timeout": "1s", "backend_write_timeout": "1s"}, 5),
        ({"monitor_interval": "100ms", "backend_read_timeout": "1s", "backend_write_timeout": "1s"}, 5),  # floor
        ({"monitor_interval": "1000ms", "backend_timeout": "4000ms"}, 9),  # the one-timeout form
        ({"monitor_interval": 1000, "backend_read_timeout": 0, "backend_write_timeout": 0}, 21),  # no timeout
        ({"monitor_interval": "1000ms"}, None),
    ],
)
def test_wait_timeout_rule(params: dict[str, Any], expected: int | None) -> None:
    assert lock_wait_timeout(params) == expected


@pytest.mark.parametrize(
    ("value", "on"), [(True, True), (False, False), ("true", True), ("false", False), ("safe", True), ("x", None)]
)
def test_auto_failover_both_forms(value: Any, on: bool | None) -> None:
    assert auto_failover_on(value) is on


def sane_locks() -> tuple[dict[str, Any], dict[str, Any]]:
    """The recorded pair's documents with a partition-safe setup: majority_of_all over three
    servers, failcount 10, active."""
    ms = copy.deepcopy(body("05-A-get-maxscale-start"))
    mon = copy.deepcopy(body("01-A-get-monitor-start"))
    params = mon["data"]["attributes"]["parameters"]
    params.update(cooperative_monitoring_locks="majority_of_all", failcount=10)
    return ms, mon


def test_sane_locks_setup_leaves_only_the_semisync_reminder() -> None:
    found, skipped = maxscale_hazards(*sane_locks())
    assert [(h.hazard, h.severity) for h in found] == [("locks_need_semisync", "info")]
    assert skipped == ()


def test_sane_passive_setup_is_silent() -> None:
    ms, mon = sane_locks()
    params = mon["data"]["attributes"]["parameters"]
    params.update(cooperative_monitoring_locks="none", enforce_read_only_servers=True, enforce_writable_master=True)
    ms["data"]["attributes"]["parameters"]["passive"] = True
    assert maxscale_hazards(ms, mon) == ((), ())


@pytest.mark.parametrize("auto_failover", [True, "true", "safe"])
def test_failover_without_enforcement(auto_failover: Any) -> None:
    ms, mon = sane_locks()
    params = mon["data"]["attributes"]["parameters"]
    params.update(cooperative_monitoring_locks="none", auto_failover=auto_failover, enforce_writable_master=True)
    found, _ = maxscale_hazards(ms, mon)
    assert names(found) == {"failover_without_read_only_enforcement"}
    assert "enforce_read_only_servers=False" in found[0].evidence
    params["auto_failover"] = "false" if isinstance(auto_failover, str) else False
    assert maxscale_hazards(ms, mon)[0] == ()


def test_majority_of_all_over_two_servers_has_no_fault_tolerance() -> None:
    ms, mon = sane_locks()
    mon["data"]["relationships"]["servers"]["data"] = mon["data"]["relationships"]["servers"]["data"][:2]
    found, _ = maxscale_hazards(ms, mon)
    assert names(found) == {"locks_no_fault_tolerance", "locks_need_semisync"}


def test_failcount_boundary() -> None:
    ms, mon = sane_locks()
    params = mon["data"]["attributes"]["parameters"]
    params["failcount"] = 8  # 8 s = 7 s wait_timeout + one 1 s interval: not more, so a hazard
    assert "failcount_below_lock_minimum" in names(maxscale_hazards(ms, mon)[0])
    params["failcount"] = 9
    assert "failcount_below_lock_minimum" not in names(maxscale_hazards(ms, mon)[0])


def test_documents_not_read_are_not_checked_never_passed() -> None:
    found, skipped = maxscale_hazards(None, None)
    assert found == ()
    assert {s.what for s in skipped} >= {"passive_with_locks", "locks_not_partition_safe"}


def test_every_hazard_of_the_contract_has_a_fix_and_a_source() -> None:
    contract = (SHARED / "contract.md").read_text()
    listed = contract.split("`mxha_setup_hazard`", 1)[1].split("\n", 1)[0]
    for name in CATALOGUE:
        assert f"`{name}`" in listed, name
        assert CATALOGUE[name].fix and CATALOGUE[name].source


def services(version: str | None = None, servers: tuple[str, ...] = ("server1", "server2")) -> dict[str, Any]:
    params: dict[str, Any] = {"cluster": None}
    if version is not None:
        params["version_string"] = version
    return {
        "data": [
            {
                "id": "RW-Split-Router",
                "attributes": {"router": "readwritesplit", "parameters": params},
                "relationships": {"servers": {"data": [{"id": s, "type": "servers"} for s in servers]}},
            }
        ]
    }


def listeners(port: int = 3306) -> dict[str, Any]:
    return {
        "data": [
            {
                "id": "RW-Split-Listener",
                "attributes": {"parameters": {"port": port, "protocol": "MariaDBProtocol"}},
                "relationships": {"services": {"data": [{"id": "RW-Split-Router", "type": "services"}]}},
            }
        ]
    }


def test_client_view_same_services_own_version_strings_is_silent() -> None:
    docs = {"node1": (services("10.11-node1"), listeners()), "node2": (services("10.11-node2"), listeners())}
    assert client_view_hazards(docs) == ((), ())


def test_client_view_differences() -> None:
    docs = {"node1": (services(), listeners(3306)), "node2": (services(servers=("server1",)), listeners(3307))}
    found, _ = client_view_hazards(docs)
    assert names(found) == {"clients_see_different_services", "identical_version_string"}
    diff = next(h for h in found if h.hazard == "clients_see_different_services")
    assert "service RW-Split-Router" in diff.evidence and "listener RW-Split-Listener" in diff.evidence


def test_client_view_needs_two_nodes() -> None:
    found, skipped = client_view_hazards({"node1": (services(), listeners())})
    assert found == () and {s.what for s in skipped} == {"clients_see_different_services", "identical_version_string"}


def test_state_dir_owner() -> None:
    user = {0: "root", 990: "keepalived_script"}.__getitem__
    assert state_dir_hazards("/var/lib/mxha", 990, {"notify-state.json": 990}, 990, user) == ()
    found = state_dir_hazards("/var/lib/mxha", 990, {"notify-state.json": 0, "a": 990}, None, user)
    assert names(found) == {"state_dir_owner"} and "notify-state.json is root's" in found[0].evidence
    found = state_dir_hazards("/var/lib/mxha", 990, {}, 0, user)
    assert "keepalived runs scripts as root" in found[0].evidence


def test_priority_tie() -> None:
    assert priority_tie_hazards({"node1": 150, "node2": 100}) == ()
    assert priority_tie_hazards({"node1": 150, "node2": None}) == ()
    found = priority_tie_hazards({"node1": 100, "node2": 100, "node3": 150})
    assert names(found) == {"priority_tie"} and "node1, node2 at 100" in found[0].evidence


def test_clock_skew() -> None:
    assert clock_offset(100.2, 100.0, 100.5) == 0.0  # inside the round trip: no claim
    assert clock_offset(98.0, 100.0, 100.5) == -2.0
    assert clock_skew_hazards({"node2": clock_offset(100.9 + 1.0, 100.0, 100.9)}) == ()  # exactly 1 s: fine
    found = clock_skew_hazards({"node2": clock_offset(103.0, 100.0, 100.5)})
    assert names(found) == {"clock_skew"} and "node2 +2.5s" in found[0].evidence


def test_mode_mismatch() -> None:
    assert mode_mismatch_hazards({"node1": "locks", "node2": "locks"}, {"node1": "majority_of_all"}) == ()
    assert mode_mismatch_hazards({"node1": "passive"}, {"node1": "none", "node2": None}) == ()
    found = mode_mismatch_hazards({"node1": "passive", "node2": "passive"}, {"node1": "majority_of_running"})
    assert names(found) == {"mode_mismatch"} and "node1's MaxScale locks=majority_of_running" in found[0].evidence
    assert mode_mismatch_hazards({"node1": "passive", "node2": "locks"}, {}) != ()


def test_every_hazard_has_its_runbook_paragraph() -> None:
    from conftest import REPO

    runbook = (REPO / "alerts" / "runbooks.md").read_text()
    section = runbook.split("## MaxScaleSetupHazard", 1)[1]
    paragraphs = set(re.findall(r"^### (\w+)$", section, re.M))
    assert paragraphs == set(CATALOGUE)


def test_the_dashboard_shows_the_hazards_per_node() -> None:
    from conftest import REPO

    dash = json.loads((REPO / "dashboards" / "mxha-pair.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] if p["type"] == "table" for t in p.get("targets", [])]
    assert any("mxha_setup_hazard" in e and "instance, hazard, severity" in e for e in exprs)

"""keepalived dump parsers against real 2.2.7 dumps, format variants of other versions, and fuzz."""

from __future__ import annotations

import json

import pytest
from conftest import KEEPALIVED_FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from mxha.exporter.keepalived import (
    DumpParseError,
    parse_data_dump,
    parse_fifo_line,
    parse_json_dump,
    parse_stats_dump,
    parse_vip,
)
from mxha.vip import addresses_from_ip_json

SCENARIOS = ("steady", "node1-check-failing", "split-brain")


def fixture(scenario: str, node: str, name: str) -> str:
    return (KEEPALIVED_FIXTURES / scenario / node / name).read_text()


EXPECTED_VI1 = {  # (scenario, node) -> (state, effective priority, VIP installed per the kernel)
    ("steady", "node1"): ("MASTER", 150, True),
    ("steady", "node2"): ("BACKUP", 100, False),
    ("node1-check-failing", "node1"): ("FAULT", 150, False),
    ("node1-check-failing", "node2"): ("MASTER", 100, True),
    ("split-brain", "node1"): ("MASTER", 150, True),
    ("split-brain", "node2"): ("MASTER", 100, True),
}


@pytest.mark.parametrize("scenario,node", sorted(EXPECTED_VI1))
def test_json_and_text_dumps_agree_with_each_other_and_the_kernel(scenario: str, node: str) -> None:
    state, prio, installed = EXPECTED_VI1[(scenario, node)]
    from_json = {i.name: i for i in parse_json_dump(fixture(scenario, node, "keepalived.json"))}
    instances, scripts = parse_data_dump(fixture(scenario, node, "keepalived.data"))
    from_text = {i.name: i for i in instances}
    for inst in (from_json["VI_1"], from_text["VI_1"]):
        assert (inst.name, inst.vrid, inst.interface, inst.state, inst.priority) == (
            "VI_1",
            51,
            "v1" if node == "node1" else "v2",
            state,
            prio,
        )
        assert inst.base_priority == (150 if node == "node1" else 100)
        assert [v.address for v in inst.vips] == ["192.0.2.100"]
    assert from_json["VI_2"].vrid == 52 and [v.address for v in from_text["VI_2"].vips] == ["192.0.2.101"]
    assert from_json["VI_1"].last_transition == from_text["VI_1"].last_transition
    kernel = addresses_from_ip_json(fixture(scenario, node, "ip-addr.json"))
    assert ("192.0.2.100" in kernel) is installed
    assert from_json["VI_1"].vips[0].installed is installed
    stats = parse_stats_dump(fixture(scenario, node, "keepalived.stats"))
    assert stats["VI_1"]["became_master"] == from_json["VI_1"].became_master
    script_status = {s.name: s.status for s in scripts}
    assert script_status == {"chk_maxscale": "BAD" if (scenario, node) == ("node1-check-failing", "node1") else "GOOD"}


def test_parsed_objects_never_hold_the_password() -> None:
    for scenario in SCENARIOS:
        for node in ("node1", "node2"):
            parsed = parse_json_dump(fixture(scenario, node, "keepalived.json"))
            text, scripts = parse_data_dump(fixture(scenario, node, "keepalived.data"))
            assert "s3cretPW" not in repr(parsed) + repr(text) + repr(scripts)


def test_json_version_2_wrapper() -> None:
    v1 = json.loads(fixture("steady", "node1", "keepalived.json"))
    v2 = json.dumps({"version": 2, "vrrp": v1})
    assert [i.name for i in parse_json_dump(v2)] == ["VI_1", "VI_2"]


STEADY = fixture("steady", "node1", "keepalived.data")


def test_pre_2_2_5_vip_header() -> None:
    old = STEADY.replace("Virtual IP (1):", "Virtual IP :")
    instances, _ = parse_data_dump(old)
    assert [v.address for v in instances[0].vips] == ["192.0.2.100"]


def test_1_3_x_listening_device_and_vip_count_header() -> None:
    old = STEADY.replace("   Interface = v1\n", "   Listening device = eth9\n").replace(
        "Virtual IP (1):", "Virtual IP = 1"
    )
    old = old.replace("------< VRRP Topology >------\n", "")
    old = old.split("------< Global definitions >------")[1]
    instances, _ = parse_data_dump(old)
    vi1 = instances[0]
    assert vi1.interface == "eth9" and [v.address for v in vi1.vips] == ["192.0.2.100"]


def test_2_3_3_tracker_faults_and_2_4_masked_password() -> None:
    new = STEADY.replace("Number of interface and track script faults", "Number of tracker faults")
    new = new.replace("Password = s3cretPW", "Password = ********")
    instances, scripts = parse_data_dump(new)
    assert instances[0].state == "MASTER" and scripts[0].status == "GOOD"


def test_vip_line_with_brd_and_ipv6() -> None:
    assert parse_vip("192.0.2.100/24 brd 192.0.2.255 dev eth0 scope global set") == parse_vip(
        "192.0.2.100/24 dev eth0 scope global set"
    )
    v6 = parse_vip("2001:db8::10/64 dev eth0 scope global")
    assert (v6.address, v6.interface, v6.installed) == ("2001:db8::10", "eth0", False)
    with pytest.raises(DumpParseError):
        parse_vip("999.1.1.1/24 dev eth0")


def test_stats_without_newlines_as_2_0_5_printed_them() -> None:
    squashed = fixture("steady", "node1", "keepalived.stats").replace("\n", " ")
    assert parse_stats_dump(squashed) == {
        "VI_1": {"became_master": 1, "released_master": 0},
        "VI_2": {"became_master": 0, "released_master": 0},
    }


def test_fifo_lines() -> None:
    lines = (KEEPALIVED_FIXTURES / "notify-fifo-node1.log").read_text().splitlines()
    events = [parse_fifo_line(line) for line in lines]
    assert events[0] is not None and (events[0].name, events[0].state, events[0].priority) == ("VI_2", "BACKUP", 100)
    assert {e.state for e in events if e} >= {"MASTER", "BACKUP", "FAULT", "MASTER_RX_LOWER_PRI"}
    assert parse_fifo_line("garbage") is None
    assert parse_fifo_line('GROUP "G1" MASTER') is not None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[",
        "{}",
        "[1]",
        '[{"data": {}}]',
        '[{"data": {"iname": "x", "state": 9, "vrid": 1}}]',
        '[{"data": {"iname": "x", "state": "2"}}]',
    ],
)
def test_bad_json_dumps_raise_parse_error(text: str) -> None:
    with pytest.raises(DumpParseError):
        parse_json_dump(text)


def test_truncated_json_dump_raises() -> None:
    whole = fixture("steady", "node1", "keepalived.json")
    for cut in range(1, len(whole) - 1, 97):
        with pytest.raises(DumpParseError):
            parse_json_dump(whole[:cut])


def test_truncated_text_dump_is_never_taken_as_a_different_truth() -> None:
    # A prefix either fails or yields instances whose fields match the full dump's
    full = {i.name: i for i in parse_data_dump(STEADY)[0]}
    for cut in range(0, len(STEADY), 53):
        try:
            partial, _ = parse_data_dump(STEADY[:cut])
        except DumpParseError:
            continue
        for inst in partial:
            ref = full[inst.name]
            assert (inst.state, inst.vrid, inst.priority) == (ref.state, ref.vrid, ref.priority)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_fuzz_text_parsers_raise_only_parse_errors(text: str) -> None:
    for parser in (parse_json_dump, parse_stats_dump):
        try:
            parser(text)
        except DumpParseError:
            pass
    try:
        parse_data_dump(text)
    except DumpParseError:
        pass
    parse_fifo_line(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(STEADY)), st.text(max_size=50))
def test_fuzz_mutated_real_dump(pos: int, noise: str) -> None:
    mutated = STEADY[:pos] + noise + STEADY[pos:]
    try:
        parse_data_dump(mutated)
    except DumpParseError:
        pass
    j = fixture("steady", "node1", "keepalived.json")
    try:
        parse_json_dump(j[: pos % len(j)] + noise + j[pos % len(j) :])
    except DumpParseError:
        pass


@pytest.mark.parametrize(
    "raw",
    ["::1", "fe80::fc:ff:fe00:1", "2001:db8::10", "2001:db8:0:1:0:0:0:1", "::ffff:198.51.100.7", "2001:db8::1:0:0:1"],
)
def test_ipv6_addresses_from_netlink_are_written_as_ipaddress_writes_them(raw: str) -> None:
    """The kernel's bytes through inet_ntop (glibc's form), then the canonical one, remembered."""
    import ipaddress
    import socket

    from mxha import vip

    ntop = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, raw))
    expected = str(ipaddress.ip_address(raw))
    assert vip._canonical_ipv6(ntop) == expected
    assert vip._IPV6_CANONICAL[ntop] == expected
    assert vip._canonical_ipv6(ntop) == expected  # from memory


def test_the_ipv6_memory_stays_bounded() -> None:
    from mxha import vip

    for i in range(3000):
        vip._canonical_ipv6(f"2001:db8::{i:x}")
    assert 0 < len(vip._IPV6_CANONICAL) <= 1024
    assert vip._canonical_ipv6("2001:db8::ff") == "2001:db8::ff"

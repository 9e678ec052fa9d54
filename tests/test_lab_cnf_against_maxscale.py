"""The maxscale.cnf the lab writes for `lab up --maxscale`, held against what a real MaxScale 24.02.4
declares (../shared/fixtures): a key it does not know stops MaxScale at start-up, and the stand-in
the tests run cannot tell, so the names are checked here against the recorded documents."""

from __future__ import annotations

import configparser
from typing import Any

import pytest
from conftest import FIXTURES, load_fixture

from mxha.lab import database, maxscale_cnf

ACCOUNTS = database.DatabaseAccounts("mon-pw", "svc-pw", "client-pw", "repl-pw")
SERVERS = [database.ServerAddress(name, f"198.51.100.{21 + i}", 3306) for i, name in enumerate(database.SERVER_NAMES)]
PAIR_CNF = FIXTURES / "maxscale-24.02.4-pair" / "mxsA.cnf"


def written(mode: str) -> configparser.ConfigParser:
    cnf = configparser.ConfigParser(interpolation=None, strict=True)
    cnf.read_string(maxscale_cnf.maxscale_cnf("node1", "198.51.100.11", mode, SERVERS, ACCOUNTS))
    return cnf


def recorded() -> configparser.ConfigParser:
    cnf = configparser.ConfigParser(interpolation=None, strict=True)
    cnf.read_string(PAIR_CNF.read_text())
    return cnf


def declared_monitor_parameters() -> set[str]:
    module: dict[str, Any] = load_fixture("get-module-mariadbmon.json")["body"]["data"]["attributes"]
    return {p["name"] for p in module["parameters"]} | {"type", "module"}


@pytest.mark.parametrize("mode", ["passive", "locks"])
def test_every_monitor_key_is_a_parameter_mariadbmon_declares(mode: str) -> None:
    monitor = written(mode)[maxscale_cnf.MONITOR]
    unknown = set(monitor) - declared_monitor_parameters()
    assert not unknown, f"MaxScale 24.02.4's mariadbmon has no {sorted(unknown)}"
    # the values MaxScale takes as enums are ones it lists
    assert monitor["cooperative_monitoring_locks"] in ("none", "majority_of_all", "majority_of_running")


@pytest.mark.parametrize("mode", ["passive", "locks"])
def test_every_global_key_is_one_maxscale_reports(mode: str) -> None:
    reported = set(load_fixture("get-maxscale-active.json")["body"]["data"]["attributes"]["parameters"])
    unknown = set(written(mode)["maxscale"]) - reported
    assert not unknown, f"MaxScale 24.02.4 reports no global {sorted(unknown)}"


@pytest.mark.parametrize("mode", ["passive", "locks"])
def test_servers_service_and_listener_use_the_keys_a_real_maxscale_started_with(mode: str) -> None:
    """The recorded pair's cnf started two real MaxScales; the lab's sections of the same kinds use
    its keys (plus version_string, which the seed tutorial sets per node)."""
    ours, theirs = written(mode), recorded()

    def keys_of(cnf: configparser.ConfigParser, kind: str) -> set[str]:
        return {key for name in cnf.sections() if cnf[name].get("type") == kind for key in cnf[name]}

    assert keys_of(ours, "server") <= keys_of(theirs, "server")
    assert keys_of(ours, "service") <= keys_of(theirs, "service") | {"version_string"}
    assert keys_of(ours, "listener") <= keys_of(theirs, "listener")
    assert {ours[name]["type"] for name in ours.sections() if name != "maxscale"} == {
        "server",
        "monitor",
        "service",
        "listener",
    }

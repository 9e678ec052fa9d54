"""The contracts between components, each ONE model: /state and the notify record.

Round trips, golden documents (a rename shows up here first), and the one governing-instance rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from conftest import control
from helpers import write_node_config
from test_hooks import notify, state_of

from mxha.exporter.keepalived import KeepalivedState, Vip, VrrpInstance
from mxha.exporter.node import MaxScaleReading, Snapshot
from mxha.hazards import Hazard
from mxha.healthcheck import CheckResult
from mxha.model import NodeState, NodeVip, NotifyView, StateFormatError, governing_instance
from mxha.notify_record import NotifyEntry, NotifyRecord

T = 1795649168.0


def _pair_view() -> Any:
    from conftest import SHARED

    from mxha.maxscale import status_from_documents

    pair = SHARED / "fixtures" / "maxscale-24.02.4-pair"

    def body(name: str) -> Any:
        return json.loads((pair / name).read_text())["body"]["data"]

    return status_from_documents(
        body("06-B-get-maxscale-start.json")["attributes"],
        [body("34-B-get-monitor-3s-after-cut-server1.json")],
        body("33-B-get-servers-3s-after-cut-server1.json"),
    )


PAIR_VIEW = _pair_view()


def fixed_snapshot(**changes: Any) -> Snapshot:
    """A snapshot with fixed times, as the exporter builds it from keepalived, the kernel and MaxScale."""
    inst = VrrpInstance("VI_1", 51, "eth0", "MASTER", 150, 150, T - 60, (Vip("198.51.100.100"),))
    other = VrrpInstance("VI_2", 52, "eth0", "BACKUP", 100, 100, T - 60, (Vip("198.51.100.101"),))
    snap = Snapshot(
        node="node1",
        time=T,
        keepalived=KeepalivedState((inst, other), (), "json", T - 0.01),
        keepalived_error=None,
        keepalived_read_at=T - 0.01,
        keepalived_duration=0.001,
        governing_instance="VI_1",
        vips=(
            NodeVip("198.51.100.100", "VI_1", True, True),
            NodeVip("198.51.100.101", "VI_2", False, False),
        ),
        vip_error=None,
        check=CheckResult(True, "2/2 expected servers listed, 2 Running", T - 0.2, 0.004),
        check_max_age=6,
        maxscale=MaxScaleReading(
            True,
            None,
            T - 0.02,
            0.003,
            passive=False,
            config_sync=False,
            version="24.02.4",
            commit="x",
            # the database as the lock holder saw it 3 s into the recorded one-sided partition
            servers=PAIR_VIEW.servers,
            monitors=PAIR_VIEW.monitors,
            lock_mode=PAIR_VIEW.lock_mode,
        ),
        notify=NotifyView(T - 60, "MASTER", True, False, "passive=false set"),
        hazards=(
            Hazard(
                "follow_up_missing",
                "warning",
                "the last mxha check --follow-up ran 45s ago: a MaxScale restarted active on the backup, "
                "or a lost notify, stays uncorrected",
            ),
        ),
    )
    return Snapshot(**{**snap.__dict__, **changes})


def test_state_document_is_golden_and_round_trips(golden: Callable[[str, str], None]) -> None:
    state = fixed_snapshot().to_state()
    doc = state.to_json()
    golden("state.json", json.dumps(doc, indent=1) + "\n")
    assert NodeState.from_json(json.loads(json.dumps(doc))) == state
    assert state.governing_vrrp_state() == "MASTER" and state.holds_governing_vip()


def test_state_of_a_node_whose_sources_failed_round_trips() -> None:
    snap = fixed_snapshot(
        keepalived=None,
        keepalived_error="keepalived not running",
        keepalived_read_at=None,
        maxscale=MaxScaleReading(False, "GET /v1/maxscale: HTTP 401", T, 0.001, error_kind="auth"),
        check=None,
        notify=None,
    )
    state = snap.to_state()
    again = NodeState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state
    assert again.maxscale.error_kind == "auth" and again.governing_vrrp_state() is None
    assert again.holds_governing_vip()  # the kernel still says so: a killed keepalived leaves its VIP


def test_an_older_exporter_without_error_kind_is_unknown_never_no_answer() -> None:
    doc = fixed_snapshot(maxscale=MaxScaleReading(False, "x", T, 0.001, error_kind="no_answer")).to_state().to_json()
    del doc["maxscale"]["error_kind"]
    assert NodeState.from_json(doc).maxscale.error_kind == "unknown"


@pytest.mark.parametrize(
    "path,value",
    [(("node",), 5), (("maxscale", "up"), "yes"), (("keepalived", "instances"), {}), (("check", "success"), None)],
)
def test_a_state_with_a_wrong_type_is_refused(path: tuple[str, ...], value: Any) -> None:
    doc = fixed_snapshot().to_state().to_json()
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(StateFormatError):
        NodeState.from_json(doc)


def test_notify_record_round_trips_and_survives_damage(tmp_path: Path) -> None:
    record = NotifyRecord(node="node1")
    record.add(NotifyEntry(T, "INSTANCE", "VI_1", "MASTER", 150, 1, "passive=false set", True))
    record.add(NotifyEntry(T + 1, "INSTANCE", "VI_2", "BACKUP", 100, 2, "recorded; not the governing instance"))
    assert record.last_acted() == record.history[0]  # the newest call that acted, not the newest call
    record.add(NotifyEntry(T + 2, "RECHECK", "", "", None, 3, "already passive=true", True))
    assert sorted(record.instances) == ["INSTANCE VI_1", "INSTANCE VI_2"]  # a recheck is no instance's
    record.desired_passive = False
    path = tmp_path / "notify-state.json"
    record.write(str(path))
    assert NotifyRecord.read(str(path)) == record
    assert record.last_acted() == record.history[-1] and record.known_instances() == {"VI_1", "VI_2"}
    path.write_text("{not json")
    assert NotifyRecord.read(str(path)) == NotifyRecord()
    assert NotifyRecord.from_json({"history": [{"time": "x"}, 5]}) == NotifyRecord()


def test_the_governing_rule() -> None:
    assert governing_instance("VI_9", frozenset({"VI_1", "VI_2"})) == "VI_9"
    assert governing_instance(None, frozenset({"VI_1"})) == "VI_1"
    assert governing_instance(None, frozenset({"VI_1", "VI_2"})) is None
    assert governing_instance(None, frozenset()) is None


def test_notify_with_two_instances_and_no_governing_instance_acts_on_none(make_emulator: Any, tmp_path: Path) -> None:
    """The bug: the exporter said nothing governs, while notify flipped MaxScale on every instance."""
    emulator = make_emulator()
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)  # no keepalived.governing_instance
    assert notify(cfg, "INSTANCE", "VI_1", "MASTER", "150").returncode == 0  # the only one seen: it governs
    assert control(emulator, "state")["passive"] is False
    proc = notify(cfg, "INSTANCE", "VI_2", "BACKUP", "100")  # a second instance appears
    assert proc.returncode == 1 and "acting on none" in proc.stderr
    assert control(emulator, "state")["passive"] is False  # VI_2's BACKUP did not make it passive
    assert notify(cfg, "INSTANCE", "VI_1", "BACKUP", "150").returncode == 1
    assert control(emulator, "state")["passive"] is False  # nor does VI_1 any more: nothing governs
    assert "keepalived.governing_instance is not set" in state_of(cfg)["history"][-1]["result"]
    # and the exporter agrees: with both instances in its dump, nothing governs
    from mxha.config import load_node_config
    from mxha.exporter.node import NodeReader

    reader = NodeReader(load_node_config(str(cfg)), keepalived=None)  # type: ignore[arg-type]
    state = fixed_snapshot().keepalived
    assert reader.governing_instance(state) is None


def test_exposition_is_golden(golden: Callable[[str, str], None]) -> None:
    """The whole exposition of a fixed snapshot: a renamed or dropped series shows up here."""
    from prometheus_client import CollectorRegistry, generate_latest

    from mxha.exporter.collector import BuildInfoCollector, NodeCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(fixed_snapshot))
    registry.register(BuildInfoCollector("0.0.0-golden"))
    golden("exposition.txt", generate_latest(registry).decode())


def test_exporter_serves_openmetrics_gzip_and_name_filters(tmp_path: Path, make_emulator: Any) -> None:
    """prometheus_client's own WSGI app behind /metrics, on the real exporter process."""
    import requests
    from helpers import MxhaServer

    cfg = write_node_config(tmp_path / "n.yml", make_emulator().url, keepalived={"pid_file": str(tmp_path / "none")})
    with MxhaServer("exporter", cfg) as server:
        url = server.url + "/metrics"
        om = requests.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=5)
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert om.text.rstrip().endswith("# EOF") and "mxha_maxscale_up 1.0" in om.text
        zipped = requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=5)
        assert zipped.headers["Content-Encoding"] == "gzip" and "mxha_keepalived_up 0.0" in zipped.text
        only = requests.get(url, params={"name[]": "mxha_maxscale_up"}, timeout=5).text
        assert [line for line in only.splitlines() if not line.startswith("#")] == ["mxha_maxscale_up 1.0"]
        # what prometheus_client gives every Python process, and which mxha runs
        text = requests.get(url, timeout=5).text
        version = metadata.version("maxscale-ha")
        assert f'mxha_build_info{{version="{version}"}} 1.0' in text
        assert "process_resident_memory_bytes " in text and "process_cpu_seconds_total " in text
        assert 'python_info{implementation="CPython"' in text
        head = requests.head(url, timeout=5)
        assert head.status_code == 405 and "GET" in head.headers["Allow"]
        assert server.stop() == 0


def test_exposition_says_why_maxscale_is_not_up() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from mxha.exporter.collector import NodeCollector

    snap = fixed_snapshot(maxscale=MaxScaleReading(False, "GET /v1/maxscale: HTTP 401", T, 0.001, error_kind="auth"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(lambda: snap))
    text = generate_latest(registry).decode()
    assert 'mxha_maxscale_error_kind{kind="auth"} 1.0' in text and "mxha_maxscale_up 0.0" in text
    assert "mxha_maxscale_passive" not in text.replace("# HELP mxha_maxscale_passive", "")

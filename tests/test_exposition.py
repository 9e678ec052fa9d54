"""The exporter's exposition writer gives prometheus_client's bytes, or steps aside.

Compared with prometheus_client's own writers (the reference) over snapshots built from the
recorded keepalived dumps and MaxScale documents, and over arbitrary label values, help texts and
values; and through the exporter's WSGI app against prometheus_client's WSGI app."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from test_contracts import fixed_snapshot

from mxha.exporter import exposition
from mxha.exporter.app import ExporterApp
from mxha.exporter.collector import NodeCollector
from mxha.exporter.keepalived import KeepalivedState, parse_json_dump
from mxha.exporter.node import MaxScaleReading, Snapshot
from mxha.maxscale import status_from_documents

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
ACCEPTS = [
    PROMETHEUS_ACCEPT,
    "application/openmetrics-text;version=1.0.0;escaping=underscores",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "text/plain",
    "",
]


def body_of(path: Path) -> Any:
    return json.loads(path.read_text())["body"]["data"]


def fixture_snapshots() -> Iterator[tuple[str, Snapshot]]:
    """Every recorded keepalived dump with every recorded MaxScale view, and the failure shapes."""
    base = fixed_snapshot()
    ms = FIXTURES / "maxscale-24.02.4"
    pair = FIXTURES / "maxscale-24.02.4-pair"
    views = {
        "active": (ms / "get-maxscale-active.json", ms / "get-monitors.json", ms / "get-servers.json"),
        "passive": (
            ms / "get-maxscale-passive.json",
            ms / "get-monitors.json",
            ms / "get-servers-after-switchover.json",
        ),
        "pair-locks": (
            pair / "05-A-get-maxscale-start.json",
            pair / "08-A-get-monitor-became-primary.json",
            pair / "12-A-get-servers-5s-after-release.json",
        ),
    }
    for dump in sorted((FIXTURES / "keepalived-2.2.7").glob("*/node*/keepalived.json")):
        instances = tuple(parse_json_dump(dump.read_text()))
        for view, (maxscale, monitors, servers) in views.items():
            monitor_docs = body_of(monitors)
            status = status_from_documents(
                body_of(maxscale)["attributes"],
                monitor_docs if isinstance(monitor_docs, list) else [monitor_docs],
                body_of(servers),
            )
            reading = MaxScaleReading.of(status, base.time, 0.002)
            snap = replace(base, keepalived=KeepalivedState(instances, (), "json", base.time), maxscale=reading)
            yield f"{dump.parent.parent.name}/{dump.parent.name}/{view}", snap
    yield "keepalived-down", replace(base, keepalived=None, keepalived_error="keepalived not running")
    down = MaxScaleReading(False, "GET /v1/maxscale: HTTP 401", base.time, 0.001, error_kind="auth")
    yield "maxscale-refusing", replace(base, maxscale=down, vips=(), vip_error="netlink error 1", notify=None)


SNAPSHOTS = list(fixture_snapshots())


def registry_of(snap: Snapshot) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(lambda: snap))
    return registry


def test_the_fixtures_give_snapshots_worth_comparing() -> None:
    assert len(SNAPSHOTS) >= 8
    texts = {exposition.write(registry_of(s).collect(), "text/plain; version=0.0.4") for _, s in SNAPSHOTS}
    assert len(texts) >= 15  # some recorded dumps are alike; most are not: the comparison covers what they vary
    assert any(b'mxha_maxscale_server_lock_held{monitor="MariaDB-Monitor"' in t for t in texts if t)


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("name,snap", SNAPSHOTS, ids=[n for n, _ in SNAPSHOTS])
def test_the_same_bytes_as_prometheus_client(name: str, snap: Snapshot, accept: str) -> None:
    registry = registry_of(snap)
    encoder, content_type = choose_encoder(accept)
    ours = exposition.write(list(registry.collect()), content_type)
    assert ours is not None, "the exporter's own families must never need the fallback"
    assert ours == encoder(registry)


class Fixed:
    def __init__(self, *metrics: Metric) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


label_values = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(['a"b', "a\\b", "a\nb", "\\n", ""])
values = st.floats(allow_nan=True) | st.integers(-(10**12), 10**12) | st.sampled_from([0, 1, 1.0, 0.5, 1e21, -0.0])


@settings(max_examples=300, deadline=None)
@given(
    help_text=st.text(st.characters(codec="utf-8"), max_size=20),
    rows=st.lists(st.tuples(label_values, label_values, values), max_size=5),
    counter=st.booleans(),
    accept=st.sampled_from(ACCEPTS),
)
def test_arbitrary_label_values_help_and_values(
    help_text: str, rows: list[tuple[str, str, float]], counter: bool, accept: str
) -> None:
    family: Metric
    if counter:
        family = CounterMetricFamily("mxha_test_things", help_text, labels=["zone", "a_name"])
        for a, b, v in rows:
            family.add_metric([a, b], abs(v) if not (isinstance(v, float) and math.isnan(v)) else v)
    else:
        family = GaugeMetricFamily("mxha_test_level", help_text, labels=["zone", "a_name"])
        for a, b, v in rows:
            family.add_metric([a, b], v)
    plain = GaugeMetricFamily("mxha_test_plain", help_text, value=rows[0][2] if rows else 0)
    encoder, content_type = choose_encoder(accept)
    assert exposition.write([family, plain], content_type) == encoder(Fixed(family, plain))


def test_what_it_does_not_write_it_leaves_to_prometheus_client() -> None:
    gauge = GaugeMetricFamily("mxha_a", "a", value=1)
    openmetrics = choose_encoder("application/openmetrics-text;version=1.0.0")[1]
    assert exposition.write([gauge], openmetrics) is not None
    histogram = HistogramMetricFamily("mxha_h", "h", buckets=[("1", 1), ("+Inf", 2)], sum_value=3)
    assert exposition.write([gauge, histogram], openmetrics) is None
    assert exposition.write([GaugeMetricFamily("mxha_a", "a", value=1, unit="seconds")], openmetrics) is None
    utf8 = GaugeMetricFamily("mxha.dotted", "d", value=1)
    assert (
        exposition.write([utf8], choose_encoder("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8")[1])
        is None
    )
    # dots escaping rewrites every underscore of a valid name: prometheus_client's writer does it
    assert (
        exposition.write([gauge], choose_encoder("application/openmetrics-text;version=1.0.0;escaping=dots")[1]) is None
    )
    labelled = GaugeMetricFamily("mxha_a", "a", labels=["bad-name"])
    labelled.add_metric(["x"], 1)
    assert exposition.write([labelled], openmetrics) is None
    stamped = GaugeMetricFamily("mxha_a", "a", labels=["k"])
    stamped.add_metric(["x"], 1, timestamp=5)
    assert exposition.write([stamped], openmetrics) is None


def wsgi(
    app: Any, accept: str, query: str = "", encoding: str = "gzip", method: str = "GET"
) -> tuple[str, dict[str, str], bytes]:
    got: dict[str, Any] = {}

    def start(status: str, headers: list[tuple[str, str]], *exc: Any) -> None:
        got["status"], got["headers"] = status, dict(headers)

    environ = {
        "PATH_INFO": "/metrics",
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "HTTP_ACCEPT": accept,
        "HTTP_ACCEPT_ENCODING": encoding,
    }
    body = b"".join(app(environ, start))
    if got["headers"].get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return got["status"], got["headers"], body


class Reader:
    """What ExporterApp needs of a NodeReader, with one fixed snapshot."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def snapshot(self) -> Snapshot:
        return self.snap


@pytest.mark.parametrize(
    "accept,query,encoding",
    [
        (PROMETHEUS_ACCEPT, "", "gzip"),
        (PROMETHEUS_ACCEPT, "name[]=mxha_vrrp_state&name[]=mxha_keepalived_signals_total", "gzip"),
        ("application/openmetrics-text;version=1.0.0;escaping=dots", "", "gzip"),  # the fallback writer
        ("application/openmetrics-text;version=1.0.0;escaping=values", "", "gzip"),
        ("text/plain", "name[]=mxha_maxscale_up", "identity"),
        ("", "", ""),
    ],
)
def test_metrics_route_answers_what_prometheus_clients_app_answers(accept: str, query: str, encoding: str) -> None:
    app = ExporterApp(Reader(fixed_snapshot()))  # type: ignore[arg-type]
    reference = make_wsgi_app(app.registry)
    ours = wsgi(app, accept, query, encoding)
    assert ours == wsgi(reference, accept, query, encoding)
    assert ours[0] == "200 OK" and ours[2]
    if encoding == "gzip":
        assert wsgi(app, accept, query, encoding)[1]["Content-Encoding"] == "gzip"
    if "name[]" in query:
        assert b"mxha_check_success" not in ours[2]
    # HEAD and the rest: prometheus_client's answer (405, Allow)
    assert wsgi(app, accept, query, encoding, method="HEAD")[0] == wsgi(reference, accept, query, encoding, "HEAD")[0]

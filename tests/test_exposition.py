"""The exporter's exposition gives prometheus_client's bytes, or lets prometheus_client write them.

Compared with prometheus_client (the reference, which the exporter's process does not import)
over snapshots built from the recorded keepalived dumps and MaxScale documents, over arbitrary
label values, help texts, values and Accept headers; and through the exporter's WSGI app against
prometheus_client's WSGI app."""

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
from prometheus_client.utils import floatToGoString
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


class AsPrometheus:
    """The exporter's collector as a prometheus_client collector (its families converted)."""

    def __init__(self, collector: NodeCollector) -> None:
        self.collector = collector

    def describe(self) -> list[Metric]:
        return exposition.to_prometheus(self.collector.describe())

    def collect(self) -> list[Metric]:
        return exposition.to_prometheus(self.collector.collect())


def registry_of(collector: NodeCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AsPrometheus(collector))
    return registry


def families_of(snap: Snapshot) -> list[exposition.Family]:
    return list(NodeCollector(lambda: snap).collect())


def test_the_fixtures_give_snapshots_worth_comparing() -> None:
    assert len(SNAPSHOTS) >= 8
    texts = {exposition.write(families_of(s), "text/plain; version=0.0.4") for _, s in SNAPSHOTS}
    assert len(texts) >= 15  # some recorded dumps are alike; most are not: the comparison covers what they vary
    assert any(b'mxha_maxscale_server_lock_held{monitor="MariaDB-Monitor"' in t for t in texts if t)


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("name,snap", SNAPSHOTS, ids=[n for n, _ in SNAPSHOTS])
def test_the_same_bytes_as_prometheus_client(name: str, snap: Snapshot, accept: str) -> None:
    collector = NodeCollector(lambda: snap)
    encoder, content_type = choose_encoder(accept)
    assert exposition.negotiate(accept) == content_type
    ours = exposition.write(list(collector.collect()), content_type)
    assert ours is not None, "the exporter's own families must never need the fallback"
    assert ours == encoder(registry_of(collector))


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
    accept=st.sampled_from([*ACCEPTS, "application/openmetrics-text;version=1.0.0;escaping=dots"]),
)
def test_arbitrary_label_values_help_and_values(
    help_text: str, rows: list[tuple[str, str, float]], counter: bool, accept: str
) -> None:
    """The exporter's families against prometheus_client's, filled alike: the same bytes from
    ``write``, and from prometheus_client's writer after ``to_prometheus`` (the fallback's path)."""
    theirs: Metric
    if counter:
        ours = exposition.Family("mxha_test_things", help_text, "counter", ("zone", "a_name"))
        theirs = CounterMetricFamily("mxha_test_things", help_text, labels=["zone", "a_name"])
    else:
        ours = exposition.Family("mxha_test_level", help_text, "gauge", ("zone", "a_name"))
        theirs = GaugeMetricFamily("mxha_test_level", help_text, labels=["zone", "a_name"])
    for a, b, v in rows:
        value = abs(v) if counter and not (isinstance(v, float) and math.isnan(v)) else v
        ours.add((a, b), value)
        theirs.add_metric([a, b], value)
    plain = exposition.Family("mxha_test_plain", help_text)
    plain.add((), rows[0][2] if rows else 0)
    their_plain = GaugeMetricFamily("mxha_test_plain", help_text, value=rows[0][2] if rows else 0)
    encoder, content_type = choose_encoder(accept)
    reference = encoder(Fixed(theirs, their_plain))
    assert exposition.encode([ours, plain], accept) == (reference, content_type)
    assert encoder(Fixed(*exposition.to_prometheus([ours, plain]))) == reference
    written = exposition.write([ours, plain], content_type)
    assert written == (None if "escaping=dots" in accept else reference)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True) | st.integers(-(10**20), 10**20) | st.sampled_from([1e7, 9999999.0, 1234567.5, 1e22]))
def test_values_print_as_prometheus_client_prints_them(value: float) -> None:
    assert exposition.go_float(value) == floatToGoString(value)


entries = st.lists(
    st.tuples(
        st.sampled_from(["application/openmetrics-text", "text/plain", "text/html", "*/*", " text/plain "]),
        st.lists(
            st.sampled_from(
                [
                    "version=1.0.0",
                    "version=0.0.4",
                    "version=0.0.1",
                    "version=2.0.0",
                    "version=1.0",
                    "version=1.0.0.1",
                    "version=2.x",
                    "version=",
                    "escaping=allow-utf-8",
                    "escaping=underscores",
                    "escaping=dots",
                    "escaping=values",
                    "escaping=bogus",
                    "q=0.5",
                    "charset=utf-8",
                    " version=1.0.0 ",
                ]
            ),
            max_size=3,
        ),
    ),
    max_size=4,
)


@settings(max_examples=500, deadline=None)
@given(entries)
def test_negotiation_answers_what_prometheus_client_answers(accept_entries: list[tuple[str, list[str]]]) -> None:
    accept = ",".join(";".join([media, *params]) for media, params in accept_entries)
    assert exposition.negotiate(accept) == choose_encoder(accept)[1]


def test_a_version_prometheus_client_cannot_compare_is_passed_over() -> None:
    """``version=1.x``: prometheus_client compares "x" with 0 and fails the scrape; here the entry is
    passed over, as one that asks for nothing this exporter writes."""
    accept = "application/openmetrics-text;version=1.x,text/plain;version=1.0.0"
    with pytest.raises(TypeError):
        choose_encoder(accept)
    assert exposition.negotiate(accept) == choose_encoder("text/plain;version=1.0.0")[1]


def test_families_are_checked_as_they_are_filled() -> None:
    with pytest.raises(ValueError, match="unsupported metric type"):
        exposition.Family("mxha_h", "h", "histogram")
    family = exposition.Family("mxha_a", "a", "gauge", ("k",))
    with pytest.raises(ValueError):
        family.add(("x", "y"), 1)
    assert exposition.Family("mxha_c", "c", "counter").names() == ("mxha_c", "mxha_c_total", "mxha_c_created")


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
    reference = make_wsgi_app(registry_of(app.collector))
    ours = wsgi(app, accept, query, encoding)
    assert ours == wsgi(reference, accept, query, encoding)
    assert ours[0] == "200 OK" and ours[2]
    if encoding == "gzip":
        assert wsgi(app, accept, query, encoding)[1]["Content-Encoding"] == "gzip"
    if "name[]" in query:
        assert b"mxha_check_success" not in ours[2]
    # HEAD: 405 as prometheus_client answers, naming the one method /metrics takes
    status, headers, _ = wsgi(app, accept, query, encoding, method="HEAD")
    assert status == wsgi(reference, accept, query, encoding, "HEAD")[0] == "405 Method Not Allowed"
    assert headers["Allow"] == "GET"


class CountingReader(Reader):
    def __init__(self, snap: Snapshot) -> None:
        super().__init__(snap)
        self.reads = 0

    def snapshot(self) -> Snapshot:
        self.reads += 1
        return self.snap


@pytest.mark.parametrize(
    "query,reads",
    [
        ("name[]=no_such_metric", 0),  # nothing the exporter could yield: nothing is read
        ("name[]=mxha_keepalived_signals", 1),  # a counter's family name: known, but no sample is named so
        ("name[]=mxha_keepalived_signals_total&name[]=no_such_metric", 1),
        ("name[]=mxha_notify_yielded", 1),  # a family with no sample in this snapshot is left out
        ("name[]=", 1),  # a blank value is no filter (parse_qs drops it): everything
    ],
)
@pytest.mark.parametrize("accept", [PROMETHEUS_ACCEPT, ""])
def test_name_filters_read_and_answer_as_prometheus_client_does(query: str, reads: int, accept: str) -> None:
    snap = replace(fixed_snapshot(), notify=None)
    reader = CountingReader(snap)
    app = ExporterApp(reader)  # type: ignore[arg-type]
    reference_reader = CountingReader(snap)
    reference = make_wsgi_app(registry_of(NodeCollector(reference_reader.snapshot)))
    assert wsgi(app, accept, query) == wsgi(reference, accept, query)
    assert reader.reads == reference_reader.reads == reads

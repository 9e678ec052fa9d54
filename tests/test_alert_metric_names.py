"""Every metric name the alert rules' PromQL reads is one the exporter or the remediator exposes.

promtool checks that the rules parse and that they fire on the series their unit tests write, but
those series are written by hand: a renamed metric leaves a rule that parses, passes its tests and
never fires. Here the names are taken from the shipped rules and checked against what the code
exposes (the exporter's golden exposition, the remediator's own registry), and a rule's recorded
names.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from conftest import REPO

from mxha.alerts.generate import FILES
from mxha.remediator.config import parse_remediator_config
from mxha.remediator.metrics import Metrics

# Prometheus's own series, written by its scrape of the exporters
PROMETHEUS = {"up"}
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
}  # fmt: skip
# the label lists of by/without/on/ignoring/group_*: label names, not metrics
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels, strings, ranges,
    numbers and durations left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings, e.g. label values
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for m in _NAME.finditer(text):
        before = text[m.start() - 1] if m.start() else " "
        after = text[m.end() :].lstrip()[:1]
        if before.isdigit() or before == ".":  # part of a number (1e3) or a duration
            continue
        if after == "(" or m.group() in KEYWORDS:  # a function or an operator
            continue
        names.add(m.group())
    return names


def exporter_names() -> set[str]:
    """The exporter's metric names, as its golden exposition has them (a counter's samples add _total)."""
    names = set()
    for line in (REPO / "tests/golden/exposition.txt").read_text().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
    return names


def remediator_names() -> set[str]:
    """The remediator's sample names, from its own registry (with a replica's lock store gauges)."""
    cfg = parse_remediator_config(
        {"allow_no_auth": True, "clusters": {"c": {"nodes": [{"name": "a", "state_url": "http://127.0.0.1:1/state",
                                        "maxscale": {"url": "http://127.0.0.1:1"}}]}}}
    )  # fmt: skip
    coordinator: Any = SimpleNamespace(quorum={"c": (True, 1, 1)})  # the collector reads only this
    metrics = Metrics(cfg, {}, coordinator=coordinator)
    families = list(metrics.registry.collect())
    # a gauge family with no series yet (no cluster runtime here) is named by its family
    return {f.name for f in families if f.type == "gauge"} | {s.name for f in families for s in f.samples}


def rules(path: Path) -> list[dict[str, Any]]:
    return [r for group in yaml.safe_load(path.read_text())["groups"] for r in group["rules"]]


def test_the_name_reader_reads_promql() -> None:
    expr = (
        'max by (cluster, instance) (increase(mxha_remediator_actions_total{result="failure", x="a b"}[10m]) > 0)'
        " or on (cluster) group_left (node) (cluster:mxha_x:sum == bool 1e3) unless max_over_time(up[5m:30s])"
    )
    assert metric_names(expr) == {"mxha_remediator_actions_total", "cluster:mxha_x:sum", "up"}


@pytest.mark.parametrize("name", sorted(FILES.values()))
def test_every_metric_a_rule_reads_is_exposed(name: str) -> None:
    path = REPO / "alerts" / name
    recorded = {r["record"] for r in rules(path) if "record" in r}
    exposed = exporter_names() | remediator_names() | PROMETHEUS | recorded
    read = {(r.get("alert") or r["record"], m) for r in rules(path) for m in metric_names(r["expr"])}
    assert read, "no metric read by any rule: the reader is broken"
    assert sorted((rule, m) for rule, m in read if m not in exposed) == []

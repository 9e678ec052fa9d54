"""The documentation says what the code does: the metrics tables name every family the exporter and
the remediator expose (with their labels), the configuration reference names every key the loaders
accept and no other, and every relative link of the README and docs/ leads somewhere.

A doc table that drifts from the code is the README problem the style guide warns of; these tests
read the tables users read, so a renamed metric or a new config key fails here until it is written
down.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import REPO, requires_program
from prometheus_client.metrics import MetricWrapperBase

from mxha import config as node_config
from mxha.config import Section, parse_node_config
from mxha.exporter.collector import METRICS
from mxha.remediator.config import parse_remediator_config
from mxha.remediator.metrics import Metrics
from mxha.remediator.runtime import ClusterRuntime

DOCS = REPO / "docs"


def section_of(text: str, heading: str) -> str:
    """The text under the markdown ``heading`` (its exact line), up to the next heading of the same
    or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    assert heading in lines, f"no heading {heading!r}"
    start = lines.index(heading) + 1
    out = []
    for line in lines[start:]:
        m = re.match(r"^(#+) ", line)
        if m and len(m.group(1)) <= level:
            break
        out.append(line)
    return "\n".join(out)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every markdown table in ``text``, as lists of stripped cells (header rows, the
    ones followed by a ``|---|`` line, left out)."""
    lines = text.splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.startswith("|") or re.match(r"^\|[-| :]+\|$", line):
            continue
        if i + 1 < len(lines) and re.match(r"^\|[-| :]+\|$", lines[i + 1]):
            continue  # a header
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- metrics -------------------------------------------------------------------------------------


def documented_metrics(path: Path, heading: str) -> dict[str, tuple[tuple[str, ...], str]]:
    """name -> (labels, meaning) from the table under ``heading`` (columns: metric, labels, meaning)."""
    out = {}
    for row in table_rows(section_of(path.read_text(), heading)):
        assert len(row) == 3, f"{path.name}: a metrics row needs 3 cells: {row}"
        (name,) = ticked(row[0])
        assert name not in out, f"{name} is listed twice"
        out[name] = (tuple(sorted(ticked(row[1]))), row[2])
    return out


def exporter_families() -> dict[str, tuple[str, ...]]:
    """The exporter's families and the labels of their series, as its collectors render three fixed
    snapshots between them holding every family (the golden one; one with a text dump's script
    status, keepalived's stats, activated_at and a yield; one with MaxScale not answering)."""
    from test_contracts import T, fixed_snapshot

    from mxha.exporter.collector import BuildInfoCollector, NodeCollector
    from mxha.exporter.keepalived import VrrpScript
    from mxha.exporter.node import MaxScaleReading

    base = fixed_snapshot()
    assert base.keepalived is not None and base.notify is not None
    richer = fixed_snapshot(
        keepalived=replace(
            base.keepalived,
            instances=tuple(replace(i, became_master=1) for i in base.keepalived.instances),
            scripts=(VrrpScript("chk_maxscale", "GOOD"),),
        ),
        maxscale=replace(base.maxscale, activated_at=T - 100),
        notify=replace(base.notify, yielded_to="node2"),
    )
    down = fixed_snapshot(maxscale=MaxScaleReading(False, "no answer", T, 0.001, error_kind="no_answer"))
    families = [f for snap in (base, richer, down) for f in NodeCollector(lambda snap=snap: snap).collect()]
    families += BuildInfoCollector("0.0.0").collect()
    out: dict[str, set[str]] = {}
    sampled: set[str] = set()
    for family in families:
        name = family.name + "_total" if family.type == "counter" else family.name
        out.setdefault(name, set()).update(k for s in family.samples for k in s.labels)
        if family.samples:
            sampled.add(name)
    # a family with no series in any snapshot would say nothing of its labels
    assert sorted(set(out) - sampled) == []
    return {name: tuple(sorted(labels)) for name, labels in out.items()}


def test_exporter_metrics_table_is_the_code() -> None:
    doc = documented_metrics(DOCS / "exporter.md", "## Metrics")
    assert {name: meaning for name, (_labels, meaning) in doc.items()} == METRICS
    assert {name: labels for name, (labels, _meaning) in doc.items()} == exporter_families()


def remediator_families() -> dict[str, tuple[str, ...]]:
    """The remediator's families and their labels, from its own registry (a replica's lock gauges
    included), as a scrape shows them (counters with _total)."""
    cfg = parse_remediator_config(
        {"allow_no_auth": True, "clusters": {"c": {"nodes": [{"name": "a", "state_url": "http://127.0.0.1:1/state",
                                        "maxscale": {"url": "http://127.0.0.1:1"}}]}}}
    )  # fmt: skip
    coordinator: Any = SimpleNamespace(quorum={"c": (True, 1, 1)})  # the collector reads only this
    metrics = Metrics(cfg, {"c": ClusterRuntime()}, coordinator=coordinator)
    out: dict[str, tuple[str, ...]] = {}
    for family in metrics.registry.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        out[name] = tuple(sorted(labels))
    # a labelled counter or histogram with no series yet says its labels only through its wrapper
    for wrapper in vars(metrics).values():
        if isinstance(wrapper, MetricWrapperBase):
            kind = wrapper._type  # noqa: SLF001  # prometheus_client keeps the type and labels private
            name = wrapper._name + ("_total" if kind == "counter" else "")  # noqa: SLF001
            out[name] = tuple(sorted(wrapper._labelnames))  # noqa: SLF001
    return out


def test_remediator_metrics_table_is_the_code() -> None:
    doc = documented_metrics(DOCS / "remediator.md", "## Metrics")
    assert {name: labels for name, (labels, _meaning) in doc.items()} == remediator_families()


# --- configuration -------------------------------------------------------------------------------


def read_keys(parse: Any, doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every key path ``parse`` reads from ``doc`` (a key it reads is one it accepts: any other
    stops it with "unknown key"), recorded as each section of the loader checks its keys."""
    seen: set[str] = set()
    original = Section.finish

    def finish(self: Section) -> None:
        seen.update(self.key(k) for k in self.used)
        original(self)

    monkeypatch.setattr(Section, "finish", finish)
    parse(doc)
    return seen


def normal(key: str) -> str:
    """A key path as the reference spells it: list items as ``[]``, a cluster's name as ``NAME``,
    and a MaxScale section below the top level as one key (its keys are the node config's)."""
    key = re.sub(r"\[\d+\]", "[]", key)
    key = re.sub(r"^clusters\.[^.\[]+", "clusters.NAME", key)
    return re.sub(r"^(.+\.maxscale)\..*$", r"\1", key)


def leaves(keys: set[str]) -> set[str]:
    """The keys that hold values, not sections (``maxscale`` goes when ``maxscale.url`` is there)."""
    return {k for k in keys if not any(o.startswith((k + ".", k + "[]")) for o in keys)}


# the smallest documents that make the loaders read every section they have (a section read only
# when present, such as a peer's maxscale or the replicas, is given)
URL = "http://127.0.0.1:1"
NODE_DOC = {"node": "n", "peers": [{"name": "p", "state_url": f"{URL}/state", "maxscale": {"url": URL}}]}
REMEDIATOR_DOC = {
    "allow_no_auth": True,
    "replicas": {"lock": {"servers": ["127.0.0.1:1"], "user": "u", "password": "p"}},
    "clusters": {
        "c": {
            "lock_servers": ["127.0.0.1:2"],
            "nodes": [{"name": "a", "state_url": f"{URL}/state", "maxscale": {"url": URL}}],
        }
    },
}


def documented_keys(heading: str) -> set[str]:
    text = section_of((DOCS / "configuration.md").read_text(), heading)
    keys = set()
    for row in table_rows(text):
        for key in ticked(row[0]):
            assert key not in keys, f"{key} is documented twice"
            keys.add(key)
    return keys


@pytest.mark.parametrize(
    "heading,parse,doc",
    [
        ("## Node config", parse_node_config, NODE_DOC),
        ("## Remediator config", parse_remediator_config, REMEDIATOR_DOC),
    ],
)
def test_configuration_reference_is_the_loader(
    heading: str, parse: Any, doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = leaves({normal(k) for k in read_keys(parse, doc, monkeypatch)})
    documented = documented_keys(heading)
    assert sorted(loader - documented) == [], "keys the loader accepts that docs/configuration.md does not document"
    assert sorted(documented - loader) == [], "keys docs/configuration.md documents that the loader refuses"


def test_the_key_recorder_sees_what_the_loader_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder counts only keys a loader reads: an unknown key still stops the loader."""
    with pytest.raises(node_config.ConfigError, match="exporter.colour: unknown key"):
        read_keys(parse_node_config, {**NODE_DOC, "exporter": {"colour": "red"}}, monkeypatch)
    keys = read_keys(parse_node_config, NODE_DOC, monkeypatch)
    assert {"maxscale.url", "peers[0].maxscale.url", "notify.relock_backoff", "exporter.listen_address"} <= keys


# --- links ---------------------------------------------------------------------------------------


def doc_files() -> list[Path]:
    """The README, docs/, and the pages next to what they describe."""
    return [
        REPO / "README.md",
        *sorted(DOCS.glob("*.md")),
        REPO / "alerts/runbooks.md",
        REPO / "examples/keepalived/README.md",
    ]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def links(path: Path) -> Iterator[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code blocks hold no links
    yield from re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in links(path):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == []


def test_docs_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\nSee [there](missing.md) and [here](#title) and [gone](#nothing).\n")
    assert list(links(page)) == ["missing.md", "#title", "#nothing"]
    assert anchors(page) == {"title"}


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme_links = {t.partition("#")[0] for t in links(REPO / "README.md")}
    assert sorted(p.name for p in DOCS.glob("*.md") if f"docs/{p.name}" not in readme_links) == []


def test_docs_hold_no_dated_runs() -> None:
    """No "Run of 2026-12-05 14:32" diaries: the docs describe behaviour; git holds the history."""
    for path in doc_files():
        dated = re.findall(r"\b20\d\d-\d\d-\d\d\b(?!T)", path.read_text())  # not a payload's timestamp
        assert dated == [], f"{path.name}: {dated}"


# --- the README's first hour ---------------------------------------------------------------------


def first_hour_block(lang: str) -> str:
    """The first ``lang`` code block of the README's "First hour" procedure, unindented."""
    text = section_of((REPO / "README.md").read_text(), "## First hour on real hosts")
    m = re.search(rf"^ *```{lang}\n(.*?)^ *```", text, re.M | re.S)
    assert m, f"no {lang} block in the first hour"
    return "\n".join(line[3:] for line in m.group(1).splitlines())


def test_first_hour_keepalived_lines_are_the_examples() -> None:
    """The keepalived lines the README shows are the example config's, line for line (so the
    README cannot drift from what tests/test_shipping.py runs through keepalived --config-test)."""
    example = {
        line.split("#", 1)[0].strip()
        for line in (REPO / "examples/keepalived/keepalived-primary.conf").read_text().splitlines()
    }
    shown = [line.strip() for line in first_hour_block("text").splitlines() if line.strip() != "..."]
    assert "enable_script_security" in shown and any("--follow-up" in line for line in shown)
    assert [line for line in shown if line not in example] == []


@requires_program("promtool")
def test_first_hour_prometheus_config_is_valid(tmp_path: Path) -> None:
    config = first_hour_block("yaml").replace(
        "/etc/prometheus/rules/mxha-rules.yml", str(REPO / "alerts/mxha-rules.yml")
    )
    (tmp_path / "prometheus.yml").write_text(config)
    proc = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 rule files found" in proc.stdout

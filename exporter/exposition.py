"""The exporter's metric families and their exposition, without prometheus_client in the process.

prometheus_client is the reference: the exporter negotiates the format as its ``choose_encoder``
does, filters ``name[]`` as its ``restricted_registry`` does and writes the bytes its writers write
(tested against it over the fixtures' snapshots and arbitrary label values, help texts and values).
It is not imported by the exporter's process in the common case: importing it loads ``ssl`` (its
push-gateway code; libssl and libcrypto relocated), ``http.server``, ``urllib.request`` and the
``email`` package, a third of the exporter's RSS; and its writers are general (every metric type,
UTF-8 names, native histograms, escaping every name character by character), which was most of a
scrape's Python CPU.

The exporter's families are gauges and counters with legacy-valid names. Anything this writer does
not write (another type, a name that needs escaping, a unit, a timestamp, an exemplar, an escaping
that rewrites valid names such as ``dots`` or ``values``, an OpenMetrics version other than 1.0.0)
makes ``write`` return None, and ``encode`` imports prometheus_client then to let its writer do it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

OPENMETRICS = "application/openmetrics-text"
OPENMETRICS_1_0_0 = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
TEXT_1_0_0 = "text/plain; version=1.0.0; charset=utf-8"
ESCAPINGS = ("allow-utf-8", "underscores", "dots", "values")  # what an Accept header may ask for

# escapings under which prometheus_client writes a legacy-valid name unchanged (``dots`` doubles its
# underscores; ``values`` prefixes OpenMetrics sample names with U__)
_NAMES_UNCHANGED = ("underscores", "allow-utf-8")
_LEGACY_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INT_VALUES = {0: "0.0", 1: "1.0"}  # most samples are these ints; the rest: ``go_float``
_SUFFIXES = {"counter": ("_total", "_created")}  # the sample names a family of the type may have


class Sample(NamedTuple):
    """One sample, with the fields prometheus_client's writers read."""

    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None = None
    exemplar: Any = None
    native_histogram: Any = None


class Family:
    """A metric family: a gauge or a counter (its name without ``_total``) and its samples."""

    __slots__ = ("name", "documentation", "type", "unit", "samples", "_labelnames", "_sample_name")

    def __init__(self, name: str, documentation: str, kind: str = "gauge", labels: Sequence[str] = ()) -> None:
        if kind not in ("gauge", "counter"):
            raise ValueError(f"unsupported metric type {kind!r}")
        self.name = name
        self.documentation = documentation
        self.type = kind
        self.unit = ""
        self.samples: list[Sample] = []
        self._labelnames = tuple(labels)
        self._sample_name = name + "_total" if kind == "counter" else name

    def add(self, labels: Sequence[str], value: float) -> None:
        """One sample (the only way samples are added: ``write`` relies on their names and label names)."""
        self.samples.append(Sample(self._sample_name, dict(zip(self._labelnames, labels, strict=True)), value))

    def names(self) -> tuple[str, ...]:
        """The names ``name[]`` may ask for it by: its own and its samples' (prometheus_client's rule)."""
        return (self.name, *(self.name + suffix for suffix in _SUFFIXES.get(self.type, ())))

    def only(self, samples: list[Sample]) -> Family:
        """The same family with ``samples`` only."""
        other = Family(self.name, self.documentation, self.type, self._labelnames)
        other.samples = samples
        return other


def restrict(families: Iterable[Family], names: set[str]) -> Iterator[Family]:
    """``name[]``: the samples whose names were asked for; a family left without samples is left out."""
    for family in families:
        samples = [s for s in family.samples if s.name in names]
        if samples:
            yield family.only(samples)


# -- negotiation (prometheus_client's ``choose_encoder``) -----------------------------------------
def _parameter(tokens: list[str], key: str) -> str:
    for token in tokens:
        name, eq, value = token.strip().partition("=")
        if eq and name == key:
            return value
    return ""


def _version_at_least_1(version: str) -> bool | None:
    """Whether ``version`` is 1.0.0 or later, compared part by part as prometheus_client does (numbers
    as numbers, anything else as text); None where that comparison fails (a text part against a
    number: prometheus_client fails the request; here the entry is passed over)."""
    parts: list[int | str] = []
    for part in version.split("."):
        try:
            parts.append(int(part))
        except ValueError:
            parts.append(part)
    try:
        return tuple(parts) >= (1, 0, 0)
    except TypeError:
        return None


def negotiate(accept: str | None) -> str:
    """The Content-Type to answer ``accept`` with: the first acceptable entry naming OpenMetrics (1.0.0
    or later, or no version) or text/plain 1.0.0 or later, with its escaping; else text 0.0.4."""
    for entry in (accept or "").split(","):
        tokens = entry.split(";")
        media = tokens[0].strip()
        if media not in (OPENMETRICS, "text/plain"):
            continue
        version = _parameter(tokens, "version")
        escaping = _parameter(tokens, "escaping")
        if escaping not in ESCAPINGS:
            escaping = "underscores"
        if media == OPENMETRICS and not version:
            return OPENMETRICS_1_0_0
        if version and _version_at_least_1(version):
            if media == OPENMETRICS:
                return f"{OPENMETRICS}; version={version}; charset=utf-8; escaping={escaping}"
            return f"{TEXT_1_0_0}; escaping={escaping}"
    return TEXT_0_0_4


def gzip_accepted(accept_encoding: str | None) -> bool:
    return any(e.split(";")[0].strip().lower() == "gzip" for e in (accept_encoding or "").split(","))


# -- writing ----------------------------------------------------------------------------------------
def _escaping_of(content_type: str) -> str:
    """The escaping a negotiated Content-Type names (prometheus_client's default: underscores)."""
    return _parameter(content_type.split(";"), "escaping") or "underscores"


def _label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def go_float(value: float) -> str:
    """A sample value as Prometheus's Go code prints it: ``+Inf``, ``-Inf``, ``NaN``, Python's shortest
    repr otherwise, but in exponent form from 1e7 up for positive values (Go switches sooner)."""
    number = float(value)
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if math.isnan(number):
        return "NaN"
    text = repr(number)
    dot = text.find(".")
    if number > 0 and dot > 6:  # d.ddddddd...e+NN, trailing zeros (and a bare dot) dropped
        digits = (text[1:dot] + text[dot + 1 :]).rstrip("0")
        mantissa = f"{text[0]}.{digits}".rstrip(".")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _value(value: float) -> str:
    # ints only: -0.0 equals 0 and must stay "-0.0"
    text = _INT_VALUES.get(value) if type(value) is int else None
    return text if text is not None else go_float(value)


def write(metrics: Iterable[Any], content_type: str) -> bytes | None:
    """``metrics`` (families with prometheus_client's attributes) in the format ``content_type`` names
    (OpenMetrics 1.0.0 or text 0.0.4/1.0.0), or None when prometheus_client's writer must do it."""
    openmetrics = content_type.startswith(OPENMETRICS)
    if _escaping_of(content_type) not in _NAMES_UNCHANGED:
        return None
    if openmetrics and "version=1.0.0" not in content_type:
        return None
    out: list[str] = []
    append = out.append
    for metric in metrics:
        name, kind = metric.name, metric.type
        if kind == "gauge":
            sample_name = name
        elif kind == "counter":
            sample_name = name + "_total"
        else:
            return None
        if metric.unit or not _LEGACY_METRIC_NAME.fullmatch(sample_name):
            return None
        doc = metric.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        if openmetrics:
            append(f"# HELP {name} {doc.replace(chr(34), chr(92) + chr(34))}\n# TYPE {name} {kind}\n")
        else:
            append(f"# HELP {sample_name} {doc}\n# TYPE {sample_name} {kind}\n")
        if type(metric) is Family:  # its samples came through add(): named alike, the same label names
            keys = sorted(metric._labelnames)
            if not all(_LEGACY_LABEL_NAME.fullmatch(key) for key in keys):
                return None
            for sample in metric.samples:
                labels = sample.labels
                if keys:
                    inner = ",".join([f'{key}="{_label_value(labels[key])}"' for key in keys])
                    append(f"{sample_name}{{{inner}}} {_value(sample.value)}\n")
                else:
                    append(f"{sample_name} {_value(sample.value)}\n")
            continue
        for sample in metric.samples:
            if sample.name != sample_name or sample.timestamp is not None or sample.exemplar is not None:
                return None
            if getattr(sample, "native_histogram", None) is not None:
                return None
            labels = sample.labels
            if labels:
                parts = []
                for key in sorted(labels):
                    if not _LEGACY_LABEL_NAME.fullmatch(key):
                        return None
                    parts.append(f'{key}="{_label_value(labels[key])}"')
                append(f"{sample_name}{{{','.join(parts)}}} {_value(sample.value)}\n")
            else:
                append(f"{sample_name} {_value(sample.value)}\n")
    if openmetrics:
        append("# EOF\n")
    return "".join(out).encode("utf-8")


def to_prometheus(families: Iterable[Family]) -> list[Any]:
    """The families as prometheus_client's own objects (imported now: the fallback's price)."""
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample as PromSample

    out = []
    for family in families:
        metric = Metric(family.name, family.documentation, family.type)
        metric.samples = [PromSample(*sample) for sample in family.samples]
        out.append(metric)
    return out


class _Collected:
    """Families already collected, as prometheus_client's writers take them."""

    def __init__(self, metrics: list[Any]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        return iter(self.metrics)


def encode(families: list[Family], accept: str | None) -> tuple[bytes, str]:
    """The exposition of ``families`` for a request's Accept header, and its Content-Type."""
    content_type = negotiate(accept)
    output = write(families, content_type)
    if output is None:
        output = _prometheus_client_writes(families, content_type)
    return output, content_type


def _prometheus_client_writes(families: list[Family], content_type: str) -> bytes:
    """What ``write`` leaves: prometheus_client's writer for the negotiated format (imported now)."""
    from prometheus_client import exposition as text
    from prometheus_client.openmetrics import exposition as openmetrics

    escaping = _escaping_of(content_type)
    collected = _Collected(to_prometheus(families))
    if content_type.startswith(OPENMETRICS):
        version = _parameter(content_type.split(";"), "version")
        return openmetrics.generate_latest(collected, escaping=escaping, version=version)  # type: ignore[no-untyped-call,no-any-return]
    return text.generate_latest(collected, escaping=escaping)

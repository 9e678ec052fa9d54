"""The exposition of the exporter's own families, in the bytes prometheus_client writes.

prometheus_client stays the reference and the negotiator (``choose_encoder`` picks the format and
escaping from the Accept header; ``restricted_registry`` applies ``name[]``); its writers are
general (every metric type, UTF-8 names, native histograms) and escape every name and label
name character by character, which was most of a scrape's Python CPU. The exporter's families are
gauges and counters with legacy-valid names, written once per scrape: for those this writer gives
the same bytes (tested against prometheus_client's writers over the fixtures' snapshots and
over arbitrary label values and help texts). Anything else (another type, a name that needs
escaping, a timestamp, an exemplar, an escaping that rewrites valid names) returns None, and
the caller uses prometheus_client's writer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

OPENMETRICS = "application/openmetrics-text"

# escapings under which prometheus_client writes a legacy-valid name unchanged (``dots`` doubles its
# underscores; ``values`` prefixes OpenMetrics sample names with U__)
_NAMES_UNCHANGED = ("underscores", "allow-utf-8")
_LEGACY_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INT_VALUES = {0: "0.0", 1: "1.0"}  # most samples are these ints; the rest: ``floatToGoString``


def _escaping_of(content_type: str) -> str:
    """The escaping a negotiated Content-Type names (prometheus_client's default: underscores)."""
    for token in content_type.split(";"):
        key, _, value = token.strip().partition("=")
        if key == "escaping":
            return value
    return "underscores"


def _label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _value(value: float) -> str:
    # ints only: -0.0 equals 0 and must stay "-0.0"
    text = _INT_VALUES.get(value) if type(value) is int else None
    return text if text is not None else str(floatToGoString(value))  # type: ignore[no-untyped-call]


def write(metrics: Iterable[Metric], content_type: str) -> bytes | None:
    """``metrics`` in the format ``content_type`` names (OpenMetrics 1.0.0 or text 0.0.4), or None
    when prometheus_client's writer must do it (see the module's docstring)."""
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

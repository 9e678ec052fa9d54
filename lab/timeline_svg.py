"""A scenario's timeline as an SVG picture: per node VRRP state, VIP and MaxScale mode bands,
with alerts (orange) and remediator actions (blue) marked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from mxha.lab.scenarios import Report

WIDTH, LEFT, RIGHT, BAND, GAP = 1000, 150, 20, 18, 6
COLORS: dict[str, dict[Any, str]] = {
    "vrrp": {
        "MASTER": "#2e7d32",
        "BACKUP": "#1565c0",
        "FAULT": "#c62828",
        "INIT": "#6a1b9a",
        "STOP": "#ef6c00",
        None: "#bdbdbd",
    },
    "vip": {True: "#2e7d32", False: "#eeeeee", None: "#bdbdbd"},
    "passive": {False: "#2e7d32", True: "#90caf9", None: "#c62828"},
}
LABELS = {"vrrp": "VRRP", "vip": "VIP", "passive": "MaxScale"}


def _segments(samples: list[Any], node: str, key: str) -> list[tuple[float, float, Any]]:
    segs: list[tuple[float, float, Any]] = []
    for a, b in zip(samples, samples[1:], strict=False):
        value = a.nodes[node][key]
        if segs and segs[-1][2] == value and abs(segs[-1][1] - a.t) < 1e-6:
            segs[-1] = (segs[-1][0], b.t, value)
        else:
            segs.append((a.t, b.t, value))
    return segs


def render_svg(report: Report) -> str:
    samples = report.samples
    end = max((s.t for s in samples), default=1.0) or 1.0
    nodes = list(samples[0].nodes) if samples else []
    scale = (WIDTH - LEFT - RIGHT) / end
    rows = [(n, k) for n in nodes for k in ("vrrp", "vip", "passive")]
    top = 40
    height = top + len(rows) * (BAND + GAP) + 90
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" '
        f'font-size="12">',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(report.name)}: '
        f"{'PASSED' if report.passed else 'FAILED'}</text>",
    ]
    for i, (node, key) in enumerate(rows):
        y = top + i * (BAND + GAP)
        out.append(f'<text x="10" y="{y + 13}">{escape(node)} {LABELS[key]}</text>')
        for start, stop, value in _segments(samples, node, key):
            color = COLORS[key].get(value, "#bdbdbd")
            x = LEFT + start * scale
            w = max(0.5, (stop - start) * scale)
            title = escape(f"{node} {LABELS[key]} = {value} from {start:.1f}s to {stop:.1f}s")
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAND}" fill="{color}">'
                f"<title>{title}</title></rect>"
            )
    bottom = top + len(rows) * (BAND + GAP)
    for name, t in report.alerts.items():
        x = LEFT + t * scale
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 5}" x2="{x:.1f}" y2="{bottom}" stroke="#ff9800" '
            f'stroke-width="2"><title>{escape(name)} firing at {t:.1f}s</title></line>'
        )
    for action in report.actions:
        x = LEFT + action["t"] * scale
        text = escape(f"{action['action']} {action['node']}: {action['result']} at {action['t']:.1f}s")
        out.append(f'<path d="M{x:.1f},{bottom + 2} l-5,10 l10,0 z" fill="#1565c0"><title>{text}</title></path>')
    for tick in range(0, int(end) + 1, max(1, int(end // 10) or 1)):
        x = LEFT + tick * scale
        out.append(f'<text x="{x:.1f}" y="{bottom + 28}" text-anchor="middle">{tick}s</text>')
    legend = (
        "green: MASTER / VIP held / active   blue: BACKUP / passive   red: FAULT / MaxScale down   "
        "orange line: alert firing   blue triangle: remediator action"
    )
    out.append(f'<text x="10" y="{bottom + 55}" fill="#555">{escape(legend)}</text>')
    out.append(f'<text x="10" y="{bottom + 75}" fill="#555">{escape(_figures(report))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _figures(report: Report) -> str:
    return "  ".join(f"{k}={'n/a' if v is None else f'{v:.2f}'}" for k, v in report.figures.items())

"""Setup hazards: a setup that works today and fails on the day it matters, found from its config
and its files. Each hazard has a name (``mxha_setup_hazard{hazard}``, ``/state``'s ``hazards``),
a severity, the evidence seen, and what to change; the runbook (``alerts/runbooks.md``, section
``MaxScaleSetupHazard``) has a paragraph per name.

The node's own hazards are pure functions of its config and a few facts the caller gathers (the
exporter, on every snapshot: a config look and one ``stat``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mxha.config import NodeConfig

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Hazard:
    hazard: str  # its name, e.g. notify_unordered
    severity: str  # info, warning or critical
    evidence: str  # what was seen, one line

    def to_json(self) -> dict[str, str]:
        return {"hazard": self.hazard, "severity": self.severity, "evidence": self.evidence}


def node_hazards(
    cfg: NodeConfig,
    *,
    follow_up_age: float | None,
    follow_up_error: str | None,
    running_for: float,
    stale_after: float,
) -> tuple[Hazard, ...]:
    """The hazards of one node's own setup.

    ``follow_up_age``: seconds since ``mxha check --follow-up`` last ran (None: never, as far as its
    marker shows); ``follow_up_error``: the marker could not be looked at (then nothing is claimed);
    ``running_for``: how long the caller has been watching (no follow-up is expected before
    ``stale_after`` has passed)."""
    found: list[Hazard] = []
    if not cfg.keepalived.vips:
        found.append(
            Hazard(
                "notify_unordered",
                "warning",
                "keepalived.vips is not set: mxha notify acts on the event's STATE, and overlapping "
                "notify calls can end in the older state",
            )
        )
    elif cfg.check.follow_up and follow_up_error is None:
        if follow_up_age is None and running_for >= stale_after:
            found.append(
                Hazard(
                    "follow_up_missing",
                    "warning",
                    f"no mxha check --follow-up has marked its run in the {running_for:.0f}s this exporter has "
                    "watched (keepalived's check line lacks the flag, runs as another user than the state "
                    "directory's owner, or does not run): a MaxScale restarted active on the backup, or a lost "
                    "notify, stays uncorrected",
                )
            )
        elif follow_up_age is not None and follow_up_age >= stale_after:
            found.append(
                Hazard(
                    "follow_up_missing",
                    "warning",
                    f"the last mxha check --follow-up marked its run {follow_up_age:.0f}s ago: a MaxScale "
                    "restarted active on the backup, or a lost notify, stays uncorrected",
                )
            )
    return tuple(found)

"""The node model: what one node looks like, as the exporter's ``/state`` publishes it and
the remediator reads it. One definition, used by both."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class VipState:
    address: str
    present: bool


@dataclass(frozen=True)
class InstanceState:
    name: str
    vrid: int
    interface: str
    state: str
    priority: int
    base_priority: int
    governing: bool
    vips: tuple[VipState, ...] = ()
    last_transition: float | None = None


@dataclass(frozen=True)
class KeepalivedView:
    up: bool
    source: str | None
    read_at: float | None
    error: str | None
    instances: tuple[InstanceState, ...] = ()

    def governing(self) -> InstanceState | None:
        return next((i for i in self.instances if i.governing), None)


@dataclass(frozen=True)
class CheckView:
    success: bool
    reason: str
    checked_at: float | None
    duration_seconds: float | None


@dataclass(frozen=True)
class MaxScaleView:
    up: bool
    passive: bool | None
    config_sync: bool | None
    locks: str | None  # "none" or the cooperative_monitoring_locks mode in use
    read_at: float | None
    error: str | None
    version: str | None = None
    # why it is not up: no_answer (the only kind that may count toward "down"), auth, http,
    # document, tls (mxha.transport.ERROR_KINDS); None while up
    error_kind: str | None = None


@dataclass(frozen=True)
class NodeState:
    node: str
    time: float
    keepalived: KeepalivedView
    check: CheckView
    maxscale: MaxScaleView
    governing_vips: tuple[VipState, ...] = field(default=())

    def holds_governing_vip(self) -> bool:
        """True when every governing VIP is on this node now (per the kernel)."""
        return bool(self.governing_vips) and all(v.present for v in self.governing_vips)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("governing_vips")
        return doc


class StateFormatError(ValueError):
    """A /state document that does not have the keys and types the contract promises."""


def _req(doc: Any, key: str, types: type | tuple[type, ...], where: str, nullable: bool = False) -> Any:
    if not isinstance(doc, dict) or key not in doc:
        raise StateFormatError(f"{where}.{key}: missing")
    value = doc[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise StateFormatError(f"{where}.{key}: wrong type")
    if not isinstance(value, types):
        raise StateFormatError(f"{where}.{key}: wrong type")
    return value


def _error_kind(ms: dict[str, Any]) -> str | None:
    """An exporter older than this key says only ``error``: its kind is unknown, never "no answer"."""
    from mxha.transport import ERROR_KINDS

    kind = ms.get("error_kind")
    if ms.get("up") is True:
        return None
    return kind if kind in ERROR_KINDS else "unknown"


def node_state_from_json(doc: Any) -> NodeState:
    """Parse a ``/state`` document (extra keys are allowed and ignored)."""
    ka = _req(doc, "keepalived", dict, "state")
    instances = []
    for i, inst in enumerate(_req(ka, "instances", list, "keepalived")):
        where = f"keepalived.instances[{i}]"
        vips = tuple(
            VipState(_req(v, "address", str, where + ".vips"), _req(v, "present", bool, where + ".vips"))
            for v in _req(inst, "vips", list, where)
        )
        instances.append(
            InstanceState(
                name=_req(inst, "name", str, where),
                vrid=_req(inst, "vrid", int, where),
                interface=_req(inst, "interface", str, where),
                state=_req(inst, "state", str, where),
                priority=_req(inst, "priority", int, where),
                base_priority=_req(inst, "base_priority", int, where),
                governing=_req(inst, "governing", bool, where),
                vips=vips,
                last_transition=inst.get("last_transition")
                if isinstance(inst.get("last_transition"), (int, float))
                else None,
            )
        )
    chk = _req(doc, "check", dict, "state")
    ms = _req(doc, "maxscale", dict, "state")
    num = (int, float)
    state = NodeState(
        node=_req(doc, "node", str, "state"),
        time=float(_req(doc, "time", num, "state")),
        keepalived=KeepalivedView(
            up=_req(ka, "up", bool, "keepalived"),
            source=_req(ka, "source", str, "keepalived", True),
            read_at=_req(ka, "read_at", num, "keepalived", True),
            error=_req(ka, "error", str, "keepalived", True),
            instances=tuple(instances),
        ),
        check=CheckView(
            success=_req(chk, "success", bool, "check"),
            reason=_req(chk, "reason", str, "check"),
            checked_at=_req(chk, "checked_at", num, "check", True),
            duration_seconds=_req(chk, "duration_seconds", num, "check", True),
        ),
        maxscale=MaxScaleView(
            up=_req(ms, "up", bool, "maxscale"),
            passive=_req(ms, "passive", bool, "maxscale", True),
            config_sync=_req(ms, "config_sync", bool, "maxscale", True),
            locks=_req(ms, "locks", str, "maxscale", True),
            read_at=_req(ms, "read_at", num, "maxscale", True),
            error=_req(ms, "error", str, "maxscale", True),
            version=ms.get("version") if isinstance(ms.get("version"), str) else None,
            error_kind=_error_kind(ms),
        ),
    )
    # Prefer the exporter's top-level VIP list: it is checked with the kernel even while
    # keepalived cannot be read (a killed keepalived can leave its VIP behind).
    governing_vips: tuple[VipState, ...]
    if isinstance(doc.get("vips"), list):
        governing_vips = tuple(
            VipState(_req(v, "address", str, "vips"), _req(v, "present", bool, "vips"))
            for v in doc["vips"]
            if isinstance(v, dict) and v.get("governing") is True
        )
    else:
        gov = state.keepalived.governing()
        governing_vips = gov.vips if gov is not None else ()
    return NodeState(state.node, state.time, state.keepalived, state.check, state.maxscale, governing_vips)

"""``/state``: one node's snapshot as its exporter publishes it. ONE typed model, used to write it
(the exporter), to read it (the remediator, the lab, the tests, the bench) and to document it
(``tests/golden/state.json`` is a real document; docs/exporter.md, ``/state``, shows the same shape).

Readers are lenient where the contract lets documents grow (extra keys are ignored) and strict
where a wrong type would change a decision (``StateFormatError``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mxha.maxscale import MODES, MonitorView, ServerLock, ServerView
from mxha.transport import ERROR_KINDS as TRANSPORT_ERROR_KINDS

if TYPE_CHECKING:  # imported by _hazards, when a /state document is read: not on mxha check's usual path
    from mxha.hazards import Hazard

# why a MaxScale is not up (mxha.transport.ERROR_KINDS); "unknown" from an exporter too old to say
ERROR_KINDS = (*TRANSPORT_ERROR_KINDS, "unknown")


def governing_instance(configured: str | None, instances: set[str] | frozenset[str]) -> str | None:
    """THE rule for which VRRP instance decides where the active MaxScale is.

    The configured ``keepalived.governing_instance`` if set; else the only instance there is;
    with several instances and none configured, none governs (guessing would flip MaxScale on
    every instance's transitions). The exporter knows the instances from keepalived's dump; the
    notify hook, which cannot ask keepalived, from the transitions it has recorded.
    """
    if configured:
        return configured
    if len(instances) == 1:
        return next(iter(instances))
    return None


class StateFormatError(ValueError):
    """A /state document that does not have the keys and types the contract promises."""


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
class NodeVip:
    """A VIP checked with the kernel, also while keepalived cannot be read."""

    address: str
    vrrp_instance: str
    governing: bool
    present: bool


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
    # why it is not up: no_answer (the only kind that may count toward "down"), auth, http,
    # document, tls; None while up
    error_kind: str | None = None
    version: str | None = None
    # the database as this MaxScale sees it: each server's state, each monitor's named primary
    # (monitor_diagnostics.master), cooperative-lock mode, lock primary and locks held per server
    servers: tuple[ServerView, ...] = ()
    monitors: tuple[MonitorView, ...] = ()


@dataclass(frozen=True)
class NotifyView:
    """The last transition ``mxha notify`` acted on (its record), if any."""

    time: float
    state: str
    ok: bool
    desired_passive: bool | None
    result: str
    yielded_to: str | None = None  # the peer this node stays passive for (peer-aware notify)
    locks_released_at: float | None = None  # the hook's last release-locks call (starts MaxScale's back-off)


@dataclass(frozen=True)
class NodeState:
    node: str
    time: float
    keepalived: KeepalivedView
    check: CheckView
    maxscale: MaxScaleView
    vips: tuple[NodeVip, ...] = ()
    vip_error: str | None = None
    notify: NotifyView | None = None
    mode: str = "passive"  # the node config's coordination mode: passive or locks
    hazards: tuple[Hazard, ...] = ()  # the node's setup hazards (mxha.hazards)

    # -- what readers ask of it ---------------------------------------------------------------
    def governing_vips(self) -> tuple[NodeVip, ...]:
        return tuple(v for v in self.vips if v.governing)

    def holds_governing_vip(self) -> bool:
        """True when every governing VIP is on this node now (per the kernel)."""
        gov = self.governing_vips()
        return bool(gov) and all(v.present for v in gov)

    def governing_vrrp_state(self) -> str | None:
        gov = self.keepalived.governing()
        return gov.state if self.keepalived.up and gov is not None else None

    # -- the wire format ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        doc = _lists(asdict(self))
        field_order = (
            "node", "time", "mode", "keepalived", "vips", "vip_error", "check", "maxscale", "notify", "hazards",
        )  # fmt: skip
        return {k: doc[k] for k in field_order}

    @staticmethod
    def from_json(doc: Any) -> NodeState:
        """Parse a ``/state`` document (extra keys are allowed and ignored)."""
        return _parse(doc)


def _lists(value: Any) -> Any:
    """JSON's shapes: tuples become lists (``asdict`` keeps them as tuples)."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def _req(doc: Any, key: str, types: type | tuple[type, ...], where: str, nullable: bool = False) -> Any:
    if not isinstance(doc, dict) or key not in doc:
        raise StateFormatError(f"{where}.{key}: missing")
    value = doc[key]
    if value is None and nullable:
        return None
    allowed = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in allowed:
        raise StateFormatError(f"{where}.{key}: wrong type")
    if not isinstance(value, allowed):
        raise StateFormatError(f"{where}.{key}: wrong type")
    return value


_NUM = (int, float)


def _opt_num(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key)
    return float(value) if isinstance(value, _NUM) and not isinstance(value, bool) else None


def _parse(doc: Any) -> NodeState:
    ka = _req(doc, "keepalived", dict, "state")
    instances = []
    for i, inst in enumerate(_req(ka, "instances", list, "keepalived")):
        where = f"keepalived.instances[{i}]"
        inst_vips = tuple(
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
                vips=inst_vips,
                last_transition=_opt_num(inst, "last_transition"),
            )
        )
    keepalived = KeepalivedView(
        up=_req(ka, "up", bool, "keepalived"),
        source=_req(ka, "source", str, "keepalived", True),
        read_at=_req(ka, "read_at", _NUM, "keepalived", True),
        error=_req(ka, "error", str, "keepalived", True),
        instances=tuple(instances),
    )
    chk = _req(doc, "check", dict, "state")
    ms = _req(doc, "maxscale", dict, "state")
    up = _req(ms, "up", bool, "maxscale")
    kind = ms.get("error_kind")
    maxscale = MaxScaleView(
        up=up,
        passive=_req(ms, "passive", bool, "maxscale", True),
        config_sync=_req(ms, "config_sync", bool, "maxscale", True),
        locks=_req(ms, "locks", str, "maxscale", True),
        read_at=_req(ms, "read_at", _NUM, "maxscale", True),
        error=_req(ms, "error", str, "maxscale", True),
        # an exporter older than this key says only `error`: its kind is unknown, never "no answer"
        error_kind=None if up else (kind if kind in ERROR_KINDS else "unknown"),
        version=ms.get("version") if isinstance(ms.get("version"), str) else None,
        servers=tuple(
            ServerView(_req(sv, "name", str, "maxscale.servers"), _req(sv, "state", str, "maxscale.servers"))
            for sv in _opt_list(ms, "servers")
        ),
        monitors=tuple(_monitor(m) for m in _opt_list(ms, "monitors")),
    )
    # The top-level VIP list is checked with the kernel even while keepalived cannot be read (a
    # killed keepalived can leave its VIP behind); an exporter without it gives the governing
    # instance's VIPs.
    vips: tuple[NodeVip, ...]
    if isinstance(doc.get("vips"), list):
        vips = tuple(
            NodeVip(
                _req(v, "address", str, "vips"),
                str(v.get("vrrp_instance") or ""),
                v.get("governing") is True,
                _req(v, "present", bool, "vips"),
            )
            for v in doc["vips"]
            if isinstance(v, dict)
        )
    else:
        gov = keepalived.governing()
        vips = tuple(NodeVip(v.address, gov.name, True, v.present) for v in gov.vips) if gov else ()
    notify = None
    nt = doc.get("notify")
    if isinstance(nt, dict):
        try:
            notify = NotifyView(
                time=float(_req(nt, "time", _NUM, "notify")),
                state=_req(nt, "state", str, "notify"),
                ok=_req(nt, "ok", bool, "notify"),
                desired_passive=_req(nt, "desired_passive", bool, "notify", True),
                result=_req(nt, "result", str, "notify"),
                yielded_to=_req(nt, "yielded_to", str, "notify", True) if "yielded_to" in nt else None,
                locks_released_at=_opt_num(nt, "locks_released_at"),
            )
        except StateFormatError:
            # a reader decides on it only to hold back (the remediator's relock back-off memory)
            notify = None
    return NodeState(
        node=_req(doc, "node", str, "state"),
        time=float(_req(doc, "time", _NUM, "state")),
        keepalived=keepalived,
        check=CheckView(
            success=_req(chk, "success", bool, "check"),
            reason=_req(chk, "reason", str, "check"),
            checked_at=_req(chk, "checked_at", _NUM, "check", True),
            duration_seconds=_req(chk, "duration_seconds", _NUM, "check", True),
        ),
        maxscale=maxscale,
        vips=vips,
        vip_error=doc.get("vip_error") if isinstance(doc.get("vip_error"), str) else None,
        notify=notify,
        mode=doc["mode"] if doc.get("mode") in MODES else "passive",
        hazards=_hazards(doc.get("hazards")),
    )


def _hazards(value: Any) -> tuple[Hazard, ...]:
    """Lenient: hazards inform people and alerts, no decision is made on them."""
    from mxha.hazards import SEVERITIES, Hazard

    if not isinstance(value, list):
        return ()
    return tuple(
        Hazard(h["hazard"], h["severity"] if h.get("severity") in SEVERITIES else "warning", str(h.get("evidence", "")))
        for h in value
        if isinstance(h, dict) and isinstance(h.get("hazard"), str)
    )


def _opt_list(doc: dict[str, Any], key: str) -> list[Any]:
    """A list an older exporter does not give (empty then); a wrong type is an error."""
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise StateFormatError(f"maxscale.{key}: wrong type")
    return value


def _monitor(m: Any) -> MonitorView:
    where = "maxscale.monitors"
    return MonitorView(
        name=_req(m, "name", str, where),
        module=_req(m, "module", str, where),
        lock_mode=_req(m, "lock_mode", str, where),
        primary=_req(m, "primary", bool, where, True),
        master=_req(m, "master", str, where, True),
        locks=tuple(
            ServerLock(_req(lk, "server", str, where), _req(lk, "held", bool, where, True))
            for lk in _req(m, "locks", list, where)
        ),
    )


__all__ = [
    "governing_instance",
    "MODES",
    "CheckView",
    "InstanceState",
    "KeepalivedView",
    "MaxScaleView",
    "NodeState",
    "NodeVip",
    "NotifyView",
    "StateFormatError",
    "VipState",
]

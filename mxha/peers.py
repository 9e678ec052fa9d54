"""What ``mxha notify`` reads of its peers before going active: each peer's ``/state`` (and, when
configured, its MaxScale directly), side by side, all within one deadline.

Standard library only (``mxha notify`` is a fresh process per event). The observation it builds is
the policy's ``NodeObservation``, filled the way the remediator fills it: a peer's MaxScale mode
counts only when it was read (from the peer's MaxScale, or else from the peer's exporter, which
reads it live for every ``/state``); anything unusable leaves the mode unknown.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from mxha.config import PeerSettings
from mxha.maxscale import MaxScaleError, read_status
from mxha.model import NodeState, StateFormatError, node_state_from_json
from mxha.policy import OK, UNKNOWN, NodeObservation
from mxha.transport import HttpJsonError, JsonHttpClient


@dataclass(frozen=True)
class PeerReading:
    observation: NodeObservation
    problem: str | None = None  # why this peer cannot be relied on, in a few words (never a secret)
    state: NodeState | None = None  # its /state, when it was read

    @property
    def name(self) -> str:
        return self.observation.name

    def summary(self) -> str:
        o = self.observation
        if self.problem:
            return f"{o.name}: {self.problem}"
        mode = "active" if o.is_active else "passive" if o.mode_known else "mode unknown"
        vip = "VIP" if o.holds_vip else "no VIP"
        return f"{o.name}: {o.vrrp_state} prio {o.priority} {vip} check {'ok' if o.check_ok else 'failing'} {mode}"


@dataclass
class _DirectRead:
    """The peer's MaxScale read directly (when configured)."""

    passive: bool | None = None
    config_sync: bool | None = None
    locks: str | None = None
    error: str | None = None


def read_peer(peer: PeerSettings, deadline: float) -> PeerReading:
    """One peer: its /state and (if configured) its MaxScale, by ``deadline``."""
    direct = _DirectRead(error="its MaxScale: no answer by the deadline")
    ms_thread = None
    if peer.maxscale is not None:
        settings = peer.maxscale

        def read_ms() -> None:
            try:
                status = read_status(settings.client(), deadline)
            except MaxScaleError as exc:
                direct.error = f"its MaxScale: {exc.error_kind}"
                return
            direct.passive, direct.config_sync, direct.locks = status.passive, status.config_sync, status.lock_mode
            direct.error = None if status.passive is not None else "its MaxScale: mode unknown"

        ms_thread = threading.Thread(target=read_ms, daemon=True)
        ms_thread.start()
    empty = NodeObservation(peer.name, None, None, None, None, maxscale=UNKNOWN)
    timeout = max(0.01, deadline - time.monotonic())
    client = JsonHttpClient(peer.state_url, connect_timeout=timeout, read_timeout=timeout)
    try:
        state = node_state_from_json(client.get_json(None, deadline))
    except HttpJsonError as exc:
        return PeerReading(empty, f"/state unreadable ({exc.error_kind})")
    except StateFormatError as exc:
        return PeerReading(empty, f"/state malformed ({str(exc)[:80]})")
    gov = state.keepalived.governing()
    vrrp, priority = (gov.state, gov.priority) if state.keepalived.up and gov is not None else (None, None)
    ms = state.maxscale
    problem = None
    if ms_thread is not None:
        ms_thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
        if ms_thread.is_alive():  # still reading: nothing it found counts
            passive, config_sync, locks, problem = None, None, None, "its MaxScale: no answer by the deadline"
        else:
            passive, config_sync, locks, problem = direct.passive, direct.config_sync, direct.locks, direct.error
    else:
        passive, config_sync, locks = (ms.passive if ms.up else None), ms.config_sync, ms.locks
        if passive is None:
            problem = f"its MaxScale: {ms.error_kind or 'mode unknown'} (per its exporter)"
    obs = NodeObservation(
        peer.name,
        vrrp,
        priority,
        state.holds_governing_vip(),
        state.check.success,
        maxscale=OK if passive is not None else UNKNOWN,
        passive=passive,
        locks=locks,
        config_sync=config_sync,
        identity_ok=state.node == peer.name,
    )
    if not obs.identity_ok:
        problem = f"ignored: its /state names {state.node!r}"
    return PeerReading(obs, problem, state)


def read_peers(peers: tuple[PeerSettings, ...], deadline: float) -> list[PeerReading]:
    """Every peer side by side; a peer still unread at ``deadline`` counts as unreadable."""
    results: dict[str, PeerReading] = {}

    def one(peer: PeerSettings) -> None:
        results[peer.name] = read_peer(peer, deadline)

    threads = [threading.Thread(target=one, args=(p,), daemon=True) for p in peers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 0.1)
    return [
        results.get(p.name)
        or PeerReading(NodeObservation(p.name, None, None, None, None, maxscale=UNKNOWN), "no answer by the deadline")
        for p in peers
    ]

"""What ``mxha notify`` reads of its peers before going active: each peer's ``/state`` (and, when
configured, its MaxScale directly), side by side, all within one deadline.

Standard library only (``mxha notify`` is a fresh process per event). The observation is built by
the remediator's builder (``mxha.node_observation``): a peer's MaxScale mode counts only when it was
read (from the peer's MaxScale, or else from the peer's exporter, which reads it live for every
``/state``); anything unusable leaves the mode unknown, and silence never counts as down.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from mxha.config import PeerSettings
from mxha.maxscale import MaxScaleError, MaxScaleStatus, read_status
from mxha.model import NodeState, StateFormatError
from mxha.node_observation import observe_node, unknown
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

    status: MaxScaleStatus | None = None
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
            direct.status = status
            direct.error = None if status.passive is not None else "its MaxScale: mode unknown"

        ms_thread = threading.Thread(target=read_ms, daemon=True)
        ms_thread.start()
    timeout = max(0.01, deadline - time.monotonic())
    client = JsonHttpClient(peer.state_url, connect_timeout=timeout, read_timeout=timeout)
    try:
        state = NodeState.from_json(client.get_json(None, deadline))
    except HttpJsonError as exc:
        return PeerReading(unknown(peer.name), f"/state unreadable ({exc.error_kind})")
    except StateFormatError as exc:
        return PeerReading(unknown(peer.name), f"/state malformed ({str(exc)[:80]})")
    ms = state.maxscale
    read: MaxScaleStatus | None = None
    if ms_thread is not None:
        ms_thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
        if ms_thread.is_alive():  # still reading: nothing it found counts
            problem: str | None = "its MaxScale: no answer by the deadline"
        else:
            read, problem = direct.status, direct.error
        passive = read.passive if read is not None else None
    else:
        passive = ms.passive if ms.up else None
        problem = None if passive is not None else f"its MaxScale: {ms.error_kind or 'mode unknown'} (per its exporter)"
    # silence never counts as down here: a peer that does not answer is only unknown
    obs = observe_node(
        peer.name,
        state,
        read,
        maxscale=OK if passive is not None else UNKNOWN,
        exporter_view=ms_thread is None,
        plan_facts=False,
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
    return [results.get(p.name) or PeerReading(unknown(p.name), "no answer by the deadline") for p in peers]

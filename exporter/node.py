"""One node's snapshot: keepalived, the kernel's addresses, MaxScale and the cached check,
each read with its own timeout and its own error, and the ``/state`` document built from it."""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mxha.config import NodeConfig
from mxha.doctor import SetupWatch
from mxha.exporter.keepalived import (
    FifoEventReader,
    KeepalivedReadError,
    KeepalivedState,
    SignalDumpReader,
    json_signal_number,
)
from mxha.failure_edges import FailureEdges
from mxha.hazards import Hazard, node_hazards
from mxha.healthcheck import CheckResult, run_check
from mxha.maxscale import MaxScaleClient, MaxScaleError, MaxScaleStatus, MonitorView, ServerView, begin_status
from mxha.model import (
    CheckView,
    InstanceState,
    KeepalivedView,
    MaxScaleView,
    NodeState,
    NodeVip,
    NotifyView,
    VipState,
    governing_instance,
)
from mxha.notify_record import NotifyRecord
from mxha.statedir import FOLLOW_UP_STALE_SECONDS, follow_up_age
from mxha.vip import VipLookupError, local_addresses

log = logging.getLogger("mxha.exporter")


class KeepalivedSource(Protocol):
    def read(self) -> KeepalivedState: ...


def begin_read(source: KeepalivedSource) -> Callable[[], KeepalivedState]:
    """Start reading ``source`` (a dump reader signals keepalived now); the call returned finishes it.
    Sources without two halves (the FIFO reader) are read when the call is made."""
    begin = getattr(source, "begin", None)
    return begin() if callable(begin) else source.read


@dataclass(frozen=True)
class MaxScaleReading:
    up: bool
    error: str | None
    read_at: float
    duration_seconds: float
    passive: bool | None = None
    config_sync: bool | None = None
    version: str | None = None
    commit: str | None = None
    activated_at: float | None = None
    servers: tuple[ServerView, ...] = ()
    monitors: tuple[MonitorView, ...] = ()
    error_kind: str | None = None  # mxha.transport.ERROR_KINDS, while not up

    lock_mode: str = "none"

    @classmethod
    def of(cls, status: MaxScaleStatus, read_at: float, duration_seconds: float) -> MaxScaleReading:
        """The reading of a MaxScale that answered: its documents' view."""
        return cls(
            up=True,
            error=None,
            read_at=read_at,
            duration_seconds=duration_seconds,
            passive=status.passive,
            config_sync=status.config_sync,
            version=status.version,
            commit=status.commit,
            activated_at=_parse_http_date(status.activated_at),
            servers=status.servers,
            monitors=status.monitors,
            lock_mode=status.lock_mode,
        )

    @property
    def locks(self) -> str | None:
        return self.lock_mode if self.up else None


class NotifyStateCache:
    """The notify record, parsed again only when its bytes changed: reading a few KiB is cheap,
    parsing and rebuilding the view once per scrape was not. Comparing bytes, not stat fields,
    so a rewrite within one mtime tick onto a recycled inode is never missed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._raw: bytes | None = None
        self._view: NotifyView | None = None

    def read(self) -> NotifyView | None:
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except OSError:
            self._raw, self._view = None, None
            return None
        if raw != self._raw:
            self._view, self._raw = notify_view(NotifyRecord.from_bytes(raw)), raw
        return self._view


def notify_view(record: NotifyRecord) -> NotifyView | None:
    last = record.last_acted()
    if last is None:
        return None
    return NotifyView(
        last.time,
        last.state,
        last.ok is not False,
        record.desired_passive,
        last.result[:300],
        record.yielded_to,
        record.locks_released_at,
    )


@dataclass(frozen=True)
class Snapshot:
    node: str
    time: float
    keepalived: KeepalivedState | None
    keepalived_error: str | None
    keepalived_read_at: float | None
    keepalived_duration: float
    governing_instance: str | None
    vips: tuple[NodeVip, ...]
    vip_error: str | None
    check: CheckResult | None
    check_max_age: float
    maxscale: MaxScaleReading
    signals_sent: int = 0
    notify: NotifyView | None = None
    mode: str = "passive"  # the node config's coordination mode
    hazards: tuple[Hazard, ...] = ()

    def check_success(self) -> bool:
        return self.check is not None and self.check.judged_at(self.time, self.check_max_age)[0]

    def to_state(self) -> NodeState:
        """The contract's ``/state`` document, as its one model."""
        ka = self.keepalived
        instances = []
        if ka is not None:
            present = {(v.vrrp_instance, v.address): v.present for v in self.vips}
            for inst in ka.instances:
                instances.append(
                    InstanceState(
                        name=inst.name,
                        vrid=inst.vrid,
                        interface=inst.interface,
                        state=inst.state,
                        priority=inst.priority,
                        base_priority=inst.base_priority,
                        governing=inst.name == self.governing_instance,
                        vips=tuple(VipState(v.address, present.get((inst.name, v.address), False)) for v in inst.vips),
                        last_transition=inst.last_transition,
                    )
                )
        if self.check is None:
            check = CheckView(False, "no check has run yet", None, None)
        else:
            success, reason, _age = self.check.judged_at(self.time, self.check_max_age)
            check = CheckView(success, reason, self.check.checked_at, self.check.duration_seconds)
        ms = self.maxscale
        return NodeState(
            node=self.node,
            time=self.time,
            keepalived=KeepalivedView(
                up=ka is not None,
                source=ka.source if ka else None,
                read_at=self.keepalived_read_at,
                error=self.keepalived_error,
                instances=tuple(instances),
            ),
            vips=self.vips,
            vip_error=self.vip_error,
            check=check,
            maxscale=MaxScaleView(
                up=ms.up,
                passive=ms.passive,
                config_sync=ms.config_sync,
                locks=ms.locks,
                read_at=ms.read_at,
                error=ms.error,
                error_kind=ms.error_kind,
                version=ms.version,
                servers=ms.servers if ms.up else (),
                monitors=ms.monitors if ms.up else (),
            ),
            notify=self.notify,
            mode=self.mode,
            hazards=self.hazards,
        )


def _parse_http_date(value: Any) -> float | None:
    """An HTTP date (MaxScale's ``activated_at``) as Unix time; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def begin_maxscale(client: MaxScaleClient, timeout: float) -> Callable[[], MaxScaleReading]:
    """Send MaxScale's three requests now (``read_status``: side by side, one deadline, in this
    thread); the call returned takes the answers. The scrape's thread meanwhile waits for nothing:
    keepalived writes its dump and the kernel is asked for its addresses."""
    started = time.monotonic()
    now = time.time()
    finish = begin_status(client, started + timeout, servers=True)

    def reading() -> MaxScaleReading:
        try:
            status = finish()
        except MaxScaleError as exc:
            return MaxScaleReading(False, str(exc), now, time.monotonic() - started, error_kind=exc.error_kind)
        return MaxScaleReading.of(status, now, time.monotonic() - started)

    return reading


def make_keepalived_source(cfg: NodeConfig) -> tuple[KeepalivedSource, SignalDumpReader]:
    ka = cfg.keepalived
    mode = ka.source
    signum = json_signal_number(ka.keepalived_binary) if mode in ("auto", "json", "fifo") else None
    if mode == "json" and signum is None:
        log.warning(
            "%s --signum=JSON gave no signal number: this keepalived has no JSON dump; using the text dumps",
            ka.keepalived_binary,
        )
    dump_mode = "json" if signum is not None and mode != "text" else "text"
    dump = SignalDumpReader(
        pid_file=ka.pid_file,
        dump_dir=ka.dump_dir,
        mode=dump_mode,
        min_interval=ka.min_signal_interval,
        timeout=ka.dump_timeout,
        json_signum=signum,
    )
    if mode == "fifo" and ka.notify_fifo:
        fifo = FifoEventReader(ka.notify_fifo, dump)
        fifo.start()
        return fifo, dump
    return dump, dump


SILENT_MAXSCALE_TIMEOUT = 0.1  # seconds a snapshot waits for a MaxScale the last check found silent


class NodeReader:
    """Reads everything a snapshot needs; concurrent callers within ``min_interval`` share one."""

    def __init__(
        self,
        cfg: NodeConfig,
        keepalived: KeepalivedSource,
        *,
        client: MaxScaleClient | None = None,
        dump: SignalDumpReader | None = None,
        addresses: Callable[[], set[str]] = local_addresses,
    ) -> None:
        self.cfg = cfg
        self.keepalived = keepalived
        self.dump = dump
        self.client = client or cfg.maxscale.client(keep_alive=True)
        self.addresses = addresses
        self.min_interval = cfg.keepalived.min_signal_interval
        self._lock = threading.Lock()
        self._cached: Snapshot | None = None
        self._cached_at = float("-inf")
        self._known_vips: dict[tuple[str, str], bool] = {}  # (instance, address) -> governing
        self.check_result: CheckResult | None = None
        self.check_loop_at = time.monotonic()
        self.notify_state = NotifyStateCache(cfg.notify.state_file)
        self.maxscale_timeout = min(cfg.check.timeout, cfg.maxscale.connect_timeout + cfg.maxscale.read_timeout)
        # the check loop's own kept-alive connection: a new TCP connection (and its handshake) every
        # interval cost more CPU than the check; a stale one is replaced transparently
        self.check_client = cfg.maxscale.client(keep_alive=True)
        self.started = time.monotonic()
        # a source that fails is logged once, with why, and once when it recovers: not per scrape
        self.edges = FailureEdges(log)
        self.maxscale_source = f"MaxScale {self.client.shown_url}"
        # MaxScale's own setup and the state directory's (mxha doctor's rules), every few minutes
        self.setup_watch = SetupWatch(cfg)

    # -- the background health check ----------------------------------------------------
    def run_check_once(self) -> CheckResult:
        result = run_check(
            self.check_client,
            self.cfg.check.expected_servers,
            self.cfg.check.require_running,
            self.cfg.check.timeout,
            self.cfg.check_peers,
        )
        self.check_result = result
        self.check_loop_at = time.monotonic()
        return result

    def check_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.run_check_once()
            except Exception:  # noqa: BLE001 - the loop must survive; a stale result then fails /check
                log.exception("health check raised")
            stop.wait(max(0.0, self.cfg.check.interval - (time.monotonic() - started)))

    def check_loop_alive(self) -> bool:
        return time.monotonic() - self.check_loop_at <= self.cfg.check.max_age

    # -- snapshots ----------------------------------------------------------------------
    def governing_instance(self, state: KeepalivedState | None) -> str | None:
        names = frozenset(i.name for i in state.instances) if state is not None else frozenset()
        return governing_instance(self.cfg.keepalived.governing_instance, names)

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached_at < self.min_interval:
                return self._replace_check(self._cached)
            snap = self._read()
            self._cached, self._cached_at = snap, time.monotonic()
            return snap

    def _replace_check(self, snap: Snapshot) -> Snapshot:
        from dataclasses import replace

        return replace(snap, check=self.check_result, time=time.time())

    def _read(self) -> Snapshot:
        # Everything slow is started first and waited for last, in one thread (hand-offs to other
        # threads cost more CPU than the reads): keepalived is signalled, MaxScale's requests sent;
        # while both answer, the notify record is read; then MaxScale's answers are taken, then the
        # dump, and only then the kernel's addresses. keepalived adds the VIP before it can dump
        # MASTER (and removes it before it dumps BACKUP), so addresses read after the dump agree
        # with it; read before it, a transition in between gave a MASTER without its VIP.
        ka_started = time.monotonic()
        finish_keepalived = begin_read(self.keepalived)
        ka_spent = time.monotonic() - ka_started
        finish_maxscale = begin_maxscale(self.client, self.maxscale_read_timeout())
        notify = self.notify_state.read()
        ms = finish_maxscale()
        ka_resumed = time.monotonic()
        ka_state: KeepalivedState | None = None
        ka_error: str | None = None
        try:
            ka_state = finish_keepalived()
            wanted = self.cfg.keepalived.instances
            if wanted:
                ka_state = KeepalivedState(
                    tuple(i for i in ka_state.instances if i.name in wanted),
                    ka_state.scripts,
                    ka_state.source,
                    ka_state.read_at,
                )
        except KeepalivedReadError as exc:
            ka_error = str(exc)
        except (OSError, ValueError) as exc:
            ka_error = f"{type(exc).__name__}: {exc}"
        ka_duration = ka_spent + (time.monotonic() - ka_resumed)  # our time on keepalived, not MaxScale's
        local, vip_error = self._local_addresses()
        self._log_edges(ms, ka_error)
        governing = self.governing_instance(ka_state)
        vips = self._vips(ka_state, governing, local)
        return Snapshot(
            node=self.cfg.node,
            time=time.time(),
            keepalived=ka_state,
            keepalived_error=ka_error,
            keepalived_read_at=ka_state.read_at if ka_state else None,
            keepalived_duration=ka_duration,
            governing_instance=governing,
            vips=vips,
            vip_error=vip_error,
            check=self.check_result,
            check_max_age=self.cfg.check.max_age,
            maxscale=ms,
            signals_sent=self.dump.signals_sent if self.dump else 0,
            notify=notify,
            mode=self.cfg.mode,
            hazards=self.hazards(),
        )

    def maxscale_read_timeout(self) -> float:
        """How long a snapshot waits for MaxScale. When the last check got no answer from it (a hang),
        at most ``SILENT_MAXSCALE_TIMEOUT``: a peer's notify reads this node's /state within its peer
        budget right after this node went FAULT, and a frozen MaxScale must not hold that answer for
        the whole timeout (it held it 0.59 s in the lab). The check itself keeps its full timeout."""
        last = self.check_result
        if last is not None and last.silent:
            return min(self.maxscale_timeout, SILENT_MAXSCALE_TIMEOUT)
        return self.maxscale_timeout

    def hazards(self) -> tuple[Hazard, ...]:
        """This node's setup hazards: a look at the config, one stat of the follow-up marker, and
        what the slow watch last found in MaxScale's own setup."""
        try:
            age, error = follow_up_age(self.cfg.notify.state_file), None
        except OSError as exc:
            age, error = None, exc.strerror or str(exc)
        own = node_hazards(
            self.cfg,
            follow_up_age=age,
            follow_up_error=error,
            running_for=time.monotonic() - self.started,
            stale_after=FOLLOW_UP_STALE_SECONDS,
        )
        return own + self.setup_watch.hazards()

    def _log_edges(self, ms: MaxScaleReading, ka_error: str | None) -> None:
        if ms.up:
            self.edges.ok(self.maxscale_source)
        else:
            self.edges.failed(self.maxscale_source, ms.error_kind or "document", ms.error or "")
        if ka_error is None:
            self.edges.ok("keepalived")
        else:
            self.edges.failed("keepalived", "unreadable", ka_error)

    def _local_addresses(self) -> tuple[set[str] | None, str | None]:
        try:
            return self.addresses(), None
        except VipLookupError as exc:
            return None, str(exc)

    def _vips(
        self, state: KeepalivedState | None, governing: str | None, local: set[str] | None
    ) -> tuple[NodeVip, ...]:
        """The VIPs keepalived declares (remembered across a failed read: the list is config, the
        presence is asked of the kernel every time) plus the configured ones."""
        if state is not None:
            self._known_vips = {(i.name, v.address): i.name == governing for i in state.instances for v in i.vips}
        if local is None:  # the kernel could not be asked: no presence is claimed either way
            return ()
        wanted = dict(self._known_vips)
        for address in self.cfg.keepalived.vips:
            if not any(a == address for _, a in wanted):
                wanted[(governing or self.cfg.keepalived.governing_instance or "", address)] = True
        return tuple(NodeVip(addr, inst, gov, addr in local) for (inst, addr), gov in sorted(wanted.items()))

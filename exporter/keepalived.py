"""Read keepalived's VRRP state: parsers (pure) and readers (signals, files, the notify FIFO).

Parsers take text and return dataclasses, or raise ``DumpParseError``; they never keep the
VRRP password (``Password =``, ``auth_data``), which keepalived writes in clear text.

Readers never hand back a half-written or stale dump: after signalling keepalived they
wait for a NEW file (inode or mtime change), validate it and retry within a bound, and
otherwise raise ``KeepalivedReadError`` (the exporter then reports ``mxha_keepalived_up 0``).
Signals are rate-limited: concurrent reads share one dump and keepalived is never
signalled more often than ``min_signal_interval``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from mxha.exporter.dumpwatch import DumpWatch

log = logging.getLogger("mxha.exporter.keepalived")
T = TypeVar("T")

STATES = ("INIT", "BACKUP", "MASTER", "FAULT", "STOP")
JSON_STATES = {0: "INIT", 1: "BACKUP", 2: "MASTER", 3: "FAULT", 97: "STOP", 98: "STOP"}


class DumpParseError(ValueError):
    """The dump is not (or not yet) a complete keepalived dump."""


class KeepalivedReadError(RuntimeError):
    """keepalived's state could not be read this time; the message says why."""


@dataclass(frozen=True)
class Vip:
    address: str  # bare address, no prefix length
    interface: str | None = None
    installed: bool | None = None  # keepalived's own "set" flag (2.x); the kernel is the truth


@dataclass(frozen=True)
class VrrpInstance:
    name: str
    vrid: int
    interface: str
    state: str
    priority: int
    base_priority: int
    last_transition: float | None = None
    vips: tuple[Vip, ...] = ()
    became_master: int | None = None
    released_master: int | None = None
    track_scripts: tuple[str, ...] = ()


@dataclass(frozen=True)
class VrrpScript:
    name: str
    status: str | None  # GOOD, BAD, or None where the source does not tell


@dataclass(frozen=True)
class KeepalivedState:
    instances: tuple[VrrpInstance, ...]
    scripts: tuple[VrrpScript, ...] = ()
    source: str = "json"
    read_at: float = field(default_factory=time.time)


# -- VIP lines ---------------------------------------------------------------------------
_VIP_RE = re.compile(r"^\s*(?P<addr>[0-9A-Fa-f:.]+)(?:/(?P<plen>\d+))?(?P<rest>(?:\s.*)?)$")


def parse_vip(line: str) -> Vip:
    """``192.0.2.100/24 dev v1 scope global set`` (also ``brd X`` before ``dev``)."""
    m = _VIP_RE.match(line)
    if not m:
        raise DumpParseError(f"not a VIP line: {line.strip()[:80]!r}")
    try:
        address = str(ipaddress.ip_address(m.group("addr")))
    except ValueError as exc:
        raise DumpParseError(f"bad VIP address {m.group('addr')[:60]!r}") from exc
    words = m.group("rest").split()
    interface = words[words.index("dev") + 1] if "dev" in words and words.index("dev") + 1 < len(words) else None
    installed = (words[-1] == "set") if words else None
    return Vip(address, interface, installed)


# -- JSON dump (keepalived --signum=JSON) ------------------------------------------------
def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DumpParseError(f"JSON instance field {key!r} missing or not an integer")
    return value


def parse_json_dump(text: str) -> list[VrrpInstance]:
    """json_version 1 (a list of {data, stats}) and 2 (``{"vrrp": [...]}``, 2.2.8+)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DumpParseError(f"keepalived.json is not valid JSON: {exc.msg} at {exc.pos}") from exc
    except RecursionError as exc:
        raise DumpParseError("keepalived.json is nested too deeply") from exc
    if isinstance(doc, dict):
        doc = doc.get("vrrp")
    if not isinstance(doc, list):
        raise DumpParseError("keepalived.json: expected a list of VRRP instances")
    out = []
    for item in doc:
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise DumpParseError("keepalived.json: instance without 'data'")
        data = item["data"]
        stats: dict[str, Any] = item["stats"] if isinstance(item.get("stats"), dict) else {}
        name = data.get("iname")
        if not isinstance(name, str) or not name:
            raise DumpParseError("keepalived.json: instance without 'iname'")
        state_num = _int(data, "state")
        if state_num not in JSON_STATES:
            raise DumpParseError(f"keepalived.json: unknown state {state_num} for {name}")
        vips_raw = data.get("vips", [])
        if not isinstance(vips_raw, list) or not all(isinstance(v, str) for v in vips_raw):
            raise DumpParseError(f"keepalived.json: bad 'vips' for {name}")
        last = data.get("last_transition")
        interface = data.get("ifp_ifname")
        out.append(
            VrrpInstance(
                name=name,
                vrid=_int(data, "vrid"),
                interface=interface if isinstance(interface, str) else "",
                state=JSON_STATES[state_num],
                priority=_int(data, "effective_priority"),
                base_priority=_int(data, "base_priority"),
                last_transition=float(last) if isinstance(last, (int, float)) and not isinstance(last, bool) else None,
                vips=tuple(parse_vip(v) for v in vips_raw),
                became_master=stats.get("become_master") if isinstance(stats.get("become_master"), int) else None,
                released_master=stats.get("release_master") if isinstance(stats.get("release_master"), int) else None,
            )
        )
    return out


# -- text dumps (SIGUSR1 keepalived.data, SIGUSR2 keepalived.stats) -----------------------
_SECTION_RE = re.compile(r"^-+< (?P<name>.+?) >-+\s*$")
_KV_RE = re.compile(r"^(?P<indent>\s*)(?P<key>[^=]+?)\s*=\s*(?P<value>.*?)\s*$")
_VIP_HEADER_RE = re.compile(r"^\s*Virtual IP\s*(?:\((?P<n1>\d+)\)\s*:|:|=\s*(?P<n2>\d+))\s*$")


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = "VRRP Topology"  # 1.3.x dumps may have no section markers
    for line in text.splitlines():
        m = _SECTION_RE.match(line)
        if m:
            current = m.group("name")
            sections.setdefault(current, [])
            continue
        sections.setdefault(current, []).append(line)
    return sections


def parse_data_dump(text: str) -> tuple[list[VrrpInstance], list[VrrpScript]]:
    """keepalived.data from 1.3.x to 2.4: instances and vrrp_script statuses."""
    sections = _sections(text)
    topology = sections.get("VRRP Topology", [])
    blocks: list[list[str]] = []
    for line in topology:
        if re.match(r"^\s*VRRP Instance\s*=", line):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    instances = [_parse_instance_block(b) for b in blocks]
    scripts = []
    script_name: str | None = None
    for line in sections.get("VRRP Scripts", []):
        kv = _KV_RE.match(line)
        if not kv:
            continue
        key, value = kv.group("key").strip(), kv.group("value")
        if key == "VRRP Script":
            script_name = value
        elif key == "Status" and script_name is not None:
            scripts.append(VrrpScript(script_name, value if value in ("GOOD", "BAD") else None))
            script_name = None
    return instances, scripts


def _parse_instance_block(lines: list[str]) -> VrrpInstance:
    fields: dict[str, str] = {}
    vips: list[Vip] = []
    tracked: list[str] = []
    mode: str | None = None
    for line in lines:
        if _VIP_HEADER_RE.match(line):
            mode = "vip"
            continue
        if re.match(r"^\s*Tracked scripts\s*:?\s*$", line) or re.match(r"^\s*Tracked scripts\s*=", line):
            mode = "track"
            continue
        if mode == "vip":
            if _VIP_RE.match(line) and "=" not in line:
                vips.append(parse_vip(line))
                continue
            mode = None
        if mode == "track":
            m = re.match(r"^\s+(?P<name>\S+)\s+weight\s+-?\d+", line)
            if m:
                tracked.append(m.group("name"))
                continue
            mode = None
        kv = _KV_RE.match(line)
        if kv:
            key = kv.group("key").strip()
            if key in ("Password", "Authentication password"):  # never keep the VRRP password
                continue
            fields.setdefault(key, kv.group("value"))
    name = fields.get("VRRP Instance")
    if not name:
        raise DumpParseError("instance block without a name")
    state = fields.get("State", "")
    if state not in STATES:
        raise DumpParseError(f"instance {name}: state {state[:20]!r} is not a VRRP state")
    interface = fields.get("Interface") or fields.get("Listening device") or ""
    try:
        vrid = int(fields["Virtual Router ID"])
        base = int(fields["Priority"])
        effective = int(fields.get("Effective priority", fields["Priority"]))
    except (KeyError, ValueError) as exc:
        raise DumpParseError(f"instance {name}: missing or bad vrid/priority") from exc
    last: float | None = None
    if "Last transition" in fields:
        try:
            last = float(fields["Last transition"].split()[0])
        except (ValueError, IndexError):
            last = None
    return VrrpInstance(
        name=name,
        vrid=vrid,
        interface=interface,
        state=state,
        priority=effective,
        base_priority=base,
        last_transition=last,
        vips=tuple(vips),
        track_scripts=tuple(tracked),
    )


def parse_stats_dump(text: str) -> dict[str, dict[str, int]]:
    """keepalived.stats: per instance counters. Tolerates 2.0.5's output without newlines."""
    chunks = re.split(r"VRRP Instance:\s*", text)
    out: dict[str, dict[str, int]] = {}
    for chunk in chunks[1:]:
        m = re.match(r"(\S+?)(?=\s|Advertisements:|$)", chunk)
        if not m:
            raise DumpParseError("stats block without an instance name")
        counters: dict[str, int] = {}
        for key, pattern in (
            ("became_master", r"Became master:\s*(\d+)"),
            ("released_master", r"Released master:\s*(\d+)"),
        ):
            found = re.search(pattern, chunk)
            if found:
                counters[key] = int(found.group(1))
        if "became_master" not in counters:
            raise DumpParseError(f"stats for {m.group(1)} incomplete")
        out[m.group(1)] = counters
    return out


def merge_stats(instances: list[VrrpInstance], stats: dict[str, dict[str, int]]) -> list[VrrpInstance]:
    return [
        replace(
            i,
            became_master=stats.get(i.name, {}).get("became_master"),
            released_master=stats.get(i.name, {}).get("released_master"),
        )
        for i in instances
    ]


# -- notify FIFO lines --------------------------------------------------------------------
_FIFO_RE = re.compile(
    r'^(?P<type>INSTANCE|GROUP)\s+"?(?P<name>[^"\s]+)"?\s+(?P<state>[A-Z_]+)(?:\s+(?P<prio>-?\d+))?\s*$'
)


@dataclass(frozen=True)
class FifoEvent:
    type: str
    name: str
    state: str
    priority: int | None


def parse_fifo_line(line: str) -> FifoEvent | None:
    """``INSTANCE "VI_1" MASTER 150``; None for lines that are not instance/group events."""
    m = _FIFO_RE.match(line.strip())
    if not m:
        return None
    prio = m.group("prio")
    return FifoEvent(m.group("type"), m.group("name"), m.group("state"), int(prio) if prio else None)


# -- readers -------------------------------------------------------------------------------
def read_pid(pid_file: str) -> int:
    try:
        with open(pid_file, encoding="ascii") as fh:
            pid = int(fh.read().strip())
    except FileNotFoundError as exc:
        raise KeepalivedReadError(f"keepalived not running: no pid file {pid_file}") from exc
    except (OSError, ValueError) as exc:
        raise KeepalivedReadError(f"cannot read pid file {pid_file}: {exc}") from exc
    try:
        os.kill(pid, 0)
    except ProcessLookupError as exc:
        raise KeepalivedReadError(f"keepalived not running: pid {pid} from {pid_file} is gone") from exc
    except PermissionError:
        pass  # exists; signalling it later will say if we may
    return pid


def json_signal_number(binary: str = "keepalived") -> int | None:
    """Ask keepalived which signal writes the JSON dump (SIGRTMIN+2 on glibc; don't hard-code)."""
    try:
        proc = subprocess.run([binary, "--signum=JSON"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    out = proc.stdout.strip()
    return int(out) if proc.returncode == 0 and out.isdigit() else None


def _stat_key(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class SignalDumpReader:
    """Signal keepalived, wait for new dump files, parse them; rate-limited and shared."""

    def __init__(
        self,
        *,
        pid_file: str,
        dump_dir: str,
        mode: str,
        min_interval: float = 1.0,
        timeout: float = 1.0,
        json_signum: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in ("json", "text"):
            raise ValueError(mode)
        if mode == "json" and json_signum is None:
            raise ValueError("json mode needs the JSON signal number")
        self.pid_file = pid_file
        self.dump_dir = dump_dir
        self.mode = mode
        self.min_interval = min_interval
        self.timeout = timeout
        self.json_signum = json_signum
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: KeepalivedState | None = None
        self._failure: str | None = None
        self._watch: DumpWatch | None = None
        self._watch_tried = False
        self._cached_at = float("-inf")
        self._done = threading.Event()  # cleared while a dump is on its way
        self._done.set()
        self.signals_sent = 0
        self.last_dump_seconds = 0.0

    def read(self) -> KeepalivedState:
        """The current state, from a dump no older than ``min_interval``."""
        return self.begin()()

    def begin(self) -> Callable[[], KeepalivedState]:
        """``read`` in two halves, for a caller with other work meanwhile: signal keepalived NOW (when
        the last dump is older than ``min_interval``); the returned call waits for the new dump and
        parses it (or returns the cached one, or raises as ``read`` does)."""
        with self._lock:
            if self._clock() - self._cached_at < self.min_interval:
                if not self._done.is_set():  # a dump is on its way: share it, never signal twice
                    return self._share(self._done)
                if self._failure is not None:
                    # a failed attempt counts against the limit too: no signal storm while
                    # keepalived cannot be read (permission denied, a wrong pid file)
                    return _raiser(KeepalivedReadError(f"{self._failure} (not retried within min_signal_interval)"))
                if self._cached is not None:
                    cached = self._cached
                    return lambda: cached
            self._cached_at = self._clock()
            self._cached, self._failure = None, None
            try:
                wait = self._start_dump()
            except (KeepalivedReadError, OSError, ValueError) as exc:
                self._failed(exc)
                return _raiser(exc)
            done = self._done = threading.Event()

        def finish() -> KeepalivedState:
            try:
                state = wait()
                with self._lock:
                    self._cached = state
                return state
            except (KeepalivedReadError, OSError, ValueError) as exc:
                with self._lock:
                    self._failed(exc)
                raise
            finally:
                done.set()  # after the result (or the failure) is recorded, for whoever shares it

        return finish

    def _share(self, done: threading.Event) -> Callable[[], KeepalivedState]:
        def shared() -> KeepalivedState:
            done.wait(self.timeout + 1.0)
            with self._lock:
                if self._cached is not None:
                    return self._cached
                raise KeepalivedReadError(self._failure or "the dump another reader asked for did not arrive")

        return shared

    def _failed(self, exc: Exception) -> None:
        self._failure = str(exc) if isinstance(exc, KeepalivedReadError) else f"{type(exc).__name__}: {exc}"

    def _start_dump(self) -> Callable[[], KeepalivedState]:
        """Send the dump signal(s); return the call that waits for the new files and parses them."""
        pid = read_pid(self.pid_file)
        if self._watch is None and not self._watch_tried:
            self._watch_tried = True
            self._watch = DumpWatch.open(self.dump_dir)
        if self._watch is not None:
            self._watch.drain()  # only writes after our signal wake us
        started = time.monotonic()
        deadline = started + self.timeout
        if self.mode == "json":
            path = os.path.join(self.dump_dir, "keepalived.json")
            before = _stat_key(path)
            self._signal(pid, self.json_signum or 0)

            def wait_json() -> KeepalivedState:
                instances = self._wait_new(path, before, deadline, parse_json_dump)
                self.last_dump_seconds = time.monotonic() - started
                return KeepalivedState(tuple(instances), (), self.mode, time.time())

            return wait_json
        data_path = os.path.join(self.dump_dir, "keepalived.data")
        stats_path = os.path.join(self.dump_dir, "keepalived.stats")
        before_data, before_stats = _stat_key(data_path), _stat_key(stats_path)
        self._signal(pid, signal.SIGUSR1)
        self._signal(pid, signal.SIGUSR2)

        def wait_text() -> KeepalivedState:
            parsed, scripts = self._wait_new(data_path, before_data, deadline, _parse_complete_data)
            stats = self._wait_new(stats_path, before_stats, deadline, _parse_complete_stats)
            self.last_dump_seconds = time.monotonic() - started
            return KeepalivedState(tuple(merge_stats(parsed, stats)), tuple(scripts), self.mode, time.time())

        return wait_text

    def _signal(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError as exc:
            raise KeepalivedReadError(f"keepalived pid {pid} vanished") from exc
        except PermissionError as exc:
            raise KeepalivedReadError(f"not allowed to signal keepalived pid {pid} (needs CAP_KILL or root)") from exc
        self.signals_sent += 1

    def _wait_new(
        self, path: str, before: tuple[int, int, int] | None, deadline: float, parse: Callable[[str], T]
    ) -> T:
        """Wait for ``path`` to be a new file that parses; never return the old or a partial one.

        Woken by inotify when keepalived writes (``DumpWatch``), with a short poll as a safety net;
        without inotify, polls with a back-off from 0.5 ms."""
        pause = 0.0005
        last_error = "no new dump appeared"
        while True:
            key = _stat_key(path)
            if key is not None and (before is None or key[:2] != before[:2]):
                try:
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        return parse(fh.read())
                except PermissionError as exc:
                    raise KeepalivedReadError(
                        f"cannot read {path}: permission denied (keepalived writes 0600; see docs/exporter.md: --umask)"
                    ) from exc
                except (OSError, DumpParseError) as exc:
                    last_error = str(exc)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KeepalivedReadError(f"{os.path.basename(path)}: {last_error} within the dump timeout")
            if self._watch is not None:
                self._watch.wait(min(remaining, 0.005))
            else:
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.005)


def _parse_complete_data(text: str) -> tuple[list[VrrpInstance], list[VrrpScript]]:
    instances, scripts = parse_data_dump(text)
    # keepalived writes the interfaces section after the instances and scripts (2.x);
    # 1.3.x has no section markers, so accept what parses there.
    if not instances or ("------< Interfaces >------" not in text and "------<" in text):
        raise DumpParseError("keepalived.data incomplete")
    return instances, scripts


def _parse_complete_stats(text: str) -> dict[str, dict[str, int]]:
    blocks = parse_stats_dump(text)
    tail = text.rstrip().splitlines()[-1] if text.strip() else ""
    if not blocks or not tail.strip().startswith("Sent:"):
        raise DumpParseError("keepalived.stats incomplete")
    return blocks


def _raiser(exc: Exception) -> Callable[[], KeepalivedState]:
    def fail() -> KeepalivedState:
        raise exc

    return fail


class FifoEventReader:
    """Event source: keepalived's ``vrrp_notify_fifo`` lines update the state; one dump at start
    (and every ``resync_interval``, or when an unknown instance appears) gives vrid, interface,
    VIPs and priorities, which the FIFO does not carry."""

    def __init__(self, fifo_path: str, dump: SignalDumpReader, resync_interval: float = 300.0) -> None:
        self.fifo_path = fifo_path
        self.dump = dump
        self.resync_interval = resync_interval
        self._lock = threading.Lock()
        self._base: KeepalivedState | None = None
        self._base_at = float("-inf")
        self._events: dict[str, FifoEvent] = {}
        self._event_times: dict[str, float] = {}
        self._needs_resync = True
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="notify-fifo", daemon=True)
        self.lines_read = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.fifo_path, os.O_RDWR | os.O_NONBLOCK)
            except OSError as exc:
                log.warning("cannot open notify FIFO %s: %s", self.fifo_path, exc)
                self._stop.wait(1.0)
                continue
            buf = b""
            try:
                import select

                while not self._stop.is_set():
                    ready, _, _ = select.select([fd], [], [], 0.5)
                    if not ready:
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for raw in lines:
                        self._on_line(raw.decode("utf-8", errors="replace"))
            except OSError as exc:
                log.warning("notify FIFO read failed: %s", exc)
            finally:
                os.close(fd)

    def _on_line(self, line: str) -> None:
        event = parse_fifo_line(line)
        self.lines_read += 1
        if event is None or event.type != "INSTANCE" or event.state not in STATES:
            return  # MASTER_RX_LOWER_PRI and friends are events, not states
        with self._lock:
            self._events[event.name] = event
            self._event_times[event.name] = time.time()
            if self._base is not None and event.name not in {i.name for i in self._base.instances}:
                self._needs_resync = True

    def read(self) -> KeepalivedState:
        # events say nothing when keepalived dies: check the process every read (cheap, no signal)
        pid = read_pid(self.dump.pid_file)
        with self._lock:
            stale = time.monotonic() - self._base_at >= self.resync_interval > 0
            if pid != self._pid:  # started or restarted: its instances may have changed
                self._needs_resync = True
                self._pid = pid
            if self._needs_resync or self._base is None or stale:
                self._base = self.dump.read()
                self._base_at = time.monotonic()
                self._needs_resync = False
                # a fresh dump is newer than every event before it
                self._events = {k: v for k, v in self._events.items() if self._event_times[k] > self._base.read_at}
            base = self._base
            events = dict(self._events)
            times = dict(self._event_times)
        merged = []
        for inst in base.instances:
            ev = events.get(inst.name)
            if ev is not None:
                inst = replace(
                    inst,
                    state=ev.state,
                    priority=ev.priority if ev.priority is not None else inst.priority,
                    last_transition=times[inst.name],
                )
            merged.append(inst)
        return KeepalivedState(tuple(merged), base.scripts, "fifo", time.time())

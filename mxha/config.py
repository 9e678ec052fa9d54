"""Configuration files, validated at start-up into typed objects.

A bad file stops the program with ONE line naming the key (``ConfigError``). Secrets may
come from the file, a file of their own, or the environment; they are never logged.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any

from mxha.maxscale import MaxScaleClient
from mxha.model import MODES


class ConfigError(Exception):
    """One line, naming the key: ``config error: maxscale.url: must be http(s)://HOST[:PORT]``."""


def load_yaml(path: str) -> dict[str, Any]:
    import yaml  # imported here: `mxha check` pays for it only when it reads a config

    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys")
    return doc


class Section:
    """Typed reads from one mapping, with errors that name the full key path."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'top level'}: must be a mapping")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str) -> Any:
        self.used.add(name)
        return self.data.get(name)

    def section(self, name: str) -> Section:
        return Section(self._get(name), self.key(name))

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self._get(name)
        if value is None:
            if required:
                raise ConfigError(f"{self.key(name)}: required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.key(name)}: must be a non-empty string")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: must be true or false")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None) -> float:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{self.key(name)}: must be a number")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
            raise ConfigError(f"{self.key(name)}: must be {bound}")
        return float(value)

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{self.key(name)}: must be an integer >= {minimum}")
        return value

    def strings(self, name: str) -> list[str]:
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.key(name)}: must be a list of strings")
        return list(value)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(name)
        if value is None:
            return default
        if value not in choices:
            raise ConfigError(f"{self.key(name)}: must be one of {', '.join(choices)}")
        return str(value)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.key(unknown[0])}: unknown key")


def read_secret(sec: Section, base: str, *, default: str | None = None) -> str | None:
    """``base`` from the file itself, ``base_file`` (a file holding it) or ``base_env`` (a variable).

    An empty secret is refused, naming the key: a password of "" would let ``user:`` in.
    """
    given = [n for n in (base, f"{base}_file", f"{base}_env") if sec.data.get(n) is not None]
    if len(given) > 1:
        raise ConfigError(f"{sec.key(given[1])}: give only one of {base}, {base}_file, {base}_env")
    inline = sec.text(base)
    path = sec.text(f"{base}_file")
    env = sec.text(f"{base}_env")
    if inline is not None:
        return str(inline)
    value: str | None = default
    key = base
    if path is not None:
        key = f"{base}_file"
        try:
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{sec.key(key)}: cannot read {path}: {exc.strerror}") from exc
        if not value.strip():
            raise ConfigError(f"{sec.key(key)}: {path} is empty; an empty secret is refused")
    elif env is not None:
        key = f"{base}_env"
        value = os.environ.get(str(env))
        if value is None:
            raise ConfigError(f"{sec.key(key)}: environment variable {env} is not set")
        if not value.strip():
            raise ConfigError(f"{sec.key(key)}: environment variable {env} is empty; an empty secret is refused")
    return value


@dataclass(frozen=True)
class MaxScaleSettings:
    url: str = "http://127.0.0.1:8989"
    user: str = "admin"
    password: str = field(default="mariadb", repr=False)
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    connect_timeout: float = 0.5
    read_timeout: float = 1.5

    def client(self, keep_alive: bool = False) -> MaxScaleClient:
        return MaxScaleClient(
            self.url,
            self.user,
            self.password,
            ca_file=self.ca_file,
            insecure=self.insecure_skip_verify,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            keep_alive=keep_alive,
        )


def parse_maxscale(sec: Section) -> MaxScaleSettings:
    url = sec.text("url", "http://127.0.0.1:8989")
    if not re.match(r"^https?://[^/\s]+(/.*)?$", url):
        raise ConfigError(f"{sec.key('url')}: must be http(s)://HOST[:PORT]")
    password = read_secret(sec, "password", default="mariadb")
    settings = MaxScaleSettings(
        url=url,
        user=sec.text("user", "admin"),
        password=password or "",
        ca_file=sec.text("ca_file"),
        insecure_skip_verify=sec.flag("insecure_skip_verify", False),
        connect_timeout=sec.number("connect_timeout", 0.5, minimum=0.01, maximum=30),
        read_timeout=sec.number("read_timeout", 1.5, minimum=0.01, maximum=60),
    )
    if settings.ca_file is not None and not os.path.exists(settings.ca_file):
        raise ConfigError(f"{sec.key('ca_file')}: {settings.ca_file} does not exist")
    sec.finish()
    return settings


@dataclass(frozen=True)
class CheckSettings:
    expected_servers: tuple[str, ...] = ()
    require_running: bool = False
    timeout: float = 2.0
    interval: float = 2.0
    max_age: float = 6.0
    primary_seen_by_peers: bool = True  # fail when the primary is Down here but Running for a peer
    # with keepalived.vips: look whether MaxScale's mode (and, mode: locks, its locks) agrees with live
    # state at each check, and start a recheck (`mxha notify` without arguments) when it does not
    follow_up: bool = True
    # the exporter's crash watch: 1 in this file the moment MaxScale's REST port refuses connections,
    # 0 once it listens and the check passed again (keepalived's track_file; None: no watch)
    track_file: str | None = None


@dataclass(frozen=True)
class KeepalivedSettings:
    source: str = "auto"  # auto | json | text | fifo
    pid_file: str = "/run/keepalived.pid"
    dump_dir: str = "/tmp"
    governing_instance: str | None = None
    instances: tuple[str, ...] = ()
    vips: tuple[str, ...] = ()
    min_signal_interval: float = 1.0
    dump_timeout: float = 1.0
    notify_fifo: str | None = None
    keepalived_binary: str = "keepalived"


@dataclass(frozen=True)
class NotifySettings:
    state_file: str = "/var/lib/mxha/notify-state.json"
    lock_file: str | None = None
    timeout: float = 5.0
    release_locks: bool = True
    group_events: bool = False
    log_file: str | None = None
    peer_budget: float = 1.0  # reading the peers (and waiting for a worse active one), in all
    # MaxScale's no-relock back-off after release-locks (fixed at one minute in its source): a peer
    # whose hook released within this long cannot take the locks, so they are not handed to it
    relock_backoff: float = 60.0


@dataclass(frozen=True)
class PeerSettings:
    """Another node of the pair, as ``mxha notify`` asks it before going active."""

    name: str
    state_url: str  # its exporter's /state
    maxscale: MaxScaleSettings | None = None  # read its MaxScale's mode directly too (optional)


@dataclass(frozen=True)
class NodeConfig:
    node: str
    maxscale: MaxScaleSettings
    check: CheckSettings
    keepalived: KeepalivedSettings
    notify: NotifySettings
    listen_address: str = ":9843"
    source_path: str | None = None
    peers: tuple[PeerSettings, ...] = ()
    mode: str = "passive"  # passive (MaxScale's passive flag, the tutorial's setup) or locks

    @property
    def check_peers(self) -> tuple[PeerSettings, ...]:
        """The peers the health check compares the primary's view with (``check.primary_seen_by_peers``)."""
        return self.peers if self.check.primary_seen_by_peers else ()


KEEPALIVED_SOURCES = ("auto", "json", "text", "fifo")


def _vip_list(sec: Section, name: str) -> tuple[str, ...]:
    out = []
    for item in sec.strings(name):
        try:
            out.append(str(ipaddress.ip_address(item.split("/")[0])))
        except ValueError as exc:
            raise ConfigError(f"{sec.key(name)}: {item!r} is not an IP address") from exc
    return tuple(out)


def parse_node_config(doc: dict[str, Any], source_path: str | None = None) -> NodeConfig:
    top = Section(doc, "")
    import socket

    node = top.text("node", socket.gethostname())
    mode = top.choice("mode", "passive", MODES)
    maxscale = parse_maxscale(top.section("maxscale"))
    chk = top.section("check")
    check = CheckSettings(
        expected_servers=tuple(chk.strings("expected_servers")),
        require_running=chk.flag("require_running", False),
        timeout=chk.number("timeout", 2.0, minimum=0.05, maximum=60),
        interval=chk.number("interval", 2.0, minimum=0.1, maximum=3600),
        max_age=chk.number("max_age", 0.0, minimum=0.0, maximum=86400),
        primary_seen_by_peers=chk.flag("primary_seen_by_peers", True),
        follow_up=chk.flag("follow_up", True),
        track_file=chk.text("track_file"),
    )
    if check.max_age == 0.0:
        check = CheckSettings(
            check.expected_servers,
            check.require_running,
            check.timeout,
            check.interval,
            max(3 * check.interval, check.interval + check.timeout + 1.0),
            check.primary_seen_by_peers,
            check.follow_up,
            check.track_file,
        )
    chk.finish()
    ka = top.section("keepalived")
    keepalived = KeepalivedSettings(
        source=ka.choice("source", "auto", KEEPALIVED_SOURCES),
        pid_file=ka.text("pid_file", "/run/keepalived.pid"),
        dump_dir=ka.text("dump_dir", "/tmp"),
        governing_instance=ka.text("governing_instance"),
        instances=tuple(ka.strings("instances")),
        vips=_vip_list(ka, "vips"),
        min_signal_interval=ka.number("min_signal_interval", 1.0, minimum=0.0, maximum=3600),
        dump_timeout=ka.number("dump_timeout", 1.0, minimum=0.05, maximum=30),
        notify_fifo=ka.text("notify_fifo"),
        keepalived_binary=ka.text("keepalived_binary", "keepalived"),
    )
    if keepalived.source == "fifo" and not keepalived.notify_fifo:
        raise ConfigError("keepalived.notify_fifo: required when keepalived.source is fifo")
    ka.finish()
    nt = top.section("notify")
    notify = NotifySettings(
        state_file=nt.text("state_file", "/var/lib/mxha/notify-state.json"),
        lock_file=nt.text("lock_file"),
        timeout=nt.number("timeout", 5.0, minimum=0.1, maximum=60),
        release_locks=nt.flag("release_locks", True),
        group_events=nt.flag("group_events", False),
        log_file=nt.text("log_file"),
        peer_budget=nt.number("peer_budget", 1.0, minimum=0.05, maximum=10),
        relock_backoff=nt.number("relock_backoff", 60.0, minimum=0, maximum=3600),
    )
    nt.finish()
    ex = top.section("exporter")
    listen = ex.text("listen_address", ":9843")
    ex.finish()
    peers = parse_peers(top, node)
    top.finish()
    return NodeConfig(
        node=node,
        maxscale=maxscale,
        check=check,
        keepalived=keepalived,
        notify=notify,
        listen_address=listen,
        source_path=source_path,
        peers=peers,
        mode=mode,
    )


_HTTP_URL = re.compile(r"^https?://[^/\s]+(/.*)?$")


def parse_peers(top: Section, node: str) -> tuple[PeerSettings, ...]:
    value = top._get("peers")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("peers: must be a list of {name, state_url[, maxscale]}")
    out: list[PeerSettings] = []
    for i, item in enumerate(value):
        sec = Section(item, f"peers[{i}]")
        name = sec.text("name", required=True)
        if name == node:
            raise ConfigError(f"{sec.key('name')}: {name!r} is this node (node: {node})")
        if any(p.name == name for p in out):
            raise ConfigError(f"{sec.key('name')}: {name!r} is listed twice")
        url = sec.text("state_url", required=True)
        if not _HTTP_URL.match(url):
            raise ConfigError(f"{sec.key('state_url')}: must be http(s)://HOST[:PORT]/state")
        ms = None
        if sec.data.get("maxscale") is not None:
            ms_sec = sec.section("maxscale")
            if ms_sec.data.get("url") is None:
                raise ConfigError(f"{ms_sec.key('url')}: required (the peer's MaxScale REST API)")
            ms = parse_maxscale(ms_sec)
        sec.finish()
        out.append(PeerSettings(name, url, ms))
    return tuple(out)


def load_node_config(path: str) -> NodeConfig:
    return parse_node_config(load_yaml(path), path)


def parse_listen_address(value: str, default_port: int) -> tuple[str, int]:
    """Prometheus style: ``:9843``, ``0.0.0.0:9843``, ``[::1]:9843``, ``host``."""
    host, port = value, str(default_port)
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(f"bad listen address {value!r}")
        host, rest = value[1:end], value[end + 1 :]
        if rest.startswith(":"):
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad port in listen address {value!r}")
    return host or "0.0.0.0", int(port)

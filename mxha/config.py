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

from mxha.maxscale import MODES, MaxScaleClient

EXIT_CONFIG = 2  # every command's exit status for a config error (and the hooks' for a run the setup refuses)


class ConfigError(Exception):
    """One line, naming the key: ``config error: maxscale.url: has no host``."""


def load_yaml(path: str) -> dict[str, Any]:
    import yaml  # imported here: `mxha check` pays for it only when it reads a config

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        try:
            # libyaml's parser (PyYAML's own binding, same constructor): examples/node.yml in under
            # 1 ms where PyYAML's Python parser takes about 7, and mxha check reads it every interval
            doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
        except yaml.YAMLError:
            doc = yaml.safe_load(text)  # for the Python parser's words and line for what is wrong
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, KeyError, AttributeError):
        # PyYAML's constructors for explicit !!int, !!float, !!bool, !!timestamp tags fail with
        # these on a value that does not fit, and their message quotes the value
        raise ConfigError(f"{path}: not valid YAML: a value does not fit its !!tag") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys")
    return doc


def yaml_problem(exc: Exception) -> str:
    """PyYAML's problem, without the text it quotes from the file: an unquoted password that
    starts with ``!`` or ``*`` reads as a tag or an alias, and the message would repeat it. Kept:
    quoted punctuation (``'@'``), escapes (``'\\t'``) and token names (``'<stream end>'``)."""
    problem = str(getattr(exc, "problem", None) or "invalid YAML")

    def keep_or_hide(m: re.Match[str]) -> str:
        quoted = m.group(1)
        harmless = not any(ch.isalnum() for ch in quoted) or re.fullmatch(r"\\[a-z0-9]+|<[a-z ]+>", quoted)
        return m.group(0) if harmless else "'...'"

    problem = re.sub(r"'([^']*)'", keep_or_hide, problem)
    if "tag" in problem or "alias" in problem:
        problem += " (quote a value that starts with ! & * @ ` or %)"
    return problem


class FlagError(ConfigError):
    """A bad command-line flag: one line naming the flag (shown without "config error")."""


def config_url(key: str, value: Any, kind: str = "any", error: type[ConfigError] = ConfigError) -> str:
    """``value`` if ``check_http_url`` (the one check of every URL key and flag) passes it, else an
    ``error`` naming ``key`` that does not repeat the value (it may hold a password)."""
    from mxha.transport import BadUrl, check_http_url

    try:
        check_http_url(value, kind)
    except BadUrl as exc:
        raise error(f"{key}: {exc}") from None
    return str(value)


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

    def url(self, name: str, default: str | None = None, *, required: str | None = None, kind: str = "any") -> Any:
        """An HTTP(S) URL, checked by ``check_http_url`` (the one check every URL key gets).
        ``required``: why there is no default, said when the key is missing."""
        value = self.text(name)
        if value is None:
            if required is not None:
                raise ConfigError(f"{self.key(name)}: required ({required})")
            return default
        return config_url(self.key(name), value, kind)

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

    def listen_address(self, name: str, default: str, default_port: int) -> str:
        value = self.text(name, default)
        try:
            parse_listen_address(value, default_port)
        except ValueError as exc:
            raise ConfigError(f"{self.key(name)}: {exc}") from None
        return str(value)

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


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NOT_SHOWN = "the value is not shown (the secret itself may have been put here)"


def shown_path(path: str) -> str:
    """A path from a config file as an error may show it: only an absolute path. Anything else
    may be a secret pasted into a ``*_file`` key, and errors go to logs and the journal."""
    return path if os.path.isabs(path) else "the file it names"


def read_secret(sec: Section, base: str, *, default: str | None = None) -> str | None:
    """``base`` from the file itself, ``base_file`` (a file holding it) or ``base_env`` (a variable).

    An empty secret is refused, naming the key: a password of "" would let ``user:`` in. No error
    repeats a value that may be the secret: a ``_env`` value that is not a variable's name, or a
    ``_file`` value that is not an absolute path.
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
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the path
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text, or not a file name"
            hint = "" if os.path.isabs(path) else f"; not an absolute path, so {NOT_SHOWN}: give a file's absolute path"
            raise ConfigError(f"{sec.key(key)}: cannot read {shown_path(path)}: {why}{hint}") from None
        if not value.strip():
            raise ConfigError(f"{sec.key(key)}: {shown_path(path)} is empty; an empty secret is refused")
    elif env is not None:
        key = f"{base}_env"
        if not _ENV_NAME.match(env):
            raise ConfigError(
                f"{sec.key(key)}: not an environment variable's name (letters, digits and _); {NOT_SHOWN}: "
                f"give the NAME of a variable holding it, or use {base}_file"
            )
        value = os.environ.get(env)
        if value is None:
            # not named: a password made of letters and digits is a valid name too
            raise ConfigError(f"{sec.key(key)}: the environment variable it names is not set")
        if not value.strip():
            raise ConfigError(f"{sec.key(key)}: environment variable {env} is empty; an empty secret is refused")
    return value


@dataclass(frozen=True)
class MaxScaleSettings:
    """A MaxScale's REST API: where, as whom, and how long to wait."""

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


LOCAL_MAXSCALE_URL = "http://127.0.0.1:8989"  # MaxScale's own default admin_host:admin_port


def parse_maxscale(sec: Section, *, url_required: str | None = None) -> MaxScaleSettings:
    """A MaxScale's REST API and credentials. The URL defaults to THIS host's MaxScale, which is
    right only in a node config (its own MaxScale): every other use passes ``url_required``."""
    url = sec.url("url", LOCAL_MAXSCALE_URL, required=url_required, kind="maxscale")
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
        raise ConfigError(f"{sec.key('ca_file')}: {shown_path(settings.ca_file)} does not exist")
    sec.finish()
    return settings


@dataclass(frozen=True)
class CheckSettings:
    """``check``: what ``mxha check`` asks of MaxScale, and how often keepalived runs it."""

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
    """``keepalived``: where this node's keepalived and its VRRP state are read."""

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
    """``notify``: the hooks' state folder and how ``mxha notify`` acts."""

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
    """One node's config file, as the hooks and the exporter read it."""

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
    listen = ex.listen_address("listen_address", ":9843", 9843)
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
        url = sec.url("state_url", required="the peer's exporter, e.g. http://HOST:9843/state", kind="state")
        ms = None
        if sec.data.get("maxscale") is not None:
            ms = parse_maxscale(sec.section("maxscale"), url_required="the peer's MaxScale REST API")
        sec.finish()
        out.append(PeerSettings(name, url, ms))
    return tuple(out)


def load_node_config(path: str) -> NodeConfig:
    return parse_node_config(load_yaml(path), path)


def parse_listen_address(value: str, default_port: int) -> tuple[str, int]:
    """Prometheus style: ``:9843``, ``0.0.0.0:9843``, ``[::1]:9843``, ``host``.

    A ``ValueError`` says what is wrong in one line that shows the address (never a secret); the
    caller names the flag or key.
    """
    host, port = value, str(default_port)
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"{value!r} is not [HOST]:PORT, e.g. :{default_port}")
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(f"{value!r} has an unbalanced [ (an IPv6 address: [::1]:{default_port})")
        host, rest = value[1:end], value[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r} has no IPv6 address in its [brackets]") from None
        if rest.startswith(":"):
            port = rest[1:]
        elif rest:
            raise ValueError(f"{value!r} has something between ] and the :PORT")
    elif "]" in value:
        raise ValueError(f"{value!r} has an unbalanced ] (an IPv6 address: [::1]:{default_port})")
    elif value.count(":") > 1:
        raise ValueError(f"{value!r}: an IPv6 address goes in brackets, e.g. [::1]:{default_port}")
    elif ":" in value:
        host, port = value.split(":")
    elif value.isdigit():
        raise ValueError(f"{value!r} is a port without its colon: write :{value}")
    if not (port.isascii() and port.isdigit() and 0 <= int(port) <= 65535):  # 0: any free port
        raise ValueError(f"{value!r} has a port that is not a number from 0 (any free port) to 65535")
    return host or "0.0.0.0", int(port)

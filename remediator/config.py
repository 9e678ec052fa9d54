"""The remediator's config file: clusters and their nodes (the ONLY addresses it acts on),
auth, limits and the guardrails' numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mxha.config import (
    ConfigError,
    MaxScaleSettings,
    Section,
    config_url,
    load_yaml,
    parse_maxscale,
    read_secret,
)
from mxha.model import MODES
from mxha.remediator.replicas import LockServer, LockSettings, PeerReplica, ReplicaSettings
from mxha.transport import BadUrl, check_host_port


@dataclass(frozen=True)
class NodeSettings:
    name: str
    state_url: str
    maxscale: MaxScaleSettings
    driver: str = "rest"  # rest | maxctrl
    maxctrl_path: str = "maxctrl"
    maxctrl_timeout: float = 5.0


@dataclass(frozen=True)
class ClusterSettings:
    name: str
    nodes: tuple[NodeSettings, ...]
    mode: str = "passive"  # passive | locks: the same key, and value, as each node config's ``mode``


@dataclass(frozen=True)
class PolicySettings:
    cooldown_seconds: float = 10.0
    unreachable_grace_seconds: float = 15.0
    circuit_max_actions: int = 6
    circuit_window_seconds: float = 300.0
    state_timeout: float = 1.5
    recheck_seconds: float = 10.0
    probe_seconds: float = 1.0
    # locks mode: how long after release-locks the VIP holder must have become the lock primary
    # (recorded: ~1 s with monitor_interval=1000ms; MaxScale's default interval is 2000ms)
    lock_handover_seconds: float = 5.0
    # MaxScale's no-relock back-off after release-locks ("1 minute", fixed in its source); the
    # remediator remembers releases (its own and the hooks') for this long
    relock_backoff_seconds: float = 60.0
    # a mode change sent without an answer may still be applied this long after: its node is watched
    # every probe_seconds, and no other node is promoted while a promotion of it may still land
    unsettled_write_seconds: float = 10.0


@dataclass(frozen=True)
class AuthSettings:
    bearer_tokens: tuple[str, ...] = field(default=(), repr=False)
    basic_user: str | None = None
    basic_password: str | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.bearer_tokens) or self.basic_user is not None


@dataclass(frozen=True)
class RemediatorConfig:
    clusters: dict[str, ClusterSettings]
    auth: AuthSettings
    policy: PolicySettings
    listen_address: str = ":9844"
    dry_run: bool = False
    audit_log: str | None = None
    max_body_bytes: int = 1024 * 1024
    request_budget_seconds: float = 8.0
    threads: int = 8
    allow_no_auth: bool = False
    replicas: ReplicaSettings | None = None  # None: one remediator, no lock store


_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def parse_remediator_config(doc: dict[str, Any]) -> RemediatorConfig:
    top = Section(doc, "")
    auth_sec = top.section("auth")
    token = read_secret(auth_sec, "bearer_token")
    basic_user = auth_sec.text("basic_user")
    basic_password = read_secret(auth_sec, "basic_password")
    if (basic_user is None) != (basic_password is None):
        raise ConfigError("auth.basic_password: basic_user and a basic password go together")
    auth_sec.finish()
    auth = AuthSettings(tuple(t for t in [token] if t), basic_user, basic_password)
    allow_no_auth = top.flag("allow_no_auth", False)
    if not auth.enabled and not allow_no_auth:
        raise ConfigError(
            "auth: set bearer_token(_file/_env) or basic_user/basic_password (or allow_no_auth: true, for a lab only)"
        )
    pol = top.section("policy")
    policy = PolicySettings(
        cooldown_seconds=pol.number("cooldown_seconds", 10.0, maximum=86400),
        unreachable_grace_seconds=pol.number("unreachable_grace_seconds", 15.0, maximum=86400),
        circuit_max_actions=pol.integer("circuit_max_actions", 6, minimum=1),
        circuit_window_seconds=pol.number("circuit_window_seconds", 300.0, minimum=1, maximum=86400),
        state_timeout=pol.number("state_timeout", 1.5, minimum=0.05, maximum=10),
        recheck_seconds=pol.number("recheck_seconds", 10.0, minimum=0, maximum=3600),
        probe_seconds=pol.number("probe_seconds", 1.0, minimum=0.1, maximum=60),
        lock_handover_seconds=pol.number("lock_handover_seconds", 5.0, minimum=0.1, maximum=60),
        relock_backoff_seconds=pol.number("relock_backoff_seconds", 60.0, minimum=0, maximum=3600),
        unsettled_write_seconds=pol.number("unsettled_write_seconds", 10.0, minimum=0, maximum=3600),
    )
    pol.finish()
    clusters_raw = top.section("clusters")
    if not clusters_raw.data:
        raise ConfigError("clusters: at least one cluster with its nodes is required")
    clusters: dict[str, ClusterSettings] = {}
    cluster_servers: dict[str, tuple[LockServer, ...]] = {}
    for cname in list(clusters_raw.data):
        if not isinstance(cname, str) or not _NAME_RE.match(cname):
            raise ConfigError(f"clusters.{cname}: cluster names are letters, digits and _.:-")
        csec = clusters_raw.section(cname)
        nodes_raw = csec.data.get("nodes")
        csec.used.add("nodes")
        if not isinstance(nodes_raw, list) or not nodes_raw:
            raise ConfigError(f"clusters.{cname}.nodes: must be a non-empty list")
        nodes = []
        for i, raw in enumerate(nodes_raw):
            nsec = Section(raw, f"clusters.{cname}.nodes[{i}]")
            name = nsec.text("name", required=True)
            # No defaults for a node's addresses: the remediator runs on some host, and a default
            # (say, MaxScale's 127.0.0.1:8989) would read or change THAT host's MaxScale under
            # this node's name
            state_url = nsec.url(
                "state_url", required="this node's exporter, e.g. http://HOST:9843/state", kind="state"
            )
            ms = parse_maxscale(
                nsec.section("maxscale"),
                url_required="this node's MaxScale REST API, e.g. http://HOST:8989; there is no default",
            )
            driver = nsec.choice("driver", "rest", ("rest", "maxctrl"))
            if driver == "maxctrl" and urlsplit(ms.url).path.strip("/"):
                raise ConfigError(
                    f"{nsec.key('maxscale')}.url: driver maxctrl takes HOST:PORT only (maxctrl -h): "
                    "a path prefix needs driver rest"
                )
            nodes.append(
                NodeSettings(
                    name,
                    state_url,
                    ms,
                    driver,
                    nsec.text("maxctrl_path", "maxctrl"),
                    nsec.number("maxctrl_timeout", 5.0, minimum=0.1, maximum=60),
                )
            )
            nsec.finish()
        if len({n.name for n in nodes}) != len(nodes):
            raise ConfigError(f"clusters.{cname}.nodes: node names must be unique")
        mode = csec.choice("mode", "passive", MODES)
        if csec.data.get("lock_servers") is not None:
            cluster_servers[cname] = _lock_servers(csec, "lock_servers")
        csec.finish()
        clusters[cname] = ClusterSettings(cname, tuple(nodes), mode)
    replicas = _parse_replicas(top.section("replicas"), cluster_servers)
    lim = top.section("limits")
    max_body = lim.integer("max_body_bytes", 1024 * 1024, minimum=1024)
    budget = lim.number("request_budget_seconds", 8.0, minimum=0.5, maximum=60)
    threads = lim.integer("threads", 8, minimum=1)
    lim.finish()
    cfg = RemediatorConfig(
        clusters=clusters,
        auth=auth,
        policy=policy,
        listen_address=top.listen_address("listen_address", ":9844", 9844),
        dry_run=top.flag("dry_run", False),
        audit_log=top.text("audit_log"),
        max_body_bytes=max_body,
        request_budget_seconds=budget,
        threads=threads,
        allow_no_auth=allow_no_auth,
        replicas=replicas,
    )
    top.finish()
    return cfg


def _lock_servers(sec: Section, name: str) -> tuple[LockServer, ...]:
    out = []
    for i, item in enumerate(sec.strings(name)):
        try:
            check_host_port(item)  # the URL check's, so a lock server is spelled as in a URL
        except BadUrl as exc:  # the value is not repeated: a password pasted here would be
            raise ConfigError(f"{sec.key(name)}[{i}]: must be HOST[:PORT] (default port 3306); it {exc}") from None
        host, _, port = item.rpartition(":") if re.search(r"(^[^:]*|\]):\d+$", item) else (item, "", "3306")
        out.append(LockServer(host.strip("[]"), int(port)))
    if not out:
        raise ConfigError(f"{sec.key(name)}: list at least one lock server (three or more: a majority must be taken)")
    if len(set(out)) != len(out):
        raise ConfigError(f"{sec.key(name)}: a lock server is listed twice")
    return tuple(out)


def _parse_replicas(sec: Section, cluster_servers: dict[str, tuple[LockServer, ...]]) -> ReplicaSettings | None:
    """``replicas``: absent for one remediator; else the lock store every replica shares."""
    if not sec.data:
        if cluster_servers:
            name = next(iter(cluster_servers))
            raise ConfigError(f"clusters.{name}.lock_servers: needs a replicas.lock section (user, password)")
        return None
    import socket

    rid = sec.text("id", socket.gethostname())
    lsec = sec.section("lock")
    if not lsec.data:
        raise ConfigError(f"{lsec.key('servers')}: required: replicas coordinate through a lock store")
    servers = _lock_servers(lsec, "servers")
    user = lsec.text("user", required=True)
    password = read_secret(lsec, "password")
    if password is None:
        raise ConfigError(f"{lsec.key('password')}: required (or password_file / password_env)")
    lock = LockSettings(
        servers,
        user,
        password,
        session_timeout=lsec.integer("session_timeout", 7, minimum=2),
        connect_timeout=lsec.number("connect_timeout", 1.0, minimum=0.05, maximum=30),
        probe_seconds=lsec.number("probe_seconds", 15.0, minimum=0.2, maximum=3600),
    )
    lsec.finish()
    peers = [
        PeerReplica(config_url(f"{sec.key('peers')}[{i}]", url, "base")) for i, url in enumerate(sec.strings("peers"))
    ]
    sec.finish()
    return ReplicaSettings(rid, lock, tuple(peers), dict(cluster_servers))


def load_remediator_config(path: str) -> RemediatorConfig:
    # an audit_log it cannot write is found when the audit log opens it, before serving (AuditLog)
    return parse_remediator_config(load_yaml(path))

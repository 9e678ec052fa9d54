"""The node health check: the one keepalived's vrrp_script runs (``mxha check``) and the
exporter keeps fresh (``/check``, ``mxha_check_success``).

Healthy means: MaxScale's REST API answers within the timeout and lists every expected
server (the tutorial's ``is_maxscale_running.sh``, without its stray output file and its
Node.js process). Optionally at least one server must be Running; that is off by default
because with it on a database outage fails the check on BOTH nodes, both go FAULT, both
MaxScales go passive, and neither can fail over or rejoin when the database returns.

This module is on the ``mxha check`` hot path: standard library and ``mxha.maxscale`` only.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mxha.maxscale import MaxScaleClient, MaxScaleError, ServerView, monitor_views, server_views

if TYPE_CHECKING:
    from mxha.config import NodeConfig

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1


@dataclass(frozen=True)
class CheckResult:
    """One health check's verdict and when it was made."""

    success: bool
    reason: str
    checked_at: float
    duration_seconds: float
    silent: bool = False  # MaxScale gave no answer within the check's time (a hang, a dead host)

    def judged_at(self, now: float, max_age: float) -> tuple[bool, str, float]:
        """The cached result as seen at ``now``: older than ``max_age`` counts as failed (fail safe).
        Returns (success, reason, age in seconds)."""
        age = now - self.checked_at
        if age > max_age:
            return False, f"stale result ({age:.1f}s old): {self.reason}", age
        return self.success, self.reason, age


def evaluate_servers(
    servers: tuple[ServerView, ...], expected: tuple[str, ...], require_running: bool
) -> tuple[bool, str]:
    """Pure verdict over the server list MaxScale returned."""
    listed = {s.name: s for s in servers}
    if expected:
        missing = [name for name in expected if name not in listed]
        found = len(expected) - len(missing)
        if missing:
            return False, f"{found}/{len(expected)} expected servers listed; missing {', '.join(missing)}"
        considered = [listed[name] for name in expected]
        summary = f"{len(expected)}/{len(expected)} expected servers listed"
    else:
        if not listed:
            return False, "MaxScale lists no servers"
        considered = list(listed.values())
        summary = f"{len(listed)} servers listed (no expected_servers configured)"
    running = sum(1 for s in considered if s.running)
    if require_running and running == 0:
        return False, f"{summary} but none is Running"
    return True, f"{summary}, {running} Running"


def run_check(
    client: MaxScaleClient,
    expected: tuple[str, ...],
    require_running: bool,
    timeout: float,
    peers: tuple[Any, ...] = (),
) -> CheckResult:
    """Ask MaxScale for its servers within ``timeout`` seconds, whatever happens. With ``peers``,
    also fail when this MaxScale has lost sight of the primary server that a peer's MaxScale still
    sees Running (``primary_unseen``)."""
    started = time.monotonic()
    now = time.time()
    deadline = started + timeout
    silent = False
    try:
        servers = server_views(client.get_servers(deadline=deadline))
        ok, reason = evaluate_servers(servers, expected, require_running)
        if ok and peers:
            unseen = primary_unseen(client, servers, peers, deadline)
            if unseen:
                ok, reason = False, unseen
    except MaxScaleError as exc:
        ok, reason = False, f"MaxScale REST API: {exc}"
        silent = exc.kind == "timeout"
    return CheckResult(ok, reason, now, round(time.monotonic() - started, 6), silent)


def primary_unseen(
    client: MaxScaleClient, servers: tuple[ServerView, ...], peers: tuple[Any, ...], deadline: float
) -> str | None:
    """The reason to fail the check, or None: the server this MaxScale's monitor names the primary
    is Down HERE but Running for a peer's MaxScale. Then this MaxScale is the one cut off: if it is
    active (or the lock primary) it would fail a healthy primary over after its failcount (6.5 s in
    the recording); failing the check moves the VIP, and the hooks the active role, first.

    A primary Down for every MaxScale (a database outage) or a peer that cannot be read never fails
    the check: that would take every node out at once (see ``require_running``)."""
    down = {s.name for s in servers if not s.running}
    if not down:
        return None  # the common case: one GET, nothing more
    named = {m.master for m in monitor_views(client.get_monitors(deadline=deadline)) if m.master}
    lost = sorted(named & down)
    if not lost:
        return None
    from mxha.peers import read_peers

    for reading in read_peers(peers, deadline):
        state = reading.state
        if reading.problem or state is None or not state.maxscale.up:
            continue
        seen = {sv.name for sv in state.maxscale.servers if sv.running}
        both = [name for name in lost if name in seen]
        if both:
            return f"primary {', '.join(both)} is Down for this MaxScale but Running for {reading.name}'s"
    return None


def check_via_exporter(url: str, timeout: float) -> tuple[int, str]:
    """The lightweight mode: read the exporter's cached result (fails safe if it is gone)."""
    import urllib.error  # here, not at the top: it loads ssl and the email package, and only this mode needs it
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - configured http(s) URL
            body = json.loads(resp.read() or b"{}")
            return EXIT_HEALTHY, f"OK (exporter): {body.get('reason', '')}"
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
            reason = body.get("reason", "")
        except ValueError:
            reason = ""
        return EXIT_UNHEALTHY, f"FAIL (exporter HTTP {exc.code}): {reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        from mxha.transport import redact_url

        return EXIT_UNHEALTHY, f"FAIL: exporter check {redact_url(url)} unreachable: {exc}"


def _hard_timeout(seconds: float) -> None:
    """Whatever blocks (DNS, a stuck TLS handshake), the process ends in time."""

    def expire(signum: int, frame: object) -> None:
        print(f"FAIL: no verdict within {seconds:g}s")
        sys.stdout.flush()
        raise SystemExit(EXIT_UNHEALTHY)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def main(config_file: str, via: str | None = None, *, follow_up: bool = False) -> int:
    """``mxha check``: the verdict, and with ``follow_up`` (keepalived's line only) the hooks'
    corrections. Without it nothing is written or started anywhere: a person may run it anytime."""
    from mxha.config import EXIT_CONFIG, ConfigError, load_node_config

    _hard_timeout(10.0)  # covers reading the config; re-armed below from check.timeout
    try:
        cfg = load_node_config(config_file)
    except ConfigError as exc:
        print(f"FAIL: config error: {exc}")
        return EXIT_CONFIG
    _hard_timeout(cfg.check.timeout + 0.25)
    note = _mark_follow_up(cfg) if follow_up else None
    if via:
        code, line = check_via_exporter(via, cfg.check.timeout)
        print(line)
        if note is None and follow_up:
            _follow_up(cfg, config_file, code == EXIT_HEALTHY)
        elif note:
            print(f"({note})")
        return code
    if not cfg.maxscale.url.lower().startswith("https:"):
        from mxha.transport import load_http_client_without_ssl

        load_http_client_without_ssl()
    client = cfg.maxscale.client(keep_alive=True)
    ends = time.monotonic() + cfg.check.timeout  # the alarm fires 0.25 s after this
    result = run_check(
        client, cfg.check.expected_servers, cfg.check.require_running, cfg.check.timeout, cfg.check_peers
    )
    print(("OK: " if result.success else "FAIL: ") + result.reason)
    sys.stdout.flush()
    if note is None and follow_up:
        _follow_up(cfg, config_file, result.success, client, ends)
    elif note:
        print(f"({note})")
    signal.setitimer(signal.ITIMER_REAL, 0)
    return EXIT_HEALTHY if result.success else EXIT_UNHEALTHY


def _mark_follow_up(cfg: NodeConfig) -> str | None:
    """Before a follow-up: may this run write in the hooks' state directory (only its owner does),
    and the marker the exporter watches (``follow_up_missing``). Returns why no follow-up happens,
    or None when it goes ahead."""
    if not cfg.check.follow_up:
        return "follow-up off: check.follow_up is false"
    if not cfg.keepalived.vips:
        return "no follow-up: keepalived.vips is not set"
    from mxha.statedir import mark_follow_up, write_problem

    problem = write_problem(cfg.notify.state_file, cfg.notify.lock_file)
    if problem is not None:
        return f"follow-up skipped: {problem}"
    try:
        mark_follow_up(cfg.notify.state_file)
    except OSError as exc:  # never let the follow-up change the check's verdict
        return f"follow-up skipped: cannot mark it beside {cfg.notify.state_file}: {exc.strerror}"
    return None


def _follow_up(
    cfg: NodeConfig, config_file: str, healthy: bool, client: MaxScaleClient | None = None, ends: float | None = None
) -> None:
    """The periodic, level-triggered look the notify events lack (``mxha.notify.follow_up``): with
    ``keepalived.vips`` set, a MaxScale whose mode disagrees with live state gets a recheck. Reading
    the mode costs one more GET per interval; never on an unhealthy check (keepalived acts then)."""
    if not healthy:
        return
    from mxha.notify import follow_up

    passive = None
    left = (ends - time.monotonic()) if ends is not None else cfg.check.timeout
    if left < 0.1:  # the verdict is printed; the alarm must not turn it into a failure
        return
    if client is not None:
        try:
            value = client.get_maxscale(deadline=time.monotonic() + min(0.5, left - 0.05)).get("parameters", {})
            passive = value.get("passive") if isinstance(value.get("passive"), bool) else None
        except MaxScaleError:
            passive = None

    def lock_primary() -> bool | None:
        if client is None:
            return None
        from mxha.maxscale import status_from_documents

        try:
            docs = client.get_monitors(deadline=time.monotonic() + min(0.5, max(0.05, left - 0.1)))
        except MaxScaleError:
            return None
        return status_from_documents({}, docs).facts.lock_primary

    try:
        started = follow_up(cfg, config_file, passive, lock_primary)
    except OSError as exc:  # never let the follow-up change the check's verdict
        print(f"(recheck not started: {exc.strerror})")
        return
    if started:
        print(f"({started})")

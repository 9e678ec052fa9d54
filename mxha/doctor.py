"""``mxha doctor``: look at this node's setup (and, with ``--peers``, every peer's) and print each
setup hazard with its evidence, its fix and the source of the rule, before it bites.

It only reads: MaxScale's REST documents (GET only), the node config, the hooks' state directory,
keepalived's last dump file if readable, and with ``--peers`` every node's exporter ``/state``.
The rules themselves are ``mxha.hazards``' pure functions, the ones the exporter publishes.

Exit codes are the doctor's own, so a script cannot take "critical" for "bad config":
0 nothing above info, 1 warnings, 2 critical, 3 it could not look (a bad config or flag, this
node's MaxScale unreadable). Whatever it could not check is listed as "not checked", never passed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from mxha.config import ConfigError, NodeConfig, load_node_config, parse_listen_address
from mxha.hazards import (
    Hazard,
    NotChecked,
    client_view_hazards,
    clock_offset,
    clock_skew_hazards,
    info,
    maxscale_hazards,
    mode_mismatch_hazards,
    node_hazards,
    priority_tie_hazards,
    state_dir_hazards,
)
from mxha.maxscale import MaxScaleClient, MaxScaleError
from mxha.model import NodeState, StateFormatError
from mxha.statedir import StateDir
from mxha.transport import HttpJsonError, JsonHttpClient, redact_url

log = logging.getLogger("mxha.doctor")

EXIT_NONE, EXIT_WARNING, EXIT_CRITICAL, EXIT_COULD_NOT_LOOK = 0, 1, 2, 3
RANK = {"info": 0, "warning": 1, "critical": 2}
BUDGET_SECONDS = 5.0  # the whole look: every read shares this one deadline

REQUIRED = ("/v1/maxscale", "/v1/monitors")
OPTIONAL = ("/v1/services", "/v1/listeners")


@dataclass(frozen=True)
class Finding:
    node: str
    hazard: Hazard

    @property
    def row(self) -> tuple[str, str, str, str, str]:
        about = info(self.hazard.hazard)
        return (
            self.hazard.severity,
            self.hazard.hazard,
            f"{self.node}: {self.hazard.evidence}",
            about.fix,
            about.source,
        )


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[tuple[str, NotChecked]] = field(default_factory=list)
    could_not_look: list[str] = field(default_factory=list)  # why the look itself failed

    def add(self, node: str, found: tuple[Hazard, ...], skipped: tuple[NotChecked, ...] = ()) -> None:
        self.findings.extend(Finding(node, h) for h in found)
        self.not_checked.extend((node, s) for s in skipped)

    def exit_code(self) -> int:
        if self.could_not_look:
            return EXIT_COULD_NOT_LOOK
        worst = max((RANK.get(f.hazard.severity, 1) for f in self.findings), default=0)
        return {0: EXIT_NONE, 1: EXIT_WARNING, 2: EXIT_CRITICAL}[worst]


def read_documents(
    client: MaxScaleClient, deadline: float, paths: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str]]:
    """GET each path (only GETs: the doctor changes nothing); the documents read and, per path not
    read, why (a few words, never a secret)."""
    docs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for path in paths:
        if "no_answer" in errors.values():  # one wait for a MaxScale that does not answer, not four
            errors[path] = "not asked: no answer to the first"
            continue
        try:
            docs[path] = client.request("GET", path, expect=(200,), deadline=deadline).document
        except MaxScaleError as exc:
            errors[path] = f"HTTP {exc.status}" if exc.status is not None else exc.error_kind
    return docs, errors


# what the cluster look needs of one MaxScale: its /v1/services and /v1/listeners documents (None:
# not read) and its monitors' lock mode (None: not read)
MaxScaleLook = tuple[Any, Any, str | None]


def look_at_maxscale(node: str, client: MaxScaleClient, deadline: float, report: Report, *, own: bool) -> MaxScaleLook:
    """One MaxScale's own hazards, added to ``report``; what the cluster look needs of it."""
    docs, errors = read_documents(client, deadline, REQUIRED + OPTIONAL)
    missing = [p for p in REQUIRED if p in errors]
    if missing:
        why = ", ".join(f"{p}: {errors[p]}" for p in missing)
        if own:
            report.could_not_look.append(f"{node}'s MaxScale ({redact_url(client.url)}): {why}")
        report.not_checked.append((node, NotChecked("MaxScale's setup", why)))
    else:
        report.add(node, *maxscale_hazards(docs.get("/v1/maxscale"), docs.get("/v1/monitors")))
    locks = None if "/v1/monitors" in errors else lock_mode_of(docs.get("/v1/monitors"))
    return docs.get("/v1/services"), docs.get("/v1/listeners"), locks


def lock_mode_of(monitors_doc: Any) -> str:
    """The cooperative-locks mode a MaxScale's mariadbmon monitors use ("none" when none does)."""
    modes = {
        m.get("attributes", {}).get("parameters", {}).get("cooperative_monitoring_locks")
        for m in _monitors(monitors_doc)
        if m.get("attributes", {}).get("module") == "mariadbmon"
    }
    return next(iter(sorted(x for x in modes if isinstance(x, str) and x != "none")), "none")


def _monitors(doc: Any) -> list[dict[str, Any]]:
    data = doc.get("data") if isinstance(doc, dict) else None
    if isinstance(data, dict):
        return [data]
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"uid {uid}"


_SCRIPT_UID = re.compile(r"Default script uid:gid (\d+):(\d+)")


def keepalived_script_uid(dump_dir: str) -> int | None:
    """The uid keepalived runs scripts as, from its last dump file (``keepalived.data``) if one is
    there and readable; the doctor never signals keepalived for a fresh one."""
    try:
        with open(os.path.join(dump_dir, "keepalived.data"), encoding="utf-8", errors="replace") as fh:
            match = _SCRIPT_UID.search(fh.read(1 << 20))
    except OSError:
        return None
    return int(match.group(1)) if match else None


def state_dir_look(state_file: str, dump_dir: str) -> tuple[tuple[Hazard, ...], tuple[NotChecked, ...]]:
    """The hooks' state directory: who owns it, its files, and keepalived's script user."""
    sd = StateDir.of(state_file)
    if sd.owner_uid is None:
        return (), (NotChecked("state_dir_owner", sd.why_not_mine()),)
    files: dict[str, int] = {}
    try:
        with os.scandir(sd.path) as entries:
            for entry in entries:
                files[entry.name] = entry.stat(follow_symlinks=False).st_uid
    except OSError as exc:
        return (), (NotChecked("state_dir_owner", f"cannot list {sd.path}: {exc.strerror}"),)
    skipped: tuple[NotChecked, ...] = ()
    script_uid = keepalived_script_uid(dump_dir)
    if script_uid is None:
        why = f"keepalived's script user unknown (no readable {dump_dir}/keepalived.data)"
        skipped = (NotChecked("state_dir_owner", why),)
    return state_dir_hazards(sd.path, sd.owner_uid, files, script_uid, user_name), skipped


def look_at_state_dir(cfg: NodeConfig, report: Report) -> None:
    report.add(cfg.node, *state_dir_look(cfg.notify.state_file, cfg.keepalived.dump_dir))


def own_state_url(cfg: NodeConfig) -> str:
    host, port = parse_listen_address(cfg.listen_address, 9843)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/state"


def read_state(url: str, deadline: float) -> tuple[NodeState | None, float, float, str | None]:
    """A node's ``/state``, with when it was asked and answered (this host's clock)."""
    timeout = max(0.05, deadline - time.monotonic())
    client = JsonHttpClient(url, connect_timeout=timeout, read_timeout=timeout)
    sent = time.time()
    try:
        doc = client.get_json(None, deadline)
    except HttpJsonError as exc:
        return None, sent, time.time(), f"/state unreadable ({exc.error_kind})"
    received = time.time()
    try:
        return NodeState.from_json(doc), sent, received, None
    except StateFormatError as exc:
        return None, sent, received, f"/state malformed ({str(exc)[:80]})"


def look_at_cluster(cfg: NodeConfig, own_view: MaxScaleLook, deadline: float, report: Report) -> None:
    """Every node's /state (priorities, clocks, modes) and every MaxScale's client view."""
    states: dict[str, NodeState] = {}
    offsets: dict[str, float] = {}
    state, _, _, problem = read_state(own_state_url(cfg), deadline)
    if state is None:
        report.not_checked.append((cfg.node, NotChecked("this node's /state", f"{problem}: is its exporter running?")))
    else:
        states[cfg.node] = state
    views: dict[str, tuple[Any, Any]] = {cfg.node: (own_view[0], own_view[1])}
    locks: dict[str, str | None] = {cfg.node: own_view[2]}
    for peer in cfg.peers:
        state, sent, received, problem = read_state(peer.state_url, deadline)
        if state is None:
            report.not_checked.append((peer.name, NotChecked("its /state", problem or "unreadable")))
        else:
            states[peer.name] = state
            offsets[peer.name] = clock_offset(state.time, sent, received)
            locks[peer.name] = state.maxscale.locks if state.maxscale.up else None
        if peer.maxscale is None:
            views[peer.name] = (None, None)
            report.not_checked.append(
                (peer.name, NotChecked("its MaxScale's setup", "no peers[].maxscale URL in the node config"))
            )
        else:
            services, listeners, peer_locks = look_at_maxscale(
                peer.name, peer.maxscale.client(), deadline, report, own=False
            )
            views[peer.name] = (services, listeners)
            locks[peer.name] = peer_locks if peer_locks is not None else locks.get(peer.name)
    report.add("cluster", *client_view_hazards(views))
    priorities: dict[str, int | None] = {}
    for node, st in states.items():
        gov = st.keepalived.governing() if st.keepalived.up else None
        priorities[node] = gov.base_priority if gov is not None else None
        if gov is None:
            report.not_checked.append((node, NotChecked("priority_tie", "keepalived's governing instance not read")))
    report.add("cluster", priority_tie_hazards(priorities))
    report.add("cluster", clock_skew_hazards(offsets))
    configured = {node: st.mode for node, st in states.items()}
    configured[cfg.node] = cfg.mode
    report.add("cluster", mode_mismatch_hazards(configured, locks))


def look(cfg: NodeConfig, peers: bool, budget: float = BUDGET_SECONDS) -> Report:
    report = Report()
    deadline = time.monotonic() + budget
    # the follow-up marker is the exporter's to watch over time (follow_up_missing): not claimed here
    report.add(
        cfg.node,
        node_hazards(cfg, follow_up_age=None, follow_up_error="not watched", running_for=0.0, stale_after=1.0),
    )
    look_at_state_dir(cfg, report)
    own = look_at_maxscale(cfg.node, cfg.maxscale.client(), deadline, report, own=True)
    locks = own[2]
    if peers:
        look_at_cluster(cfg, own, deadline, report)
    else:
        report.add(cfg.node, mode_mismatch_hazards({cfg.node: cfg.mode}, {cfg.node: locks}))
        for name in ("clients_see_different_services", "identical_version_string", "priority_tie", "clock_skew"):
            report.not_checked.append((cfg.node, NotChecked(name, "cluster-wide: run with --peers")))
    return report


HEADERS = ("SEVERITY", "HAZARD", "EVIDENCE", "FIX", "SOURCE")


def render(report: Report, out: TextIO) -> None:
    """One row per hazard, worst first; then what was not checked; then the verdict."""
    rows = sorted((f.row for f in report.findings), key=lambda r: (-RANK.get(r[0], 1), r[1], r[2]))
    for why in report.could_not_look:
        rows.insert(0, ("-", "could not look", why, "make it readable and run again", "mxha doctor"))
    rows += [("not checked", nc.what, f"{node}: {nc.why}", "-", "-") for node, nc in report.not_checked]
    if not rows:
        print("no setup hazards found", file=out)
    else:
        _table(rows, out)
    counts = {s: sum(1 for f in report.findings if f.hazard.severity == s) for s in ("critical", "warning", "info")}
    verdict = "could not look" if report.could_not_look else ", ".join(f"{n} {s}" for s, n in counts.items())
    print(f"\n{verdict}; {len(report.not_checked)} not checked; exit {report.exit_code()}", file=out)


def _table(rows: Sequence[tuple[str, ...]], out: TextIO, columns: int | None = None) -> None:
    """Columns sized to the terminal: severity and hazard as they are, the rest of the width shared
    by evidence, fix and source (45/35/20), cells wrapped at spaces (a name is never cut)."""
    import shutil
    import textwrap

    total = columns or max(100, shutil.get_terminal_size((120, 24)).columns)
    fixed = [max(len(r[i]) for r in [HEADERS, *rows]) for i in (0, 1)]
    free = max(60, total - sum(fixed) - 2 * (len(HEADERS) - 1))
    limits = [*fixed, int(free * 0.45), int(free * 0.35), free - int(free * 0.45) - int(free * 0.35)]

    def wrap(cell: str, limit: int) -> list[str]:
        return textwrap.wrap(cell, limit, break_long_words=False, break_on_hyphens=False) or [""]

    wrapped = [[wrap(cell, limits[i]) for i, cell in enumerate(row)] for row in [HEADERS, *rows]]
    widths = [max(len(line) for row in wrapped for line in row[i]) for i in range(len(HEADERS))]
    for n, row in enumerate(wrapped):
        for k in range(max(len(cell) for cell in row)):
            line = "  ".join((cell[k] if k < len(cell) else "").ljust(w) for cell, w in zip(row, widths, strict=True))
            print(line.rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def to_json(report: Report) -> dict[str, Any]:
    """The same report for scripts (``--format json``)."""
    return {
        "findings": [
            {
                "node": f.node,
                **f.hazard.to_json(),
                "fix": info(f.hazard.hazard).fix,
                "source": info(f.hazard.hazard).source,
            }
            for f in report.findings
        ],
        "not_checked": [{"node": node, "what": nc.what, "why": nc.why} for node, nc in report.not_checked],
        "could_not_look": list(report.could_not_look),
        "exit": report.exit_code(),
    }


def main(
    config_file: str, peers: bool, output: str = "table", out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    try:
        cfg = load_node_config(config_file)
    except ConfigError as exc:
        print(f"mxha doctor: config error: {exc}", file=err)
        return EXIT_COULD_NOT_LOOK
    report = look(cfg, peers)
    if output == "json":
        print(json.dumps(to_json(report), indent=1), file=out)
    else:
        render(report, out)
    return report.exit_code()


SETUP_WATCH_INTERVAL = 300.0  # a setup changes by hand, rarely: minutes, never per scrape


class SetupWatch:
    """The exporter's view of the setup hazards that need a look at MaxScale or the disk: the
    doctor's REST rules and its state-directory rule, on their own slow interval in a thread of
    their own (a scrape never waits for them). A MaxScale that cannot be read keeps the last
    hazards found: its setup did not change by going away."""

    def __init__(self, cfg: NodeConfig, interval: float = SETUP_WATCH_INTERVAL) -> None:
        self.cfg = cfg
        self.interval = interval
        self._lock = threading.Lock()
        self._found: tuple[Hazard, ...] = ()  # MaxScale's, kept while it cannot be read
        self._host: tuple[Hazard, ...] = ()  # the state directory's
        self._due = time.monotonic()  # the first look at once
        self._running = False
        self.reads = 0  # completed looks (for tests and logs)

    def hazards(self) -> tuple[Hazard, ...]:
        """The last hazards found; starts a look in the background when one is due."""
        with self._lock:
            if not self._running and time.monotonic() >= self._due:
                self._running = True
                threading.Thread(target=self._look, name="mxha-setup-watch", daemon=True).start()
            return self._found + self._host

    def _look(self) -> None:
        cfg = self.cfg
        deadline = time.monotonic() + BUDGET_SECONDS
        found: tuple[Hazard, ...] | None = None
        host: tuple[Hazard, ...] = ()
        try:
            # the exporter keeps keepalived's dump fresh (it signals for it), so its script user is known
            host = state_dir_look(cfg.notify.state_file, cfg.keepalived.dump_dir)[0]
            docs, errors = read_documents(cfg.maxscale.client(), deadline, REQUIRED)
            if errors:
                log.info("setup hazards not refreshed: %s", "; ".join(f"{p}: {e}" for p, e in errors.items()))
            else:
                found = maxscale_hazards(docs["/v1/maxscale"], docs["/v1/monitors"])[0]
                locks = lock_mode_of(docs["/v1/monitors"])
                found += mode_mismatch_hazards({cfg.node: cfg.mode}, {cfg.node: locks})
        finally:
            with self._lock:
                self._host = host
                if found is not None:
                    self._found = found
                self.reads += 1
                self._due = time.monotonic() + self.interval
                self._running = False

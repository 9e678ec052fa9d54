"""``mxha notify``: keepalived's notify hook, setting this node's MaxScale active or passive.

keepalived runs ``notify`` with ``TYPE NAME STATE [PRIORITY]`` and does not wait for it, so calls
overlap and can start late and out of order. An event only says WHEN to look; what to do is
decided from live state at the moment of deciding (level-triggered):

- **The live source is the kernel**: are the governing VIPs (``keepalived.vips``) on this host
  now? keepalived adds its VIPs before it runs the MASTER notify and removes them before the
  BACKUP/FAULT/STOP one, so the kernel is never behind the event that started a call; it is read
  (one netlink dump, unprivileged) right before deciding. Without ``keepalived.vips`` the event's
  STATE decides, as in the tutorial (and late calls can then still win: docs/configuration.md says so).
- **Tickets, not clocks**: an acting call takes a ticket (a counter under a lock) first. Calls are
  serialized by a second lock; a call that finds a newer ticket does nothing (the newer call looks
  at live state after it), and one retrying against a hung MaxScale hands over to a newer call
  between attempts instead of starving it.
- **Peers before going active** (``peers:``): the MASTER level asks every peer's ``/state``
  within ``notify.peer_budget`` and the remediator's policy (``decide_for_hook``): yield to a
  peer VERIFIED to be the better keeper and active; wait (within the budget) for a worse active
  peer to step down; anything less, go active. Going passive never waits.
- **No arguments** (keepalived's ``notify_master_rx_lower_pri``, or ``mxha check`` following up a
  yield): the same decision, from live state alone.

Every call is recorded with its reason in an atomically written JSON file (the exporter shows it
in ``/state``) and logged in one line.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mxha.config import EXIT_CONFIG
from mxha.hook_decision import (
    ACTIVE_STATES,
    PASSIVE_STATES,
    RECHECK,
    desired_mode,
    follow_up_reason,
    skip_event,
    takes_ticket,
    wants_active,
)
from mxha.maxscale import MaxScaleClient, MaxScaleError, reaches_majority, read_status
from mxha.notify_record import NotifyEntry, NotifyRecord
from mxha.statedir import lock_path, open_for_update, still_there, write_problem

if TYPE_CHECKING:
    from mxha.config import NodeConfig

POLL_SECONDS = 0.1  # how often a waiting notify looks at its peers again
LOOK_SECONDS = 0.1  # the least of the budget a look at the peers starts with (see another_look_fits)
RETRY_MAX_DELAY = 0.2  # the longest pause between two attempts to set MaxScale's mode


@dataclass(frozen=True)
class Transition:
    """One keepalived notify event (or a recheck), with its ticket in the order of events."""

    type: str  # INSTANCE, GROUP, or RECHECK
    name: str
    state: str
    priority: int | None
    ticket: int

    @property
    def wants_passive(self) -> bool:
        return self.state in PASSIVE_STATES


class Handover(Exception):
    """A newer call exists: it decides (from live state, after this one)."""


# -- tickets and the lock ------------------------------------------------------------------------
class Tickets:
    """A counter in a file: each acting call takes the next number. Larger than any earlier
    ``time.time_ns()`` sequence the record may hold from older versions."""

    def __init__(self, path: str) -> None:
        self.path = path

    def take(self) -> int:
        while True:
            fd = open_for_update(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not still_there(fd, self.path):
                    continue  # replaced meanwhile (a root leftover): count on the file there now
                last = _parse(os.pread(fd, 32, 0))
                ticket = max(last + 1, time.time_ns())
                os.pwrite(fd, f"{ticket:020d}\n".encode(), 0)
                return ticket
            finally:
                os.close(fd)

    def latest(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return _parse(os.pread(fd, 32, 0))
        finally:
            os.close(fd)


def _parse(raw: bytes) -> int:
    try:
        return int(raw.strip() or b"0")
    except ValueError:
        return 0


def acquire_lock(path: str, deadline: float) -> int | None:
    while True:
        fd = open_for_update(path)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.01)
        if still_there(fd, path):
            return fd
        os.close(fd)  # replaced while we waited (a root leftover): the lock is the file there now


# -- acting on MaxScale --------------------------------------------------------------------------
def apply_mode(
    client: MaxScaleClient,
    passive: bool,
    release_locks: bool,
    deadline: float,
    newer_call: Any = lambda: False,
    hand_over: Any = lambda: (True, ""),
    on_release: Any = lambda: None,
) -> str:
    """Set MaxScale's mode, retrying briefly until ``deadline``; returns a one-line result.
    Between attempts, hands over (``Handover``) when ``newer_call()`` says a newer call waits."""
    attempt = 0
    delay = 0.1
    last_error = "no attempt made"
    while time.monotonic() < deadline:
        if attempt and newer_call():
            raise Handover(f"handed over to a newer call after {attempt} attempt(s): {last_error}")
        attempt += 1
        try:
            client.set_passive(passive, deadline=deadline)
            result = f"passive={str(passive).lower()} set"
            if release_locks:  # the caller decides when (passive mode: going passive)
                result += release_all_locks(client, deadline, hand_over, on_release)
            return result + (f" (attempt {attempt})" if attempt > 1 else "")
        except MaxScaleError as exc:
            last_error = str(exc)
            if exc.kind == "auth" or (exc.status is not None and 400 <= exc.status < 500):
                break  # retrying will not change a refusal
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        # at most RETRY_MAX_DELAY apart: a MaxScale restarting (crashed and started again, active by
        # its persisted mode) is caught within that of answering; a refused connect costs nothing
        delay = min(delay * 2, RETRY_MAX_DELAY)
    raise MaxScaleError(f"gave up after {attempt} attempt(s): {last_error}", kind="timeout")


def release_all_locks(
    client: MaxScaleClient, deadline: float, hand_over: Any = lambda: (True, ""), on_release: Any = lambda: None
) -> str:
    """With cooperative monitoring locks, a passive MaxScale must not keep them (it still takes
    them, and the newly active node then cannot get a majority). Only the locks it holds, and only
    when ``hand_over()`` says a peer can take them: releasing starts MaxScale's one-minute no-relock
    back-off, so with nobody to take them the cluster would have no lock primary at all."""
    notes = []
    for monitor in read_status(client, deadline).monitors:
        if not monitor.uses_locks:
            continue
        if monitor.primary is False:
            # releasing locks it does not hold only starts MaxScale's one-minute no-relock back-off:
            # two nodes starting BACKUP would then leave nobody able to lock (the newer tutorial's trap)
            notes.append(f"{monitor.name}: not held, not released")
            continue
        can, why = hand_over()
        if not can:
            notes.append(f"{monitor.name}: kept, no peer can take them ({why})")
            continue
        outcome = client.release_locks(monitor.name, deadline=deadline)
        if outcome != "locks-off":  # MaxScale starts its back-off even when it freed nothing
            on_release()
        notes.append(f"{monitor.name}: {outcome}")
    return f"; locks {', '.join(notes)}" if notes else ""


def another_look_fits(end: float) -> bool:
    """After a pause of ``POLL_SECONDS``, is ``LOOK_SECONDS`` of the budget still left for the peers to
    answer? A look started with a sliver of it times out, and its "unreadable" replaced what the
    looks before it had seen (a loaded machine's oversleep made that happen)."""
    return time.monotonic() + POLL_SECONDS + LOOK_SECONDS < end


def peer_can_take_locks(cfg: NodeConfig, deadline: float) -> tuple[bool, str]:
    """Is there a peer that can take the locks (``mxha.policy.cannot_take_locks``, the rule the
    remediator applies to its keeper; the back-off is its own hook's last release)? Peers are read again every
    ``POLL_SECONDS`` until ``notify.peer_budget`` ends: the peer takes the VIP a moment after this
    node left it. Always yes without peers configured (nobody to ask: release, as before)."""
    if not cfg.peers:
        return True, ""
    from mxha.peers import read_peers
    from mxha.policy import cannot_take_locks

    end = min(deadline, time.monotonic() + cfg.notify.peer_budget)
    while True:
        seen = []
        for reading in read_peers(cfg.peers, end):
            state = reading.state
            if reading.problem or state is None:
                seen.append(f"{reading.name}: {reading.problem or 'unreadable'}")
                continue
            servers = state.maxscale.servers
            running = f"{sum(1 for sv in servers if sv.running)}/{len(servers)}"
            released = state.notify.locks_released_at if state.notify else None
            taker = replace(
                reading.observation,
                reaches_majority=state.maxscale.up and reaches_majority(servers),
                # its own hook's release, within MaxScale's no-relock back-off
                relock_backoff=released is not None and time.time() - released < cfg.notify.relock_backoff,
            )
            why_not = cannot_take_locks(taker)
            if why_not is None:
                return True, f"{reading.name} holds the VIP and sees {running} Running"
            seen.append(f"{reading.name} {why_not} (it sees {running} Running)")
        if not another_look_fits(end):
            return False, "; ".join(seen) or "no peer"
        time.sleep(POLL_SECONDS)


# -- live state ----------------------------------------------------------------------------------
def live_master(vips: tuple[str, ...]) -> tuple[bool | None, str]:
    """Is this node the VRRP MASTER now, per the kernel? (None when it cannot say.)"""
    if not vips:
        return None, "no keepalived.vips configured: acting on the event"
    from mxha.vip import VipLookupError, local_addresses

    try:
        here = local_addresses()
    except VipLookupError as exc:
        return None, f"cannot list local addresses ({exc}): acting on the event"
    missing = [v for v in vips if v not in here]
    if missing:
        return False, f"VIP {', '.join(missing)} not on this host"
    return True, f"VIP {', '.join(vips)} on this host"


def consult_peers(cfg: NodeConfig, priority: int | None, deadline: float, newer_call: Any) -> tuple[str | None, str]:
    """Read the peers until the budget ends; (peer yielded to or None, the reason in one line)."""
    from mxha.peers import read_peers
    from mxha.policy import GO_ACTIVE, OK, WAIT, YIELD, NodeObservation, decide_for_hook

    me = NodeObservation(cfg.node, "MASTER", priority, True, True, maxscale=OK, passive=True)
    start = time.monotonic()
    end = min(start + cfg.notify.peer_budget, start + max(0.05, (deadline - start) / 2))
    looks = 0
    while True:
        looks += 1
        readings = read_peers(cfg.peers, end)
        decision = decide_for_hook(me, [r.observation for r in readings])
        seen = "; ".join(r.summary() for r in readings)
        if decision.action != WAIT or not another_look_fits(end):
            break
        if newer_call():
            raise Handover("handed over to a newer call while waiting for a peer")
        time.sleep(POLL_SECONDS)
    took = f"{time.monotonic() - start:.2f}s, {looks} look(s)"
    if decision.action == YIELD:
        return decision.peer, f"yielded to {decision.peer}: {decision.reason} [{seen}; {took}]"
    if decision.action == WAIT:
        return None, f"going active after the peer budget: {decision.reason} [{seen}; {took}]"
    assert decision.action == GO_ACTIVE
    return None, f"going active: {decision.reason} [{seen}; {took}]"


# -- the hook ------------------------------------------------------------------------------------
def log_line(path: str | None, line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = f"{stamp} mxha notify: {line}\n"
    if path:
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text)
            return
        except OSError:
            pass
    sys.stderr.write(text)


def _to_syslog(line: str) -> None:
    import syslog

    syslog.openlog("mxha-notify", 0, syslog.LOG_DAEMON)
    syslog.syslog(syslog.LOG_WARNING, line)


def state_dir_problem(cfg: NodeConfig) -> str | None:
    """Why this run may not write the hooks' files (only the owner of their directory does), or None."""
    return write_problem(cfg.notify.state_file, cfg.notify.lock_file)


def main(config_file: str, type_: str | None, name: str | None, state: str | None, priority: str | None) -> int:
    from mxha.config import ConfigError, load_node_config

    try:
        cfg = load_node_config(config_file)
    except ConfigError as exc:
        print(f"mxha notify: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    settings = cfg.notify
    if state is None:
        type_, name, state = RECHECK, "", RECHECK
    else:
        state, type_ = state.upper(), (type_ or "").upper()
        if state not in ACTIVE_STATES | PASSIVE_STATES:
            log_line(settings.log_file, f"{type_} {name} {state}: unknown state, nothing done")
            print(
                f"mxha notify: unknown state {state!r} (expected MASTER, BACKUP, FAULT, STOP or DELETED)",
                file=sys.stderr,
            )
            return 1
        if type_ not in ("INSTANCE", "GROUP"):  # keepalived sends no other: a hand-made call
            log_line(settings.log_file, f"{type_} {name} {state}: unknown type, nothing done")
            print(f"mxha notify: unknown type {type_!r} (expected INSTANCE or GROUP)", file=sys.stderr)
            return 1
    assert type_ is not None and name is not None
    prio: int | None = int(priority) if priority is not None and priority.lstrip("-").isdigit() else None
    deadline = time.monotonic() + settings.timeout

    def expire(signum: int, frame: object) -> None:
        log_line(settings.log_file, f"{type_} {name} {state}: hard timeout, exiting")
        raise SystemExit(1)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout + 1.0)

    refused = state_dir_problem(cfg)
    if refused is not None:
        # a person's run (root debugging) or a missing directory: write nothing there, so the next
        # run by keepalived's script user finds its files as it left them; going passive still happens
        return unrecorded(cfg, Transition(type_, name, state, prio, 0), deadline, refused, refusal=True)
    lock_file = lock_path(settings.state_file, settings.lock_file)
    tickets = Tickets(f"{lock_file}.ticket")
    acting = takes_ticket(
        type_,
        name,
        cfg.keepalived.governing_instance,
        group_events=settings.group_events,
        has_vips=bool(cfg.keepalived.vips),
    )
    ticket = 0
    # a passive transition keeps time to act without the lock if it cannot get it
    reserve = min(2.0, settings.timeout / 2) if state in PASSIVE_STATES else 0.0
    try:
        ticket = tickets.take() if acting else 0
        fd = acquire_lock(lock_file, deadline - reserve)
    except OSError as exc:
        why = f"cannot use {lock_file}: {exc.strerror or exc}"
        return unrecorded(cfg, Transition(type_, name, state, prio, ticket), deadline, why, tickets=tickets)
    if fd is None:
        why = "another notify held the lock too long"
        if state in PASSIVE_STATES:
            return unrecorded(cfg, Transition(type_, name, state, prio, ticket), deadline, why, tickets=tickets)
        log_line(settings.log_file, f"{type_} {name} {state}: {why}")
        return 1
    try:
        return _handle(cfg, Transition(type_, name, state, prio, ticket), deadline, tickets)
    finally:
        os.close(fd)


def unrecorded(
    cfg: NodeConfig, t: Transition, deadline: float, why: str, *, refusal: bool = False, tickets: Tickets | None = None
) -> int:
    """A call that cannot use the hooks' lock, tickets or record (``why``). Going passive is never
    blocked by our own files: a BACKUP/FAULT/STOP/DELETED transition of the governing instance is
    applied from live state (the kernel's VIPs: never two active comes first), and nothing is
    written in the state directory. Anything else (going active, a recheck) needs the lock, which
    orders the calls, and is not done. ``refusal``: this run may not write there at all (another
    user, or no directory): it says so on stderr, not in the log file it must not create."""
    log_file = None if refusal else cfg.notify.log_file
    if refusal:  # keepalived discards a notify script's output: the journal keeps this one
        _to_syslog(f"{t.type} {t.name} {t.state}: {why}")
    prio = f" {t.priority}" if t.priority is not None else ""
    head = f"{t.type} {t.name} {t.state}{prio}"
    if t.type == RECHECK or not t.wants_passive:
        log_line(log_file, f"{head}: nothing done: {why} (without it only going passive is applied)")
        return EXIT_CONFIG if refusal else 1
    from mxha.model import governing_instance  # here: `mxha check --follow-up` imports this module

    known = NotifyRecord.read(cfg.notify.state_file).known_instances() | ({t.name} if t.type == "INSTANCE" else set())
    skip = skip_event(  # the same table as a recorded call: which events act at all
        t.type,
        t.name,
        governing_instance(cfg.keepalived.governing_instance, frozenset(known)),
        known,
        group_events=cfg.notify.group_events,
        has_vips=bool(cfg.keepalived.vips),
        superseded=lambda: tickets is not None and t.ticket > 0 and tickets.latest() > t.ticket,
    )
    if skip is not None:
        log_line(log_file, f"{head}: {skip.result.removeprefix('recorded; ')}; not recorded: {why}")
        return skip.code
    master, source = live_master(cfg.keepalived.vips)
    if master:
        log_line(log_file, f"{head}: {source}: live state says active, left as is; not recorded: {why}")
        return 0
    locks_mode = cfg.mode == "locks"
    passive = not locks_mode  # mode: locks: every MaxScale stays active; only the locks move

    def overtaken() -> bool:
        """Between attempts: without the lock, a newer call (or the VIP coming back) may have made
        this MaxScale active since live state was read: a late passive write must not undo it."""
        newer = tickets is not None and t.ticket > 0 and tickets.latest() > t.ticket
        return newer or live_master(cfg.keepalived.vips)[0] is True

    try:
        outcome = apply_mode(
            cfg.maxscale.client(),
            passive,
            cfg.notify.release_locks,
            deadline,
            newer_call=overtaken,
            hand_over=lambda: peer_can_take_locks(cfg, deadline),
        )
    except Handover as exc:
        log_line(log_file, f"{head}: {exc}; not recorded: {why}")
        return 0
    except MaxScaleError as exc:
        log_line(log_file, f"{head}: FAILED: {exc}; {source}; not recorded: {why}")
        return 1
    log_line(log_file, f"{head}: {outcome}; {source}; not recorded: {why}")
    return 0


def _handle(cfg: NodeConfig, t: Transition, deadline: float, tickets: Tickets | None = None) -> int:
    settings = cfg.notify
    record = NotifyRecord.read(settings.state_file)
    entry = NotifyEntry(time.time(), t.type, t.name, t.state, t.priority, t.ticket)
    known = record.known_instances() | ({t.name} if t.type == "INSTANCE" else set())
    from mxha.model import governing_instance  # here: `mxha check --follow-up` imports this module

    governing = governing_instance(cfg.keepalived.governing_instance, frozenset(known))

    def newer_call() -> bool:
        return tickets is not None and t.ticket > 0 and tickets.latest() > t.ticket

    code = 0
    quiet = False
    skip = skip_event(
        t.type,
        t.name,
        governing,
        known,
        group_events=settings.group_events,
        has_vips=bool(cfg.keepalived.vips),
        superseded=lambda: newer_call() or record.governing_seq > t.ticket,
    )
    if skip is not None:
        entry.result, code = skip.result, skip.code
    else:
        master, source = live_master(cfg.keepalived.vips)
        active = wants_active(t.type, t.state, master)
        if active is None:
            entry.result = f"nothing done: no live state to decide from ({source})"
        else:
            if master is not None and t.type != RECHECK and active != (t.state in ACTIVE_STATES):
                source += f" (the event said {t.state}: live state wins)"
            yielded_to: str | None = None
            why = source
            try:
                locks_mode = cfg.mode == "locks"
                if active and cfg.peers and not locks_mode:
                    priority = t.priority if t.priority is not None else record.last_priority(governing)
                    yielded_to, why = consult_peers(cfg, priority, deadline, newer_call)
                    why = f"{source}; {why}"
                mode = desired_mode(
                    locks_mode=locks_mode,
                    wants_active=active,
                    yielded_to=yielded_to,
                    release_locks=settings.release_locks,
                )
                passive, release = mode.passive, mode.release_locks
                client = cfg.maxscale.client()

                def hand_over() -> tuple[bool, str]:
                    return peer_can_take_locks(cfg, deadline)

                def on_release() -> None:
                    record.locks_released_at = time.time()

                if t.type == RECHECK and read_status(client, deadline).passive is passive:
                    # rechecks can come every second (notify_master_rx_lower_pri during a one-way
                    # block, the check's follow-up every 2 s while locks wait for a taker): no
                    # write, which MaxScale would persist to disk each time; the locks still move
                    outcome = f"already passive={str(passive).lower()}"
                    if release:
                        outcome += release_all_locks(client, deadline, hand_over, on_release)
                else:
                    outcome = apply_mode(client, passive, release, deadline, newer_call, hand_over, on_release)
                entry.result = f"{outcome}; {why}"
                entry.ok = True
            except Handover as exc:
                entry.result = f"{exc}; {why}"
            except MaxScaleError as exc:
                entry.result = f"FAILED: {exc}; {why}"
                entry.ok = False
                code = 1
            if entry.ok is not None:
                quiet = (
                    t.type == RECHECK
                    and entry.ok
                    and record.yielded_to == yielded_to
                    and record.desired_passive == passive
                )
                record.governing_seq = t.ticket
                record.desired_passive = passive
                record.yielded_to = yielded_to
    record.node = cfg.node
    record.updated_at = time.time()
    if quiet:  # a recheck that changed nothing: not a history line every check interval
        record.rechecked_at = entry.time
    else:
        record.add(entry)
    if t.type != RECHECK and (entry.acted or (t.type == "INSTANCE" and t.name == governing)):
        # keepalived's newest word on the governing instance, also when a recheck that read the
        # same live state got there first (the event is then skipped as superseded)
        record.governing_instance = t.name
        record.governing_state = record.instances[f"{t.type} {t.name}"]["state"]
    record.write(settings.state_file)
    if not quiet:
        prio = f" {t.priority}" if t.priority is not None else ""
        log_line(settings.log_file, f"{t.type} {t.name} {t.state}{prio}: {entry.result}")
    return code


LOCKS_RECHECK_EVERY = 2.0  # a lock holder off the VIP whose peers cannot take the locks: look this often


def _locks_worth_a_look(record: NotifyRecord) -> bool:
    """No recheck in the last ``LOCKS_RECHECK_EVERY`` seconds (one that kept the locks is quiet)."""
    looked = [e.time for e in record.history[-3:] if e.type == RECHECK] + [record.rechecked_at or 0.0]
    return time.time() - max(looked) >= LOCKS_RECHECK_EVERY


def follow_up(
    cfg: NodeConfig, config_file: str, maxscale_passive: bool | None, lock_primary: Any = lambda: None
) -> str | None:
    """Called by ``mxha check`` every interval: the periodic, level-triggered look that events lack.

    Starts a recheck (``mxha notify`` without arguments) in the background, never waiting for it,
    when live state and this MaxScale disagree: the VIP is elsewhere but MaxScale is active (a
    MaxScale restarted on the backup comes back active), the VIP is here but MaxScale is passive
    without a yield (a notify that ran while MaxScale was down), or this node yielded to a peer and
    still holds the VIP (keepalived runs no notify on a node that stays MASTER, so the yield ends
    only if someone looks again); in either mode, this MaxScale holds the cooperative locks but the
    VIP is elsewhere (``lock_primary()`` reads it; at most every ``LOCKS_RECHECK_EVERY`` s while the
    peers cannot take them). Returns why it started one, or None."""
    if not cfg.keepalived.vips:
        return None
    master, _ = live_master(cfg.keepalived.vips)
    if master is None:
        return None
    record = NotifyRecord.read(cfg.notify.state_file)
    why = follow_up_reason(
        locks_mode=cfg.mode == "locks",
        master=master,
        maxscale_passive=maxscale_passive,
        yielded_to=record.yielded_to,
        has_peers=bool(cfg.peers),
        release_locks=cfg.notify.release_locks,
        locks_worth_a_look=_locks_worth_a_look(record),
        holds_locks=lock_primary,
    )
    if why is None:
        return None
    # a notify is running: it decides, no pile-up
    probe = acquire_lock(lock_path(cfg.notify.state_file, cfg.notify.lock_file), time.monotonic())
    if probe is None:
        return None
    os.close(probe)
    import subprocess

    subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "mxha", "notify", "--config.file", config_file],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return f"recheck started: {why}"

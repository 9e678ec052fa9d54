"""Act: carry out an admitted correction (demotions, then each promotion or release only after a
fresh read still asks for it), read each change back, and record every action."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mxha.maxscale import MaxScaleClient, MaxScaleError, read_status
from mxha.policy import Action, NodeObservation, Plan
from mxha.remediator.config import RemediatorConfig
from mxha.remediator.drivers import Driver, DriverError
from mxha.remediator.metrics import Metrics
from mxha.remediator.runtime import ClusterRuntime, ReconcileResult, UnsettledWrite
from mxha.remediator_model import NodeReading

log = logging.getLogger("mxha.remediator")


def recorded_kind(kind: str) -> str:
    """A plan's action kind as actions are recorded and counted (``ACTIONS``)."""
    return "release_locks" if kind == "release" else kind


class Corrector:
    """Carries out admitted corrections and records every action. ``observe`` reads a cluster again
    (as evidence), ``plan`` plans from observations, ``fence`` raises ``LeaseLost`` when a replica's
    cluster lock is no longer its own: the engine's, passed in."""

    def __init__(
        self,
        cfg: RemediatorConfig,
        runtimes: dict[str, ClusterRuntime],
        clients: dict[tuple[str, str], MaxScaleClient],
        drivers: dict[tuple[str, str], Driver],
        metrics: Metrics,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        observe: Callable[[str, float], list[NodeReading]],
        plan: Callable[[str, list[NodeObservation]], Plan],
        fence: Callable[[str, float], None],
    ) -> None:
        self.cfg = cfg
        self.runtimes = runtimes
        self.clients = clients
        self.drivers = drivers
        self.metrics = metrics
        self.clock = clock
        self.wall_clock = wall_clock
        self._observe = observe
        self._plan = plan
        self._fence = fence

    def run(
        self, cluster: str, plan: Plan, readings: list[NodeReading], deadline: float, result: ReconcileResult
    ) -> list[NodeReading] | None:
        by_name = {r.observation.name: r for r in readings}
        demotions = [a for a in plan.actions if a.kind == "demote"]
        # promotions, then lock releases: each only after a fresh read still asks for it
        rest = [a for a in plan.actions if a.kind == "promote"] + [a for a in plan.actions if a.kind == "release"]
        for action in demotions:
            outcome = self._change_mode(cluster, action, by_name[action.node], deadline)
            result.results.append(outcome)
            if outcome["result"] != "success":
                result.status = 500
                for later in plan.actions[plan.actions.index(action) + 1 :]:
                    result.results.append(
                        self.record(
                            cluster, later.node, later.kind, "skipped", f"demotion of {action.node} not confirmed"
                        )
                    )
                self.metrics.skipped.labels(cluster, "demotion_failed").inc()
                return None
        for i, action in enumerate(rest):
            changed, fresh = self._changed_since(
                cluster, plan, readings, {a.node for a in demotions}, deadline, tuple(rest[i:])
            )
            if changed:
                self.metrics.skipped.labels(cluster, "state_changed").inc()
                kind = recorded_kind(action.kind)
                result.results.append(self.record(cluster, action.node, kind, "skipped", "state changed: " + changed))
                result.status = 503
                return fresh
            if action.kind == "release":
                outcome = self._hand_locks_over(cluster, action.node, str(plan.keep), by_name[action.node], deadline)
                result.results.append(outcome)
                if outcome["result"] != "success":
                    result.status = max(result.status, 503 if outcome.get("retry") else 500)
                continue
            outcome = self._change_mode(cluster, action, by_name[action.node], deadline)
            result.results.append(outcome)
            if outcome["result"] != "success":
                result.status = 500
            elif plan.over_down:
                rt = self.runtimes[cluster]
                rt.counted_down = rt.counted_down | set(plan.over_down)
                self.metrics.over_down.labels(cluster).inc()
                outcome["over_down"] = list(plan.over_down)
        return None

    def _changed_since(
        self,
        cluster: str,
        plan: Plan,
        before: list[NodeReading],
        demoted: set[str],
        deadline: float,
        remaining: tuple[Action, ...],
    ) -> tuple[str | None, list[NodeReading]]:
        """Read every node again; say what changed that the ``remaining`` actions rest on (or None),
        with the readings."""
        limit = min(deadline, time.monotonic() + self.cfg.policy.state_timeout)
        fresh = self._observe(cluster, limit)
        now = {r.observation.name: r.observation for r in fresh}
        keep = plan.keep
        changes: list[str] = []
        for old in (r.observation for r in before):
            new = now[old.name]
            fields: tuple[str, ...]
            if old.name == keep:
                fields = ("vrrp_state", "holds_vip", "check_ok", "maxscale", "passive", "reaches_majority")
            else:
                fields = ("maxscale",) if old.name in demoted else ("maxscale", "passive")
            if any(a.kind == "release" for a in remaining):
                fields += ("lock_primary",)
            for f in fields:
                if getattr(old, f) != getattr(new, f):
                    changes.append(f"{old.name} {f} {getattr(old, f)!r} -> {getattr(new, f)!r}")
            if old.name in demoted and new.passive is not True:
                changes.append(f"{old.name} is not passive after its demotion")
        if changes:
            return "; ".join(changes), fresh
        again = self._plan(cluster, list(now.values()))
        if again.keep != keep or again.actions != remaining:
            return f"a fresh plan says {again.verdict}: {again.reason}", fresh
        return None, fresh

    def _change_mode(self, cluster: str, action: Action, reading: NodeReading, deadline: float) -> dict[str, Any]:
        node = action.node
        driver = self.drivers[(cluster, node)]
        client = self.clients[(cluster, node)]
        passive = action.kind == "demote"
        try:
            if deadline - time.monotonic() <= 0:
                raise DriverError("the request budget was spent before this action")
            self._fence(cluster, deadline)
            try:
                driver.set_passive(passive, deadline)
            except DriverError as exc:
                # a change whose answer was lost may have been applied, or may still be: ask (that
                # read is the read-back)
                failed = self._applied(cluster, action, exc, deadline)
                if failed is not None:
                    return failed
                log.warning(
                    "cluster %s: %s %s: applied, though its answer was lost (%s)", cluster, action.kind, node, exc
                )
                outcome = self.record(cluster, node, action.kind, "success")
            else:
                try:
                    read_back = client.get_maxscale(deadline)["parameters"].get("passive")
                except MaxScaleError as exc:
                    # MaxScale acknowledged the change: it is applied. What follows (the re-read before a
                    # promotion) sees the node's reachability change and decides with that.
                    note = f"acknowledged by MaxScale; reading it back failed: {exc}"[:300]
                    outcome = self.record(cluster, node, action.kind, "success", note)
                else:
                    if read_back is not passive:
                        raise DriverError("MaxScale did not report the new mode after the change")
                    outcome = self.record(cluster, node, action.kind, "success")
        except (DriverError, MaxScaleError) as exc:
            return self.record(cluster, node, action.kind, "failure", str(exc)[:300])
        if action.release_locks:  # the policy asks only when this node holds them and the keeper can take them
            try:
                self._fence(cluster, deadline)
                self.record(cluster, node, "release_locks", "success", self._release(cluster, node, reading, deadline))
            except (DriverError, MaxScaleError) as exc:
                self.record(cluster, node, "release_locks", "failure", str(exc)[:300])
        return outcome

    def _applied(self, cluster: str, action: Action, exc: DriverError, deadline: float) -> dict[str, Any] | None:
        """After a mode change gave no answer: None when MaxScale now reports the new mode (applied),
        else the failure's record. A change that was sent and got no answer is recorded with
        ``outcome: unknown`` and watched for ``unsettled_write_seconds`` (it may land later)."""
        passive = action.kind == "demote"
        try:
            now_passive = self.clients[(cluster, action.node)].get_maxscale(deadline)["parameters"].get("passive")
            seen = (
                f"read {'passive' if now_passive else 'active'} right after"
                if now_passive is not None
                else "its mode was not in the document read right after"
            )
        except MaxScaleError as read_exc:
            now_passive, seen = None, f"its mode could not be read right after ({read_exc})"
        if now_passive is passive:
            return None
        if not exc.may_land:
            return self.record(cluster, action.node, action.kind, "failure", str(exc)[:300])
        pol = self.cfg.policy
        rt = self.runtimes[cluster]
        write = UnsettledWrite(
            action.kind, self.clock() + pol.unsettled_write_seconds, self.wall_clock() + pol.unsettled_write_seconds
        )
        rt.unsettled = {**rt.unsettled, action.node: write}
        reason = f"outcome unknown: {exc}; {seen}; it may still be applied (watched {pol.unsettled_write_seconds:g}s)"
        entry = self.record(cluster, action.node, action.kind, "failure", reason[:400])
        entry["outcome"] = "unknown"
        return entry

    def _release(self, cluster: str, node: str, reading: NodeReading, deadline: float) -> str:
        """release-locks on every monitor of ``node`` that uses locks; remembered for the back-off
        (MaxScale starts it whatever the call freed). Raises DriverError."""
        driver = self.drivers[(cluster, node)]
        notes = []
        for monitor in reading.monitors_with_locks:
            outcome = driver.release_locks(monitor, deadline)
            if outcome != "locks-off":
                rt = self.runtimes[cluster]
                rt.released_at = {**rt.released_at, node: self.clock()}
            notes.append(f"{monitor}: {outcome}")
        return ", ".join(notes) or "no monitor uses locks"

    def _hand_locks_over(
        self, cluster: str, node: str, keep: str, reading: NodeReading, deadline: float
    ) -> dict[str, Any]:
        """Release ``node``'s locks, then verify that ``keep`` became the lock primary within
        ``policy.lock_handover_seconds`` (and the request's deadline)."""
        try:
            if deadline - time.monotonic() <= 0:
                raise DriverError("the request budget was spent before this action")
            self._fence(cluster, deadline)
            released = self._release(cluster, node, reading, deadline)
        except (DriverError, MaxScaleError) as exc:
            return self.record(cluster, node, "release_locks", "failure", str(exc)[:300])
        started = time.monotonic()
        limit = min(deadline, started + self.cfg.policy.lock_handover_seconds)
        client = self.clients[(cluster, keep)]
        seen = "not read"
        while True:
            try:
                primary = read_status(client, limit).facts.lock_primary
                seen = f"lock primary {primary}"
            except MaxScaleError as exc:
                primary, seen = None, f"unreadable ({exc.error_kind})"
            took = time.monotonic() - started
            if primary is True:
                return self.record(
                    cluster, node, "release_locks", "success", f"{released}; {keep} took the locks in {took:.2f}s"
                )
            if time.monotonic() + 0.1 >= limit:
                entry = self.record(
                    cluster,
                    node,
                    "release_locks",
                    "failure",
                    f"{released}; {keep} had not taken the locks after {took:.2f}s ({seen})",
                )
                return {**entry, "retry": True}
            time.sleep(0.1)

    def record(self, cluster: str, node: str, action: str, outcome: str, reason: str = "") -> dict[str, Any]:
        self.metrics.actions.labels(cluster, node, action, outcome).inc()
        entry = {"time": self.wall_clock(), "node": node, "action": action, "result": outcome, "reason": reason}
        self.runtimes[cluster].recent.append(entry)
        log.info("cluster %s: %s %s -> %s %s", cluster, action, node, outcome, reason)
        return entry

    def would(self, cluster: str, node: str, action: str) -> dict[str, Any]:
        """What a dry run would have done: shown and audited as such (result ``dry_run``), never
        counted as an action."""
        entry = {
            "time": self.wall_clock(),
            "node": node,
            "action": action,
            "result": "dry_run",
            "reason": "dry run: not sent",
        }
        self.runtimes[cluster].recent.append(entry)
        log.info("cluster %s: dry run: would %s %s; nothing sent", cluster, action, node)
        return entry

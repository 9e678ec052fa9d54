"""The notify record: what ``mxha notify`` did at each VRRP transition, kept in one JSON file.

ONE model for a file with one writer (``mxha notify``, serialized by its lock) and several
readers (the exporter shows the last transition acted on in ``/state`` and as metrics; the
tests). It is written atomically (``mxha.files.atomic_write``): readers never see half of it.
Standard library only: ``mxha notify`` runs in a fresh process per event.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mxha.files import atomic_write

HISTORY_LIMIT = 50


@dataclass
class NotifyEntry:
    """One call of the hook."""

    time: float
    type: str
    name: str
    state: str
    priority: int | None
    seq: int  # orders calls: the newest transition wins
    result: str = ""
    ok: bool | None = None  # set when it acted on MaxScale: did that work?

    @property
    def acted(self) -> bool:
        return self.ok is not None


@dataclass
class NotifyRecord:
    """What the hooks last did and saw, kept in the notify state file."""

    node: str | None = None
    history: list[NotifyEntry] = field(default_factory=list)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)  # "TYPE NAME" -> last transition
    governing_seq: int = 0
    desired_passive: bool | None = None
    governing_instance: str | None = None
    governing_state: str | None = None
    updated_at: float | None = None
    yielded_to: str | None = None  # the peer this node stays passive for, while it holds the VIP
    rechecked_at: float | None = None  # the last recheck that changed nothing (not in the history)
    # the last release-locks call (it starts MaxScale's one-minute no-relock back-off, whatever it freed)
    locks_released_at: float | None = None

    def add(self, entry: NotifyEntry) -> None:
        self.history.append(entry)
        del self.history[:-HISTORY_LIMIT]
        if entry.type not in ("INSTANCE", "GROUP"):  # a recheck is no VRRP instance's transition
            return
        key = f"{entry.type} {entry.name}"
        previous = self.instances.get(key)
        if previous is None or previous.get("seq", 0) <= entry.seq:
            self.instances[key] = {
                "time": entry.time,
                "state": entry.state,
                "priority": entry.priority,
                "seq": entry.seq,
            }

    def known_instances(self) -> set[str]:
        """The VRRP instances the hook has seen transitions of."""
        return {key.split(" ", 1)[1] for key in self.instances if key.startswith("INSTANCE ")}

    def last_priority(self, instance: str | None) -> int | None:
        """The priority keepalived gave with the instance's newest transition."""
        if instance is None:
            return None
        value = self.instances.get(f"INSTANCE {instance}", {}).get("priority")
        return value if isinstance(value, int) else None

    def last_acted(self) -> NotifyEntry | None:
        """The newest call that acted on MaxScale, else the newest call."""
        acted = [e for e in self.history if e.acted]
        if acted:
            return acted[-1]
        return self.history[-1] if self.history else None

    # -- the file -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(doc: Any) -> NotifyRecord:
        """Lenient: a missing or damaged record reads as an empty one (the hook then starts afresh)."""
        if not isinstance(doc, dict):
            return NotifyRecord()
        history = []
        for item in doc.get("history", []) if isinstance(doc.get("history"), list) else []:
            try:
                history.append(
                    NotifyEntry(
                        time=float(item["time"]),
                        type=str(item.get("type", "INSTANCE")),
                        name=str(item.get("name", "")),
                        state=str(item["state"]),
                        priority=item.get("priority") if isinstance(item.get("priority"), int) else None,
                        seq=int(item.get("seq", 0)),
                        result=str(item.get("result", ""))[:500],
                        ok=item.get("ok") if isinstance(item.get("ok"), bool) else None,
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
        instances = doc.get("instances")

        def text(key: str) -> str | None:
            value = doc.get(key)
            return value if isinstance(value, str) else None

        seq = doc.get("governing_seq")
        desired = doc.get("desired_passive")
        updated = doc.get("updated_at")
        rechecked = doc.get("rechecked_at")
        released = doc.get("locks_released_at")
        return NotifyRecord(
            node=text("node"),
            history=history,
            instances={k: v for k, v in instances.items() if isinstance(v, dict)}
            if isinstance(instances, dict)
            else {},
            governing_seq=seq if isinstance(seq, int) else 0,
            desired_passive=desired if isinstance(desired, bool) else None,
            governing_instance=text("governing_instance"),
            governing_state=text("governing_state"),
            updated_at=float(updated) if isinstance(updated, (int, float)) else None,
            yielded_to=text("yielded_to"),
            rechecked_at=float(rechecked) if isinstance(rechecked, (int, float)) else None,
            locks_released_at=float(released) if isinstance(released, (int, float)) else None,
        )

    @staticmethod
    def read(path: str) -> NotifyRecord:
        try:
            with open(path, "rb") as fh:
                return NotifyRecord.from_bytes(fh.read())
        except OSError:
            return NotifyRecord()

    @staticmethod
    def from_bytes(raw: bytes) -> NotifyRecord:
        try:
            return NotifyRecord.from_json(json.loads(raw))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError included
            return NotifyRecord()

    def write(self, path: str) -> None:
        atomic_write(path, json.dumps(self.to_json(), indent=1, sort_keys=True))

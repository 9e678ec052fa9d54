"""A client writing through the lab's VIP, and what its writes show after a scenario.

The ``Writer`` inserts a sequence number every 50 ms through one ``host:port`` (MaxScale's
listener on the VIP in the lab; a server directly in the tests), reconnecting after a failure as
an application's client would, and keeps a ledger of the inserts the server acknowledged.

After the scenario ``writer_report`` compares the ledger with the servers:

- failed writes and the longest gap with no acknowledged write (what the application saw);
- lost writes: acknowledged rows missing from the final primary;
- errant GTIDs: transactions in a server's binary log that the final primary's binary log lacks
  (the servers keep replicated transactions in their binary logs, ``log_slave_updates``), i.e.
  divergence: the data loss a second active MaxScale or a bad failover causes.

The arithmetic is pure (``longest_gap``, ``lost_writes``, ``errant_gtids``) and tested alone.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mxha.lab import database

INTERVAL = 0.05
# A write that gets no answer within this long counts as failed: the next tick reconnects, as a
# pooled client with a short timeout would, instead of one hung connection hiding later ticks.
WRITE_TIMEOUT = 1.0

_GTID = re.compile(r"\b(\d+)-(\d+)-(\d+)\b")


@dataclass(frozen=True)
class FailedWrite:
    seq: int
    at: float
    error: str


@dataclass
class Ledger:
    """What the writer saw: times are Unix seconds (to line up with a scenario's timeline)."""

    started_at: float
    run: int = 0  # this run's id in the table: its rows are (run, seq)
    # each server's binary log GTIDs when the run started (a server missing: not read): errant GTIDs
    # are counted for the transactions that appeared during the run, an earlier scenario's apart
    gtids_before: dict[str, set[str]] = field(default_factory=dict)
    stopped_at: float | None = None
    attempts: int = 0
    acknowledged: list[tuple[int, float]] = field(default_factory=list)
    failed: list[FailedWrite] = field(default_factory=list)

    @property
    def acknowledged_seqs(self) -> list[int]:
        return [seq for seq, _ in self.acknowledged]


def longest_gap(ack_times: Sequence[float], started_at: float, stopped_at: float) -> tuple[float, float, float]:
    """The longest stretch of the run with no acknowledged write, as (seconds, from, to): from the
    start to the first acknowledgement, between two, and from the last one to the stop all count
    (a writer that never succeeded has one gap, the whole run)."""
    edges = [started_at, *sorted(ack_times), stopped_at]
    best = (0.0, started_at, started_at)
    for before, after in zip(edges, edges[1:], strict=False):
        if after - before > best[0]:
            best = (after - before, before, after)
    return best


def lost_writes(acknowledged: Iterable[int], on_primary: Iterable[int]) -> list[int]:
    """Acknowledged sequence numbers the final primary does not have."""
    return sorted(set(acknowledged) - set(on_primary))


def parse_gtid(text: str) -> tuple[int, int, int] | None:
    match = _GTID.search(text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def errant_gtids(server: Iterable[str], primary: Iterable[str]) -> list[str]:
    """GTIDs a server has that the final primary lacks, in (domain, sequence) order."""
    missing = set(server) - set(primary)
    return sorted(missing, key=lambda g: parse_gtid(g) or (0, 0, 0))


@dataclass(frozen=True)
class WriterReport:
    attempts: int
    acknowledged: int
    failed: int
    longest_gap_seconds: float
    longest_gap_from: float
    longest_gap_to: float
    final_primary: str
    lost: list[int] | None  # None: the final primary could not be read
    errant: dict[str, list[str]] | None  # made during the run (all of them for a server not read at its start)
    unread: dict[str, str]  # server -> why its binary log or rows could not be read
    errant_before: dict[str, int] = field(default_factory=dict)  # server -> errant GTIDs it had at the start

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The figures as a scenario prints them."""
        out = [
            f"writes: {self.acknowledged} acknowledged of {self.attempts}, {self.failed} failed, "
            f"longest gap {self.longest_gap_seconds:.2f}s",
        ]
        if self.lost is None or self.errant is None:
            out.append(f"lost writes and errant GTIDs: unknown (the final primary {self.final_primary} was not read)")
            return out + [f"could not read {name}: {why}" for name, why in sorted(self.unread.items())]
        out.append(
            f"lost writes (acknowledged, missing on the final primary {self.final_primary}): "
            + (f"{len(self.lost)} ({_abridge(self.lost)})" if self.lost else "none")
        )
        errant = {name: gtids for name, gtids in self.errant.items() if gtids}
        if errant:
            for name, gtids in sorted(errant.items()):
                out.append(f"errant GTIDs on {name} (the final primary lacks them): {len(gtids)} ({_abridge(gtids)})")
        else:
            out.append("errant GTIDs: none")
        before = {name: count for name, count in self.errant_before.items() if count}
        if before:
            out.append(
                "errant GTIDs from before this run (not counted above): "
                + ", ".join(f"{name} {count}" for name, count in sorted(before.items()))
            )
        for name, why in sorted(self.unread.items()):
            out.append(f"could not read {name}: {why}")
        return out


def _abridge(items: Sequence[object], keep: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:keep])
    return shown + (f", ... {len(items) - keep} more" if len(items) > keep else "")


def connect_to(host: str, port: int, user: str, password: str, timeout: float) -> Any:
    import pymysql

    return pymysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        autocommit=True,
    )


class Writer:
    """Inserts ``seq`` every ``interval`` seconds into ``mxha_lab.writes`` through host:port, in a
    thread, from ``start()`` to ``stop()``. A tick that cannot connect or gets an error records a
    failed write, drops the connection and reconnects at the next tick."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        interval: float = INTERVAL,
        timeout: float = WRITE_TIMEOUT,
        wall_clock: Callable[[], float] = time.time,
        gtids_now: Callable[[], dict[str, set[str]]] = dict,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.interval = interval
        self.timeout = timeout
        self.wall_clock = wall_clock
        self.gtids_now = gtids_now  # each server's binary log GTIDs, read at each start
        self.ledger = Ledger(started_at=wall_clock())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> Writer:
        # a new run id at each start (nanoseconds: two runs never share one), so an earlier run's
        # rows never collide with this one's sequence numbers nor count as this one's
        before = self.gtids_now()
        self.ledger = Ledger(started_at=self.wall_clock(), run=time.time_ns(), gtids_before=before)
        self._thread = threading.Thread(target=self._run, name="mxha-lab-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Ledger:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout * 3 + 5)
        with self._lock:
            self.ledger.stopped_at = self.wall_clock()
        return self.ledger

    def snapshot(self) -> tuple[int, int, int]:
        """(attempts, acknowledged, failed) so far, for a scenario's timeline."""
        with self._lock:
            return self.ledger.attempts, len(self.ledger.acknowledged), len(self.ledger.failed)

    def _run(self) -> None:
        import pymysql

        conn: Any = None
        seq = 0
        due = time.monotonic()
        while not self._stop.is_set():
            seq += 1
            try:
                if conn is None:
                    conn = connect_to(self.host, self.port, self.user, self.password, self.timeout)
                with conn.cursor() as cur:
                    cur.execute(database.INSERT_WRITE, (self.ledger.run, seq, self.wall_clock()))
                with self._lock:
                    self.ledger.attempts += 1
                    self.ledger.acknowledged.append((seq, self.wall_clock()))
            except (pymysql.MySQLError, OSError) as exc:
                with self._lock:
                    self.ledger.attempts += 1
                    self.ledger.failed.append(FailedWrite(seq, self.wall_clock(), _error_kind(exc)))
                if conn is not None:
                    with contextlib.suppress(pymysql.MySQLError, OSError):
                        conn.close()
                conn = None
            # Keep the cadence without a burst after a slow write: the next tick is due one interval
            # after the previous due time, or now when that has passed.
            due = max(due + self.interval, time.monotonic())
            self._stop.wait(max(0.0, due - time.monotonic()))
        if conn is not None:
            with contextlib.suppress(pymysql.MySQLError, OSError):
                conn.close()


def _error_kind(exc: BaseException) -> str:
    """The error as a client would log it: MySQL's code and message, first line only."""
    args: tuple[Any, ...] = tuple(exc.args)
    if len(args) >= 2 and isinstance(args[0], int):
        return f"{args[0]} {str(args[1]).splitlines()[0][:120]}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"


def binlog_gtids(conn: Any) -> set[str]:
    """Every GTID in a server's binary logs (its own and, with log_slave_updates, replicated)."""
    gtids: set[str] = set()
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        files = [row[0] for row in cur.fetchall()]
        for name in files:
            cur.execute("SHOW BINLOG EVENTS IN %s", (name,))
            for row in cur.fetchall():
                # (Log_name, Pos, Event_type, Server_id, End_log_pos, Info)
                if row[2] == "Gtid":
                    gtid = parse_gtid(row[5])
                    if gtid is not None:
                        gtids.add("-".join(str(n) for n in gtid))
    return gtids


def rows_on(conn: Any, run: int) -> set[int]:
    """The sequence numbers of one writer's run on a server."""
    with conn.cursor() as cur:
        cur.execute(database.SELECT_WRITES, (run,))
        return {int(row[0]) for row in cur.fetchall()}


def read_servers(
    servers: Sequence[database.ServerAddress],
    user: str,
    password: str,
    timeout: float,
    *,
    rows_of: str | None = None,
    run: int = 0,
) -> tuple[dict[str, set[str]], dict[str, str], set[int] | None]:
    """Each server's binary log GTIDs, why any server could not be read, and on the server named
    ``rows_of`` the sequence numbers of writer run ``run`` (None: not read), one connection each."""
    import pymysql

    binlogs: dict[str, set[str]] = {}
    unread: dict[str, str] = {}
    rows: set[int] | None = None
    for server in servers:
        try:
            with connect_to(server.host, server.port, user, password, timeout) as conn:
                binlogs[server.name] = binlog_gtids(conn)
                if server.name == rows_of:
                    rows = rows_on(conn, run)
        except (pymysql.MySQLError, OSError) as exc:
            unread[server.name] = _error_kind(exc)
    return binlogs, unread, rows


def writer_report(
    ledger: Ledger,
    servers: Sequence[database.ServerAddress],
    final_primary: str,
    user: str,
    password: str,
    *,
    timeout: float = 5.0,
) -> WriterReport:
    """Compare the ledger with the servers (read with ``user``, the monitor account in the lab).
    A server that cannot be read is named in ``unread``; without the final primary's rows and
    binary log there is nothing to compare with, and every figure that needs them says so."""
    stopped = ledger.stopped_at if ledger.stopped_at is not None else time.time()
    gap, gap_from, gap_to = longest_gap([t for _, t in ledger.acknowledged], ledger.started_at, stopped)
    binlogs, unread, primary_rows = read_servers(
        servers, user, password, timeout, rows_of=final_primary, run=ledger.run
    )
    lost: list[int] | None = None
    errant: dict[str, list[str]] | None = None
    errant_before: dict[str, int] = {}
    if primary_rows is not None and final_primary in binlogs:
        lost = lost_writes(ledger.acknowledged_seqs, primary_rows)
        others = {name: gtids for name, gtids in binlogs.items() if name != final_primary}
        errant = {
            name: errant_gtids(gtids - ledger.gtids_before.get(name, set()), binlogs[final_primary])
            for name, gtids in others.items()
        }
        errant_before = {
            name: len(errant_gtids(gtids & ledger.gtids_before.get(name, set()), binlogs[final_primary]))
            for name, gtids in others.items()
        }
    elif final_primary not in unread:
        unread[final_primary] = "not among the servers given"
    return WriterReport(
        attempts=ledger.attempts,
        acknowledged=len(ledger.acknowledged),
        failed=len(ledger.failed),
        longest_gap_seconds=round(gap, 3),
        longest_gap_from=gap_from,
        longest_gap_to=gap_to,
        final_primary=final_primary,
        lost=lost,
        errant=errant,
        unread=unread,
        errant_before=errant_before,
    )

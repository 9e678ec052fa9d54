"""A standalone emulator's monitor over real servers (the lab's MaxScale stand-in): every monitor
interval a TCP connect to each server's address and port, within the monitor's connect timeout; a
server it cannot connect to is ``Down`` for this MaxScale (``EmulatorState.unreachable``) until a
connect succeeds again.

That is what a real MaxScale's monitor sees of a network cut: its connection fails, the server is
shown ``Down`` from that tick on, and ``monitor_diagnostics.master`` keeps naming the primary it
lost (recorded: ``shared/fixtures/maxscale-24.02.4-pair``, step 6). Only reachability is probed:
the servers' roles stay as configured, and this monitor never fails a server over (the stand-in
cannot promote a real server; a real MaxScale with ``auto_failover`` can).

Each server has its own thread, so a server whose packets are dropped (a connect that waits out
the whole timeout) does not delay the others' ticks.
"""

from __future__ import annotations

import socket
import threading
import time

from mxha.lab.emulator.model import EmulatorState, log


class ServerProbe:
    def __init__(self, state: EmulatorState, interval: float, timeout: float) -> None:
        self.state = state
        self.interval = interval
        self.timeout = timeout
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def reachable(self, address: str, port: int) -> bool:
        try:
            with socket.create_connection((address, port), timeout=self.timeout):
                return True
        except OSError:
            return False

    def tick(self, name: str) -> None:
        server = self.state.servers[name]
        ok = self.reachable(server.address, server.port)
        with self.state.lock:
            was_down = name in self.state.unreachable
            if ok:
                self.state.unreachable.discard(name)
            else:
                self.state.unreachable.add(name)
        if was_down == ok:  # a change: say so once, as MaxScale logs it
            log.info("server %s %s", name, "is reachable again" if ok else "cannot be reached: Down")

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.tick(name)  # a connect that waits out its timeout takes from the interval, as MaxScale's tick
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def start(self) -> ServerProbe:
        for name in list(self.state.servers):  # each ticks at once, then every interval
            thread = threading.Thread(target=self._loop, args=(name,), name=f"probe-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()

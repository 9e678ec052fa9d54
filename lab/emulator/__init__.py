"""A MaxScale 24.02 REST API emulator.

MaxScale cannot be installed here, so tests and the lab talk to this instead. It follows
the documents, status codes and error texts recorded from a real MaxScale 24.02.4
(``shared/fixtures/maxscale-24.02.4``) closely enough that the real ``maxctrl`` works
against it unchanged.

Besides ``/v1`` it serves a control API under ``/__emulator__/`` (no auth) so tests can
change server states, lock mode and inject faults at runtime without a restart:

- ``GET  /__emulator__/state``      internal state and request counters
- ``GET  /__emulator__/requests``   the last requests received (method, path, status)
- ``GET  /__emulator__/modes``      every change of ``passive``: time, value, via rest|control
- ``POST /__emulator__/fault``      ``{"mode": "none|slow|hang|error|reject_auth|refuse|drip",
                                       "delay": 2.0, "duration": 5.0}``
- ``POST /__emulator__/servers``    ``{"server1": "Down", "server2": "Master, Running"}``
- ``POST /__emulator__/maxscale``   ``{"passive": true}`` (as if changed behind our back,
                                       persisted like a runtime change)
- ``POST /__emulator__/monitor``    ``{"cooperative_monitoring_locks": "majority_of_all"}``

Pair mode (``--backend FILE --member NAME``, ``mxha.lab.emulator.backend``) adds:

- ``POST /__emulator__/reach``      ``{"unreachable": ["server1"]}`` this MaxScale cannot reach them
- ``GET  /__emulator__/backend``    the shared servers, roles, lock holders and members
- ``POST /__emulator__/backend``    ``{"servers": {"server1": {"up": false}}}`` (a database outage)

SIGUSR1 stops listening (connections are refused), SIGUSR2 listens again.
"""

from mxha.lab.emulator.model import (
    FAULT_MODES,
    LOCK_MODES,
    EmulatedServer,
    EmulatorConfig,
    EmulatorState,
    Fault,
    parse_server_spec,
)
from mxha.lab.emulator.server import Emulator, EmulatorHandler, EmulatorHTTPServer

__all__ = [
    "FAULT_MODES",
    "LOCK_MODES",
    "EmulatedServer",
    "Emulator",
    "EmulatorConfig",
    "EmulatorHTTPServer",
    "EmulatorHandler",
    "EmulatorState",
    "Fault",
    "parse_server_spec",
]

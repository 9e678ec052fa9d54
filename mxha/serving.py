"""Serving a WSGI app with waitress until SIGTERM/SIGINT, for the exporter and the remediator.

The signal handler only sets an event: closing the server from inside a handler runs at an
arbitrary point of the main thread (inside waitress's loop, or holding a lock the close needs)
and could hang the shutdown. Here waitress runs in its own thread and the main thread closes it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mxha")


def listen_address_from(flag_value: str | None, configured: str, key: str, default_port: int) -> tuple[str, int, str]:
    """(host, port, how the address was given) from ``--web.listen-address`` if given, else the
    config's ``key``; a bad one is a ``FlagError`` or ``ConfigError`` naming which."""
    from mxha.config import ConfigError, FlagError, parse_listen_address

    value, named = (flag_value, "--web.listen-address") if flag_value is not None else (configured, key)
    try:
        host, port = parse_listen_address(value, default_port)
    except ValueError as exc:
        raise (FlagError if flag_value is not None else ConfigError)(f"{named}: {exc}") from None
    return host, port, f"{named} {value}"


def listening_server(
    app: Any, host: str, port: int, named: str, on_error: Callable[[], object] | None = None, **options: Any
) -> Any:
    """waitress's server, bound and listening; an address it cannot listen on (in use, not on this
    host, a privileged port) is one line naming the flag or key (``named``), not a traceback.
    ``on_error`` runs first then (to stop what the app started)."""
    from waitress import create_server

    from mxha.config import ConfigError, FlagError

    try:
        return create_server(app, host=host, port=port, **options)
    except OSError as exc:  # bind() and getaddrinfo() failures: the address, not the program
        if on_error is not None:
            on_error()
        error = FlagError if named.startswith("--") else ConfigError
        raise error(f"{named}: cannot listen: {exc.strerror or exc}") from None


def serve_until_signalled(server: Any, stop: threading.Event, grace: float = 5.0) -> int:
    """Run ``server`` (waitress) until a signal sets ``stop``; then close it and return 0."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except OSError as exc:  # the listening socket closed under the loop: the normal way out
            if not stop.is_set():
                failure.append(exc)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises
            failure.append(exc)
        finally:
            stop.set()

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = threading.Thread(target=run, name="waitress", daemon=True)
    worker.start()
    stop.wait()
    if worker.is_alive():
        # close the listener AND the idle keep-alive connections from inside waitress's own loop
        # (a thunk pulled through its trigger), so the loop ends now, not after channel_timeout
        from waitress import wasyncore

        channels = getattr(server, "_map", None) or getattr(server, "map", None)
        server.trigger.pull_trigger(lambda: wasyncore.close_all(channels))
    worker.join(grace)
    if failure:
        raise failure[0]
    return 0

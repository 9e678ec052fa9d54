"""The exporter's HTTP face: ``/metrics``, ``/state``, ``/check``, ``/healthz`` as a small WSGI
app served by waitress (no framework for four routes); ``/metrics`` is prometheus_client's own app."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import make_wsgi_app

from mxha.config import NodeConfig, load_node_config
from mxha.exporter.collector import node_registry
from mxha.exporter.node import NodeReader, make_keepalived_source
from mxha.serving import listen_address_from, listening_server, serve_until_signalled

log = logging.getLogger("mxha.exporter")

MAX_BODY_BYTES = 4096

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _json(start: StartResponse, status: str, doc: Any) -> list[bytes]:
    body = json.dumps(doc).encode()
    start(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
    )
    return [body]


class ExporterApp:
    def __init__(self, reader: NodeReader) -> None:
        self.reader = reader
        self.registry = node_registry(reader.snapshot)
        # prometheus_client's own app: content negotiation (text, OpenMetrics), gzip, name[] filters
        # (a filter that names none of the node's families reads nothing), its answer to other methods
        self.metrics = make_wsgi_app(self.registry)

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
            return self.metrics(environ, start)  # type: ignore[no-any-return]
        if method not in ("GET", "HEAD"):
            return _json(start, "405 Method Not Allowed", {"error": "only GET"})
        if path == "/state":
            return _json(start, "200 OK", self.reader.snapshot().to_state().to_json())
        if path == "/check":
            return self.check(start)
        if path == "/healthz":
            if self.reader.check_loop_alive():
                return _json(start, "200 OK", {"status": "ok"})
            return _json(start, "503 Service Unavailable", {"status": "health-check loop is stuck"})
        if path == "/":
            body = (
                b"<html><body><h1>mxha exporter</h1><p><a href='/metrics'>/metrics</a> "
                b"<a href='/state'>/state</a> <a href='/check'>/check</a></p></body></html>"
            )
            start("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
            return [body]
        return _json(start, "404 Not Found", {"error": f"no route {path}"})

    def check(self, start: StartResponse) -> list[bytes]:
        """The cached health check; older than ``check.max_age`` counts as failed (fail safe)."""
        result = self.reader.check_result
        if result is None:
            return _json(
                start,
                "503 Service Unavailable",
                {"success": False, "reason": "no check has run yet", "age_seconds": None},
            )
        ok, reason, age = result.judged_at(time.time(), self.reader.cfg.check.max_age)
        return _json(
            start,
            "200 OK" if ok else "503 Service Unavailable",
            {
                "success": ok,
                "reason": reason,
                "age_seconds": round(age, 3),
                "checked_at": result.checked_at,
                "duration_seconds": result.duration_seconds,
            },
        )


def build(cfg: NodeConfig) -> tuple[ExporterApp, NodeReader]:
    source, dump = make_keepalived_source(cfg)
    reader = NodeReader(cfg, source, dump=dump)
    return ExporterApp(reader), reader


def main(config_file: str, listen_address: str | None) -> int:
    cfg = load_node_config(config_file)
    host, port, named = listen_address_from(listen_address, cfg.listen_address, "exporter.listen_address", 9843)
    app, reader = build(cfg)
    stop = threading.Event()
    check_track_file_folder(cfg)
    # bound before the first check: an address it cannot have is said at once, not after a check
    # (requests wait in the backlog until the first result is there)
    server = listening_server(
        app,
        host,
        port,
        named,
        threads=4,
        channel_timeout=10,
        connection_limit=200,
        max_request_body_size=MAX_BODY_BYTES,  # it takes no bodies: refuse them before buffering
        ident="mxha-exporter",
        clear_untrusted_proxy_headers=True,
    )
    reader.run_check_once()
    threading.Thread(target=reader.check_loop, args=(stop,), name="health-check", daemon=True).start()
    watcher = start_crash_watch(reader, stop)
    log.info("exporter for node %s on http://%s:%d (keepalived source %s)", cfg.node, host, port, cfg.keepalived.source)
    try:
        return serve_until_signalled(server, stop)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(CRASH_WATCH_STOP_SECONDS)


CRASH_WATCH_STOP_SECONDS = 2.0  # its idle wait wakes every second: it hands the track file back by then


def check_track_file_folder(cfg: NodeConfig) -> None:
    """The exporter writes ``check.track_file``: its folder must exist at start-up. Checked here, not
    when the node config loads: the hooks read the same file and must not fail on the exporter's key."""
    import os

    from mxha.config import ConfigError

    path = cfg.check.track_file
    if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ConfigError(f"check.track_file: the folder of {path} does not exist")


def start_crash_watch(reader: NodeReader, stop: threading.Event) -> threading.Thread | None:
    """The crash watch (``check.track_file``), in its own thread; None when not configured."""
    from mxha.exporter.crashwatch import CrashWatch

    cfg = reader.cfg
    if cfg.check.track_file is None:
        return None

    def healthy_since(t: float) -> bool:
        result = reader.check_result
        return result is not None and result.checked_at > t and result.judged_at(time.time(), cfg.check.max_age)[0]

    watch = CrashWatch(cfg.maxscale.url, cfg.check.track_file, healthy_since)
    thread = threading.Thread(target=watch.run, args=(stop,), name="crash-watch", daemon=True)
    thread.start()
    return thread

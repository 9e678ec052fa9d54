"""The exporter's HTTP face: ``/metrics``, ``/state``, ``/check``, ``/healthz`` as a small WSGI
app served by waitress (no framework: the exporter must stay small and fast)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

from mxha.config import NodeConfig, load_node_config, parse_listen_address
from mxha.exporter.collector import NodeCollector
from mxha.exporter.node import NodeReader, make_keepalived_source
from mxha.serving import serve_until_signalled

log = logging.getLogger("mxha.exporter")

MAX_BODY_BYTES = 4096

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


OPENMETRICS = "application/openmetrics-text"


def fast_openmetrics_accept(accept: str) -> str | None:
    """The Accept header with ``escaping=allow-utf-8`` added to its OpenMetrics entries that ask for
    the default (underscores) escaping; None when there is nothing to change.

    prometheus_client (0.22+) escapes every sample name character by character for ``underscores``
    (about a third of our exposition's CPU); for names that are valid legacy names, as every name
    this exporter produces is, both escapings give the same bytes (tested), so the cheaper one is
    asked for and the Content-Type put back (``openmetrics_content_type``)."""
    parts = accept.split(",")
    changed = False
    for i, part in enumerate(parts):
        tokens = [t.strip() for t in part.split(";")]
        if tokens[0] != OPENMETRICS:
            continue
        escaping = [t for t in tokens if t.startswith("escaping=")]
        if escaping and escaping != ["escaping=underscores"]:
            continue
        parts[i] = ";".join([t for t in tokens if not t.startswith("escaping=")] + ["escaping=allow-utf-8"])
        changed = True
    return ",".join(parts) if changed else None


def openmetrics_content_type(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (k, v.replace("escaping=allow-utf-8", "escaping=underscores") if k.lower() == "content-type" else v)
        for k, v in headers
    ]


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
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(reader.snapshot))
        self.metrics_app = make_wsgi_app(self.registry)

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _json(start, "405 Method Not Allowed", {"error": "only GET"})
        if path == "/metrics":
            # prometheus_client's own app: OpenMetrics negotiation, gzip, name[] filtering
            faster = fast_openmetrics_accept(environ.get("HTTP_ACCEPT", ""))
            if faster is None:
                return self.metrics_app(environ, start)  # type: ignore[no-any-return]

            def start_underscores(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
                return start(status, openmetrics_content_type(headers), *exc)

            return self.metrics_app({**environ, "HTTP_ACCEPT": faster}, start_underscores)  # type: ignore[no-any-return]
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
    from waitress import create_server

    cfg = load_node_config(config_file)
    host, port = parse_listen_address(listen_address or cfg.listen_address, 9843)
    app, reader = build(cfg)
    stop = threading.Event()
    reader.run_check_once()
    threading.Thread(target=reader.check_loop, args=(stop,), name="health-check", daemon=True).start()
    server = create_server(
        app,
        host=host,
        port=port,
        threads=4,
        channel_timeout=10,
        connection_limit=200,
        max_request_body_size=MAX_BODY_BYTES,  # it takes no bodies: refuse them before buffering
        ident="mxha-exporter",
        clear_untrusted_proxy_headers=True,
    )
    log.info("exporter for node %s on http://%s:%d (keepalived source %s)", cfg.node, host, port, cfg.keepalived.source)

    return serve_until_signalled(server, stop)

"""The remediator's HTTP API (Flask app factory, served by waitress).

``POST /webhook`` takes Alertmanager's version-4 payloads. Alerts only say "look at this
cluster": the remediator then reads the live state of that cluster's configured nodes and
decides for itself. Labels are never used as addresses, URLs or command arguments.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from base64 import b64decode
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

from mxha.remediator.config import RemediatorConfig, load_remediator_config
from mxha.remediator.engine import Reconciler
from mxha.serving import listen_address_from, listening_server, serve_until_signalled

log = logging.getLogger("mxha.remediator")
api = Blueprint("api", __name__)

MAX_ALERTS = 1000
MAX_LABEL_BYTES = 16 * 1024


class PayloadError(ValueError):
    pass


def _reconciler() -> Reconciler:
    r: Reconciler = current_app.extensions["mxha_reconciler"]
    return r


def _config() -> RemediatorConfig:
    cfg: RemediatorConfig = current_app.extensions["mxha_config"]
    return cfg


def _error(status: int, message: str) -> Response:
    resp = jsonify({"status": "error", "error": message})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="mxha-remediator", Basic realm="mxha-remediator"'
    return resp


def _authorized() -> bool:
    auth = _config().auth
    if not auth.enabled:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and auth.bearer_tokens:
        given = value.strip().encode()
        # compare with every token, whatever matches, so timing says nothing
        matches = [hmac.compare_digest(given, t.encode()) for t in auth.bearer_tokens]
        return any(matches)
    if scheme.lower() == "basic" and auth.basic_user is not None and auth.basic_password is not None:
        try:
            user, _, password = b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), auth.basic_user.encode())
        ok_pass = hmac.compare_digest(password.encode(), auth.basic_password.encode())
        return ok_user and ok_pass
    return False


def validate_payload(doc: Any) -> list[dict[str, Any]]:
    """Check the parts of a version-4 payload the remediator uses; unknown keys are ignored."""
    if not isinstance(doc, dict):
        raise PayloadError("body must be a JSON object")
    if doc.get("version") != "4":
        raise PayloadError(f'unsupported payload version {str(doc.get("version"))[:20]!r}: expected "4"')
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("'alerts' must be a list")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"too many alerts ({len(alerts)} > {MAX_ALERTS})")
    out = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise PayloadError(f"alerts[{i}] must be an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise PayloadError(f"alerts[{i}].status must be 'firing' or 'resolved'")
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise PayloadError(f"alerts[{i}].labels must map strings to strings")
        if sum(len(k) + len(v) for k, v in labels.items()) > MAX_LABEL_BYTES:
            raise PayloadError(f"alerts[{i}].labels too large")
        fingerprint = alert.get("fingerprint", "")
        if not isinstance(fingerprint, str):
            raise PayloadError(f"alerts[{i}].fingerprint must be a string")
        out.append(
            {
                "status": status,
                "alertname": labels.get("alertname", "")[:200],
                "cluster": labels.get("cluster"),
                "fingerprint": fingerprint[:64],
            }
        )
    return out


@api.post("/webhook")
def webhook() -> Response:
    arrived = time.monotonic()
    cfg = _config()
    rec = _reconciler()
    if not _authorized():
        return _error(401, "missing or wrong credentials")
    if request.mimetype != "application/json":
        return _error(415, f"Content-Type must be application/json, not {request.mimetype or 'none'!r}")
    length = request.content_length
    if length is not None and length > cfg.max_body_bytes:
        return _error(413, f"body larger than {cfg.max_body_bytes} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > cfg.max_body_bytes:
        return _error(413, f"body larger than {cfg.max_body_bytes} bytes")
    try:
        import json

        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return _error(400, f"invalid JSON: {str(exc)[:200]}")
    try:
        alerts = validate_payload(doc)
    except PayloadError as exc:
        return _error(400, str(exc))
    deadline = arrived + cfg.request_budget_seconds
    clusters: dict[str, list[dict[str, Any]]] = {}
    ignored = 0
    for alert in alerts:
        name = alert["cluster"]
        if isinstance(name, str) and name in cfg.clusters:
            clusters.setdefault(name, []).append(alert)
            rec.metrics.alerts.labels(alert["status"], "reconciled").inc()
        else:
            ignored += 1
            rec.metrics.alerts.labels(alert["status"], "ignored_unknown_cluster").inc()
    results = {name: rec.reconcile(name, triggers, arrived, deadline).summary() for name, triggers in clusters.items()}
    status = max((r["status"] for r in results.values()), default=200)
    body = {
        "status": "ok" if status == 200 else "retry",
        "clusters": results,
        "ignored_alerts": ignored,
        "dry_run": cfg.dry_run,
    }
    resp = jsonify(body)
    resp.status_code = status
    return resp


@api.get("/status")
def status() -> Response:
    if not _authorized():
        return _error(401, "missing or wrong credentials")
    return jsonify(_reconciler().status().to_json())


@api.get("/guardrails")
def guardrails() -> Response:
    """For peer replicas: this replica's own recent actions and breaker, per cluster, and when it last
    got an answer from each node's MaxScale; ``?observe=CLUSTER`` reads that cluster's nodes first
    (asked before a promotion over a node the asking replica counts down)."""
    if not _authorized():
        return _error(401, "missing or wrong credentials")
    rec = _reconciler()
    cluster = request.args.get("observe")
    if cluster is not None:
        if cluster not in _config().clusters:
            return _error(400, "observe: not a configured cluster")
        rec.observe(cluster, time.monotonic() + _config().policy.state_timeout)
    return jsonify(rec.guardrails().to_json())


@api.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(_reconciler().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@api.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


def create_app(cfg: RemediatorConfig, reconciler: Reconciler | None = None) -> Flask:
    app = Flask("mxha.remediator")
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes
    app.extensions["mxha_config"] = cfg
    rec = reconciler or Reconciler(cfg)
    app.extensions["mxha_reconciler"] = rec
    app.register_blueprint(api)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.after_request
    def count(resp: Response) -> Response:
        if request.path == "/webhook":
            rec.metrics.webhooks.labels(str(resp.status_code)).inc()
        return resp

    return app


def main(config_file: str, listen_address: str | None, dry_run: bool) -> int:
    from dataclasses import replace

    cfg = load_remediator_config(config_file)
    if dry_run:
        cfg = replace(cfg, dry_run=True)
    host, port, named = listen_address_from(listen_address, cfg.listen_address, "listen_address", 9844)
    app = create_app(cfg)
    server = listening_server(
        app,
        host,
        port,
        named,
        on_error=app.extensions["mxha_reconciler"].close,  # its lock prober may have started
        threads=cfg.threads,
        channel_timeout=30,
        connection_limit=500,
        # waitress buffers a body (to disk past a point) BEFORE the app can say 401: cap it at
        # the configured limit so the cap holds before auth; its own 413 is plain text
        max_request_body_size=cfg.max_body_bytes,
        ident="mxha-remediator",
        clear_untrusted_proxy_headers=True,
    )
    log.info(
        "remediator on http://%s:%d for clusters %s%s",
        host,
        port,
        ", ".join(cfg.clusters),
        " (dry run)" if cfg.dry_run else "",
    )
    stop = threading.Event()
    try:
        return serve_until_signalled(server, stop)
    finally:
        app.extensions["mxha_reconciler"].close()

"""The shared MaxScale client against the emulator over real HTTP(S): results, errors, timeouts."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import control, requires_program

from mxha.lab.emulator import Emulator
from mxha.maxscale import (
    MaxScaleClient,
    MaxScaleError,
    error_details,
    monitor_lock_mode,
    monitor_primary,
    server_is_running,
)


def client_for(emulator: Emulator, **kw: Any) -> MaxScaleClient:
    kw.setdefault("connect_timeout", 0.5)
    kw.setdefault("read_timeout", 0.5)
    return MaxScaleClient(emulator.url, "admin", "mariadb", **kw)


def test_reads_maxscale_servers_monitors(emulator: Emulator) -> None:
    c = client_for(emulator)
    c.ping()
    attrs = c.get_maxscale()
    assert attrs["parameters"]["passive"] is False and attrs["version"] == "24.02.4"
    servers = c.get_servers()
    assert [s["id"] for s in servers] == ["server1", "server2"]
    assert all(server_is_running(s) for s in servers)
    monitors = c.get_monitors()
    assert monitors[0]["id"] == "MariaDB-Monitor"
    assert monitor_lock_mode(monitors[0]) == "none" and monitor_primary(monitors[0]) is None


def test_set_passive_round_trip(emulator: Emulator) -> None:
    c = client_for(emulator)
    c.set_passive(True)
    assert c.get_maxscale()["parameters"]["passive"] is True
    c.set_passive(False)
    assert c.get_maxscale()["parameters"]["passive"] is False
    patches = [r for r in control(emulator, "requests")["requests"] if r["method"] == "PATCH"]
    assert [r["status"] for r in patches] == [204, 204]


def test_release_locks_three_outcomes(make_emulator: Any) -> None:
    off = client_for(make_emulator())
    assert off.release_locks("MariaDB-Monitor") == "locks-off"
    on = client_for(make_emulator(lock_mode="majority_of_all"))
    assert monitor_primary(on.get_monitors()[0]) is True
    assert on.release_locks("MariaDB-Monitor") == "released"
    assert on.release_locks("MariaDB-Monitor") == "none-held"
    assert monitor_primary(on.get_monitors()[0]) is False


def test_unknown_monitor_raises_with_details(emulator: Emulator) -> None:
    with pytest.raises(MaxScaleError) as info:
        client_for(emulator).release_locks("NoSuchMon")
    assert info.value.status == 400
    assert info.value.details == ("Argument 1, monitor not found: NoSuchMon",)


def test_passive_refusal_details_are_read_once_from_errors_and_meta(make_emulator: Any) -> None:
    c = client_for(make_emulator(passive=True))
    with pytest.raises(MaxScaleError) as info:
        c.call_module_command("mariadbmon", "switchover", ["MariaDB-Monitor", "server2"])
    assert info.value.details == ("Switchover requested but not performed, as MaxScale is in passive mode.",)


def test_error_details_from_meta_only() -> None:
    doc = {"links": {}, "meta": {"errors": [{"detail": "Server locks are not in use, cannot release them."}]}}
    assert error_details(doc) == ("Server locks are not in use, cannot release them.",)
    assert error_details("nonsense") == ()
    assert error_details({"errors": [{"detail": 5}, "x", {"detail": "a"}]}) == ("a",)


def test_wrong_password_is_an_auth_error(emulator: Emulator) -> None:
    c = MaxScaleClient(emulator.url, "admin", "nope", read_timeout=1)
    with pytest.raises(MaxScaleError) as info:
        c.get_maxscale()
    assert (info.value.status, info.value.kind, info.value.details) == (401, "auth", ("Access denied",))
    assert "nope" not in repr(c) and "nope" not in str(info.value)


def test_http_500(emulator: Emulator) -> None:
    control(emulator, "fault", {"mode": "error"})
    with pytest.raises(MaxScaleError) as info:
        client_for(emulator).get_maxscale()
    assert info.value.status == 500 and info.value.kind == "http"


def test_hang_times_out_within_read_timeout(emulator: Emulator) -> None:
    control(emulator, "fault", {"mode": "hang"})
    t0 = time.monotonic()
    with pytest.raises(MaxScaleError) as info:
        client_for(emulator, read_timeout=0.3).get_maxscale()
    assert info.value.kind == "timeout"
    assert time.monotonic() - t0 < 2.0


def test_deadline_caps_a_slow_answer(emulator: Emulator) -> None:
    control(emulator, "fault", {"mode": "slow", "delay": 2.0})
    t0 = time.monotonic()
    with pytest.raises(MaxScaleError) as info:
        client_for(emulator, read_timeout=5).get_maxscale(deadline=time.monotonic() + 0.3)
    assert info.value.kind == "timeout"
    assert time.monotonic() - t0 < 1.5


def test_a_dripping_answer_ends_by_the_deadline(emulator: Emulator) -> None:
    """Every byte comes well within the read timeout: only the call's deadline can end it. Bytes came,
    so the peer answered (never "no answer", which may count toward down)."""
    control(emulator, "fault", {"mode": "drip", "delay": 0.05})
    t0 = time.monotonic()
    with pytest.raises(MaxScaleError) as info:
        client_for(emulator, read_timeout=1).get_maxscale(deadline=time.monotonic() + 0.5)
    assert info.value.kind == "timeout" and info.value.error_kind == "document", info.value
    assert time.monotonic() - t0 < 2.0  # the whole document drips for many seconds


def test_a_write_says_whether_it_may_have_been_applied(emulator: Emulator) -> None:
    """A PATCH sent and never answered may land later (sent, no status); one refused, rejected or
    never sent cannot: the remediator watches only the former."""
    from mxha.remediator.drivers import DriverError, RestDriver

    control(emulator, "fault", {"mode": "slow", "delay": 1.0, "methods": ["PATCH"]})
    driver = RestDriver(client_for(emulator, read_timeout=5))
    with pytest.raises(DriverError) as info:
        driver.set_passive(True, deadline=time.monotonic() + 0.3)
    assert info.value.may_land, info.value
    with pytest.raises(DriverError) as info:
        driver.set_passive(True, deadline=time.monotonic() - 0.1)  # the budget was spent: never sent
    assert not info.value.may_land and "before sending" in str(info.value)
    control(emulator, "fault", {"mode": "error", "methods": ["PATCH"]})
    with pytest.raises(DriverError) as info:
        driver.set_passive(True, deadline=time.monotonic() + 1)  # MaxScale said no
    assert not info.value.may_land
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DriverError) as info:
        RestDriver(MaxScaleClient(f"http://127.0.0.1:{port}")).set_passive(True, deadline=time.monotonic() + 1)
    assert not info.value.may_land and "cannot connect" in str(info.value)


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MaxScaleError) as info:
        MaxScaleClient(f"http://127.0.0.1:{port}").get_maxscale()
    assert info.value.kind == "connect" and info.value.status is None


def test_connect_timeout_to_a_blackhole() -> None:
    # a listening socket with a full backlog never completes new handshakes in time
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    fillers = []
    try:
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(srv.getsockname())
            fillers.append(f)
        t0 = time.monotonic()
        with pytest.raises(MaxScaleError) as info:
            MaxScaleClient(
                f"http://127.0.0.1:{srv.getsockname()[1]}", connect_timeout=0.3, read_timeout=0.3
            ).get_maxscale()
        assert info.value.kind in ("timeout", "connect")
        assert time.monotonic() - t0 < 2.0
    finally:
        for f in fillers:
            f.close()
        srv.close()


def test_non_json_answer_is_a_protocol_error() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    import threading

    def answer() -> None:
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n<html")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(MaxScaleError) as info:
        MaxScaleClient(f"http://127.0.0.1:{srv.getsockname()[1]}").get_maxscale()
    srv.close()
    assert info.value.kind == "document" and info.value.error_kind == "document"


def test_bad_url_rejected() -> None:
    with pytest.raises(ValueError):
        MaxScaleClient("ftp://x")


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@requires_program("openssl")
def test_https_with_ca_file_insecure_flag_and_failure(make_emulator: Any, tls_pair: tuple[str, str]) -> None:
    cert, key = tls_pair
    emulator = make_emulator(tls_cert=cert, tls_key=key)
    assert emulator.url.startswith("https://")
    assert MaxScaleClient(emulator.url, ca_file=cert).get_maxscale()["version"] == "24.02.4"
    assert MaxScaleClient(emulator.url, insecure=True).get_maxscale()["version"] == "24.02.4"
    with pytest.raises(MaxScaleError) as info:
        MaxScaleClient(emulator.url).get_maxscale()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


@requires_program("openssl")
def test_http_client_without_ssl_keeps_http_and_https_working(
    emulator: Emulator, make_emulator: Any, tls_pair: tuple[str, str]
) -> None:
    """mxha check's start-up: http.client loaded without ssl; plain HTTP then loads no ssl, and an
    https MaxScale is still read (our own TLS wrapping, not http.client's HTTPSConnection)."""
    cert, key = tls_pair
    tls = make_emulator(tls_cert=cert, tls_key=key)
    script = (
        "import sys\n"
        "from mxha.transport import load_http_client_without_ssl\n"
        "from mxha.maxscale import MaxScaleClient\n"
        "load_http_client_without_ssl()\n"
        "plain = MaxScaleClient(sys.argv[1], keep_alive=True).get_servers()\n"
        "print(len(plain), 'ssl' in sys.modules)\n"
        "print(MaxScaleClient(sys.argv[2], ca_file=sys.argv[3]).get_maxscale()['version'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, emulator.url, tls.url, cert], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["2 False", "24.02.4"]


def test_path_prefix_in_url(emulator: Emulator, tmp_path: Path) -> None:
    assert MaxScaleClient(emulator.url + "/").get_maxscale()["version"]


def test_keep_alive_reuses_connections_and_survives_a_server_closing_them(emulator: Emulator) -> None:
    c = client_for(emulator, keep_alive=True)
    for _ in range(5):
        c.get_maxscale()
    assert len(c._idle) == 1  # one connection, reused
    # the server goes away and comes back: the idle connection is dead, the next call reconnects
    emulator.stop_listening()
    emulator.start()
    for conn in c._idle:
        assert conn.sock is not None
        conn.sock.shutdown(socket.SHUT_RDWR)  # as a server closing an idle keep-alive connection does
    assert c.get_maxscale()["version"] == "24.02.4"
    c.set_passive(True)
    assert c.get_maxscale()["parameters"]["passive"] is True


def test_keep_alive_drops_a_connection_after_a_timeout(emulator: Emulator) -> None:
    c = client_for(emulator, keep_alive=True, read_timeout=0.3)
    c.get_maxscale()
    control(emulator, "fault", {"mode": "hang"})
    with pytest.raises(MaxScaleError) as info:
        c.get_maxscale()
    assert info.value.kind == "timeout" and c._idle == []
    control(emulator, "fault", {"mode": "none"})
    assert c.get_maxscale()["version"] == "24.02.4"


def test_one_reading_of_a_maxscale_lock_mode_and_lock_monitors() -> None:
    """Lock mode: the first mariadbmon monitor with locks BY NAME (not list order); release-locks
    applies to mariadbmon monitors only."""
    from mxha.maxscale import status_from_documents

    def monitor(name: str, module: str, mode: str | None) -> dict[str, Any]:
        params = {} if mode is None else {"cooperative_monitoring_locks": mode}
        return {"id": name, "attributes": {"module": module, "parameters": params, "monitor_diagnostics": {}}}

    status = status_from_documents(
        {"parameters": {"passive": True}, "config_sync": None, "version": "24.02.4"},
        [
            monitor("z-mon", "mariadbmon", "majority_of_running"),
            monitor("galera", "galeramon", "majority_of_all"),
            monitor("a-mon", "mariadbmon", "majority_of_all"),
            monitor("plain", "mariadbmon", "none"),
        ],
        [{"id": "server1", "attributes": {"state": "Master, Running"}}, {"id": "s2", "attributes": {"state": "Down"}}],
    )
    assert status.lock_mode == "majority_of_all" and status.monitors_with_locks == ("z-mon", "a-mon")
    assert status.passive is True and status.config_sync is False
    assert [(s.name, s.running) for s in status.servers] == [("server1", True), ("s2", False)]


def test_read_status_reads_side_by_side_under_one_deadline(emulator: Emulator) -> None:
    from mxha.maxscale import read_status

    control(emulator, "fault", {"mode": "slow", "delay": 0.3})
    status = read_status(client_for(emulator, read_timeout=2), time.monotonic() + 2, servers=True)
    assert status.passive is False and len(status.servers) == 2 and status.lock_mode == "none"
    # side by side: each document's request was in the emulator before any of them was answered
    # (one after the other, each would start after the previous one's 0.3 s answer ended)
    served = [r for r in control(emulator, "requests")["requests"] if r["path"].startswith("/v1/")]
    assert sorted(r["path"] for r in served) == ["/v1/maxscale", "/v1/monitors", "/v1/servers"], served
    starts, ends = [r["time"] - r["duration"] for r in served], [r["time"] for r in served]
    assert max(starts) < min(ends), served
    control(emulator, "fault", {"mode": "hang"})
    t0 = time.monotonic()
    with pytest.raises(MaxScaleError) as info:
        read_status(client_for(emulator, read_timeout=5), time.monotonic() + 0.4, servers=True)
    assert info.value.error_kind == "no_answer" and time.monotonic() - t0 < 1.0


def test_a_body_that_arrives_after_the_headers_of_a_closing_answer_is_read() -> None:
    """Found in the lab: http.client closes the connection right after the headers of a
    `Connection: close` answer and reads the body later; the socket must stay open for that
    reader (it gave "Bad file descriptor" whenever the body came in a later packet)."""
    import threading

    from mxha.transport import JsonHttpClient

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    body = b'{"data": {"id": "x"}}'

    def answer() -> None:
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        time.sleep(0.2)  # the body in a later packet, as waitress often sends it
        conn.sendall(body)
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        doc = JsonHttpClient(f"http://127.0.0.1:{srv.getsockname()[1]}/state").get_json(deadline=time.monotonic() + 2)
        assert doc == {"data": {"id": "x"}}
    finally:
        srv.close()


class CannedPeer:
    """A peer on loopback that answers each request with the next of ``answers`` (raw bytes, as sent;
    one saying ``Connection: close`` closes after it); ``None`` closes the connection instead.
    Counts the connections it accepted."""

    def __init__(self, answers: list[bytes | None]) -> None:
        import threading

        self.answers = list(answers)
        self.connections = 0
        self.requests: list[bytes] = []
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.url = f"http://127.0.0.1:{self.srv.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.connections += 1
            buf = b""
            with conn:
                while self.answers:
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = [
                        int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")
                    ]
                    while length and len(buf) < length[0]:
                        buf += conn.recv(65536)
                    self.requests.append(head)
                    buf = buf[length[0] :] if length else buf
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    if b"connection: close" in answer.lower():
                        break

    def close(self) -> None:
        self.srv.close()


def test_the_wire_reads_chunked_interim_and_read_to_close_answers() -> None:
    from mxha.transport import JsonHttpClient

    peer = CannedPeer(
        [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5;ext=1\r\n{"a":\r\n3\r\n 1}\r\n0\r\nX-Trailer: yes\r\n\r\n',
            b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"b": 2}',
            b'HTTP/1.0 200 OK\r\n\r\n{"c": 3}',  # no length: the body ends when the peer closes
        ]
    )
    try:
        client = JsonHttpClient(peer.url, keep_alive=True)
        deadline = time.monotonic() + 3
        assert client.get_json("/x", deadline) == {"a": 1}
        assert client.get_json("/x", deadline) == {"b": 2}
        assert client.get_json("/x", deadline) == {"c": 3}
        assert peer.connections == 1  # kept alive across the first two; the third closes it
        assert client._idle == []
        first = peer.requests[0].decode()
        assert first.startswith("GET /x HTTP/1.1\r\n") and f"Host: {peer.url[7:]}" in first
    finally:
        peer.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"SPDY/9 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    ],
)
def test_a_peer_that_answers_with_broken_http_answered_and_is_unknown(answer: bytes) -> None:
    """Bytes came back, so the peer is alive: never "no answer" (which may count toward down)."""
    from mxha.transport import JsonHttpClient

    peer = CannedPeer([answer])
    try:
        with pytest.raises(MaxScaleError) as info:
            MaxScaleClient(peer.url).get_maxscale(deadline=time.monotonic() + 2)
        assert info.value.kind == "document" and info.value.answered and info.value.error_kind == "document"
        assert JsonHttpClient  # the same wire serves every client
    finally:
        peer.close()


def test_a_peer_that_closes_mid_body_answered_and_one_that_closes_at_once_did_not() -> None:
    peer = CannedPeer([b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{"a"', None])
    try:
        with pytest.raises(MaxScaleError) as info:
            MaxScaleClient(peer.url).get_maxscale(deadline=time.monotonic() + 2)
        assert info.value.kind == "closed" and info.value.error_kind == "document", info.value
        with pytest.raises(MaxScaleError) as info:
            MaxScaleClient(peer.url).get_maxscale(deadline=time.monotonic() + 2)
        assert info.value.kind == "closed" and info.value.error_kind == "no_answer" and info.value.sent
    finally:
        peer.close()


PADDED = b"{}".ljust(2000)  # a JSON document of 2000 bytes


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + PADDED,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + PADDED + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + PADDED,  # to the close
    ],
    ids=["content-length", "chunked", "to-close"],
)
def test_an_answer_above_the_body_cap_is_refused(answer: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """However the body is framed, no more than the cap is read (the peer answered: "document")."""
    from mxha import transport

    monkeypatch.setattr(transport, "MAX_BODY_BYTES", 1000)
    peer = CannedPeer([answer])
    try:
        with pytest.raises(MaxScaleError) as info:
            MaxScaleClient(peer.url, keep_alive=True).get_maxscale(deadline=time.monotonic() + 2)
        assert info.value.error_kind == "document" and "1000" in str(info.value), info.value
    finally:
        peer.close()
    monkeypatch.setattr(transport, "MAX_BODY_BYTES", 2000)  # at the cap: read
    peer = CannedPeer([answer])
    try:
        with pytest.raises(MaxScaleError) as info:
            MaxScaleClient(peer.url).get_maxscale(deadline=time.monotonic() + 2)
        assert "answer has no 'data'" in str(info.value)  # read whole: a JSON document, not MaxScale's
    finally:
        peer.close()


class RoutedPeer:
    """A keep-alive HTTP/1.1 peer on loopback, a thread per connection, answering by path from
    ``routes`` (path -> (status, document)); with ``barrier`` set, each request is answered only once
    that many requests are waiting at once (a client that waits for one answer before sending the
    next request never gets one)."""

    def __init__(self, routes: dict[str, tuple[int, Any]], barrier: int = 0) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        peer = self
        self.routes = routes
        self.barrier = threading.Barrier(barrier, timeout=2) if barrier else None
        self.connections = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                peer.connections += 1

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if peer.barrier is not None:
                    peer.barrier.wait()
                status, doc = peer.routes[self.path]
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def maxscale_routes(passive: bool) -> dict[str, tuple[int, Any]]:
    return {
        "/v1/maxscale": (200, {"data": {"attributes": {"parameters": {"passive": passive}, "version": "24.02.4"}}}),
        "/v1/monitors": (200, {"data": [{"id": "MariaDB-Monitor", "attributes": {"module": "mariadbmon"}}]}),
        "/v1/servers": (200, {"data": [{"id": "server1", "attributes": {"state": "Master, Running"}}]}),
    }


def test_read_status_sends_every_request_before_reading_any_answer() -> None:
    """The peer answers only when all three requests are in: a client reading one document after
    the other would wait at the first; side by side (in the caller's thread) it gets all three."""
    import threading

    from mxha.maxscale import read_status

    peer = RoutedPeer(maxscale_routes(passive=True), barrier=3)
    try:
        client = MaxScaleClient(peer.url, keep_alive=True, read_timeout=3)

        def ours() -> set[threading.Thread]:  # every thread but the peer's connection handlers
            return {t for t in threading.enumerate() if "process_request" not in t.name}

        threads = ours()
        for _ in range(3):  # and again on the kept-alive connections
            status = read_status(client, time.monotonic() + 3, servers=True)
            assert status.passive is True and [s.name for s in status.servers] == ["server1"]
            assert not ours() - threads  # no thread of its own (others' threads may end meanwhile)
        assert peer.connections == 3  # one connection per document, kept
        with pytest.raises(MaxScaleError) as info:  # one at a time never passes the peer's barrier
            client.get_maxscale(time.monotonic() + 3)
        assert info.value.error_kind == "no_answer"
    finally:
        peer.close()


def test_read_status_raises_maxscales_error_first_and_drops_the_unread_answers() -> None:
    from mxha.maxscale import read_status

    routes = maxscale_routes(passive=False)
    routes["/v1/maxscale"] = (401, {"errors": [{"detail": "Access denied"}]})
    routes["/v1/servers"] = (500, {"errors": [{"detail": "boom"}]})
    peer = RoutedPeer(routes)
    try:
        client = MaxScaleClient(peer.url, keep_alive=True)
        with pytest.raises(MaxScaleError) as info:
            read_status(client, time.monotonic() + 2, servers=True)
        assert info.value.error_kind == "auth" and "Access denied" in str(info.value)
        peer.routes.update(maxscale_routes(passive=True))
        # the answers left unread went with their connections: nothing stale is read as an answer
        for _ in range(3):
            status = read_status(client, time.monotonic() + 2, servers=True)
            assert status.passive is True and [m.name for m in status.monitors] == ["MariaDB-Monitor"]
    finally:
        peer.close()


def test_read_status_of_a_maxscale_that_takes_no_connections_ends_by_the_deadline() -> None:
    """A listener whose accept queue is full drops new SYNs, as a black-holed host does: each
    connect would wait its whole connect_timeout. The reads end by the deadline, not after three
    connect timeouts one after the other."""
    from mxha.maxscale import read_status

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the accept queue (never accepted)
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.2)
    try:
        probe = socket.socket()
        probe.settimeout(0.3)
        with pytest.raises(TimeoutError):  # the premise: a connect here hangs
            probe.connect(("127.0.0.1", port))
        probe.close()
        client = MaxScaleClient(f"http://127.0.0.1:{port}", connect_timeout=2.0, read_timeout=2.0, keep_alive=True)
        t0 = time.monotonic()
        with pytest.raises(MaxScaleError) as info:
            read_status(client, time.monotonic() + 0.5, servers=True)
        assert info.value.error_kind == "no_answer"
        assert time.monotonic() - t0 < 1.5  # one connect cut at the deadline; not 3 x 2 s
    finally:
        for s in fillers:
            s.close()
        srv.close()

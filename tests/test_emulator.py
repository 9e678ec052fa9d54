"""The emulator replays every recorded MaxScale 24.02.4 exchange with the same status and errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import MAXSCALE_FIXTURES, control, load_fixture
from helpers import free_port

from mxha.lab.emulator import Emulator

AUTH = ("admin", "mariadb")


def _shape(value: Any) -> Any:
    """Keys and value types, recursively: what a client that parses the document depends on."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__ if value is not None else None


def _shape_covers(recorded: Any, emulated: Any, path: str = "") -> list[str]:
    """Every key the real MaxScale sent is there, with the same type (null may stand for anything)."""
    problems: list[str] = []
    if isinstance(recorded, dict):
        if not isinstance(emulated, dict):
            return [f"{path}: expected object"]
        for key, sub in recorded.items():
            if key not in emulated:
                problems.append(f"{path}/{key}: missing")
            else:
                problems += _shape_covers(sub, emulated[key], f"{path}/{key}")
    elif isinstance(recorded, list):
        if not isinstance(emulated, list):
            return [f"{path}: expected array"]
        if recorded and emulated:
            problems += _shape_covers(recorded[0], emulated[0], f"{path}[0]")
    elif (
        recorded is not None and emulated is not None and recorded != emulated and type(recorded) is not type(emulated)
    ):
        problems.append(f"{path}: {recorded} vs {emulated}")
    return problems


# How to put the emulator into the state each recording was made in.
SETUP: dict[str, dict[str, Any]] = {
    "get-maxscale-passive.json": {"passive": True},
    "failover-while-passive.json": {"passive": True},
    "rejoin-while-passive.json": {"passive": True},
    "switchover-while-passive.json": {"passive": True},
    "get-monitor-locks-on.json": {"lock_mode": "majority_of_all"},
    "release-locks-when-on.json": {"lock_mode": "majority_of_all"},
    "release-locks-again.json": {"lock_mode": "majority_of_all"},
}


def _replay(emulator: Emulator, recording: dict[str, Any], auth: Any = AUTH) -> requests.Response:
    req = recording["request"]
    body = req["body"]
    data: bytes | None
    if body is None:
        data = None
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    return requests.request(req["method"], emulator.url + req["path"], data=data, headers=headers, auth=auth, timeout=5)


def _names() -> list[str]:
    return sorted(p.name for p in MAXSCALE_FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", _names())
def test_replays_recorded_exchange(name: str, make_emulator: Any) -> None:
    recording = load_fixture(name)
    emulator = make_emulator(**SETUP.get(name, {}))
    auth: Any = AUTH
    if name == "get-no-auth.json":
        auth = None
    elif name == "get-wrong-password.json":
        auth = ("admin", "wrong")
    elif name == "release-locks-again.json":
        _replay(emulator, load_fixture("release-locks-when-on.json"))  # held -> released; now none held
    elif name in ("switchover-active.json", "get-monitor-after-release.json"):
        control(emulator, "monitor", {"cooperative_monitoring_locks": "majority_of_all"})
        _replay(emulator, load_fixture("release-locks-when-on.json"))
    elif name == "get-servers-after-switchover.json":
        # recorded after a switchover followed by the old primary going away; set those states
        states = [s["attributes"]["state"] for s in recording["body"]["data"]]
        control(emulator, "servers", {"server1": states[0], "server2": states[1]})
    elif name == "get-maxscale-reactivated.json":
        control(emulator, "maxscale", {"passive": True})
        _replay(emulator, load_fixture("patch-passive-false.json"))

    resp = _replay(emulator, recording, auth)
    assert resp.status_code == recording["status"], resp.text
    for header, value in recording["headers"].items():
        if header != "Content-Type" or recording["body"] is not None:
            assert resp.headers.get(header) == value, header
    # recordings were made on 127.0.0.1:8989; links follow the address asked
    expected = json.loads(json.dumps(recording["body"]).replace("http://127.0.0.1:8989", emulator.url))
    if expected is None:
        assert resp.content == b""
        return
    got = resp.json()
    if "errors" in expected or "meta" in expected:
        # error documents must match exactly: clients show and parse these texts
        assert got == expected
        return
    assert _shape_covers(expected, got) == []
    if isinstance(expected.get("data"), dict):
        e, g = expected["data"], got["data"]
        assert (g["id"], g["type"]) == (e["id"], e["type"])
        for key in ("state", "module"):
            if key in e["attributes"]:
                assert g["attributes"][key] == e["attributes"][key]
        if "parameters" in e["attributes"] and "passive" in e["attributes"]["parameters"]:
            assert g["attributes"]["parameters"]["passive"] == e["attributes"]["parameters"]["passive"]
        if "monitor_diagnostics" in e["attributes"]:
            assert (
                g["attributes"]["monitor_diagnostics"]["primary"] == e["attributes"]["monitor_diagnostics"]["primary"]
            )
    if isinstance(expected.get("data"), list):
        assert [d["id"] for d in got["data"]] == [d["id"] for d in expected["data"]]
        assert [d["attributes"].get("state") for d in got["data"]] == [
            d["attributes"].get("state") for d in expected["data"]
        ]


def test_links_self_follow_the_host_header(emulator: Emulator) -> None:
    doc = requests.get(f"{emulator.url}/v1/maxscale", auth=AUTH, timeout=5).json()
    assert doc["links"]["self"] == f"{emulator.url}/v1/maxscale/"
    servers = requests.get(f"{emulator.url}/v1/servers", auth=AUTH, timeout=5).json()
    assert servers["data"][0]["links"]["self"] == f"{emulator.url}/v1/servers/server1/"


def test_documents_lay_live_values_over_templates_they_never_write(make_emulator: Any) -> None:
    """Documents share the recorded templates (copying them per request was most of the emulator's
    time): every state a document shows is the live one, and the templates stay as recorded."""
    from mxha.lab.emulator.model import load_template

    emulator = make_emulator(lock_mode="majority_of_all", nodename="mx1")
    paths = ["/v1/maxscale", "/v1/servers", "/v1/servers/server2", "/v1/monitors", "/v1/monitors/MariaDB-Monitor"]

    def fetch() -> dict[str, Any]:
        return {p: requests.get(emulator.url + p, auth=AUTH, timeout=5).json()["data"] for p in paths}

    before = fetch()
    control(emulator, "servers", {"server1": "Down", "server2": "Master, Running"})
    control(emulator, "maxscale", {"passive": True})
    control(emulator, "monitor", {"cooperative_monitoring_locks": "none"})
    after = fetch()
    assert [d["attributes"]["state"] for d in before["/v1/servers"]] == ["Master, Running", "Slave, Running"]
    assert [d["attributes"]["state"] for d in after["/v1/servers"]] == ["Down", "Master, Running"]
    assert after["/v1/servers/server2"]["attributes"]["state"] == "Master, Running"
    assert [d["attributes"]["parameters"]["port"] for d in after["/v1/servers"]] == [3306, 3307]
    assert before["/v1/servers"][0]["attributes"]["lock_held"] is True
    assert after["/v1/servers"][0]["attributes"]["lock_held"] is None
    diag = after["/v1/monitors/MariaDB-Monitor"]["attributes"]["monitor_diagnostics"]
    assert (diag["master"], diag["primary"]) == ("server2", None)
    assert before["/v1/monitors"][0]["attributes"]["monitor_diagnostics"]["primary"] is True
    assert [s["read_only"] for s in diag["server_info"]] == [True, False]
    assert after["/v1/maxscale"]["attributes"]["parameters"]["passive"] is True
    assert after["/v1/maxscale"]["attributes"]["system"]["os"]["nodename"] == "mx1"
    server = emulator._server
    assert server is not None
    assert server.server_template == load_template("server.json")
    assert server.monitor_template == load_template("monitor.json")
    assert emulator.state.maxscale_template == load_template("maxscale.json")


def test_v1_prefix_is_optional_and_trailing_slash_ignored(emulator: Emulator) -> None:
    a = requests.get(f"{emulator.url}/maxscale/", auth=AUTH, timeout=5)
    assert a.status_code == 200 and a.json()["data"]["id"] == "maxscale"


@pytest.mark.parametrize(
    "value,kind", [("true", "string"), (1, "integer"), (1.5, "real"), ([], "array"), ({}, "object"), (None, "null")]
)
def test_patch_passive_rejects_every_non_boolean(emulator: Emulator, value: Any, kind: str) -> None:
    resp = requests.patch(
        f"{emulator.url}/v1/maxscale",
        auth=AUTH,
        timeout=5,
        json={"data": {"attributes": {"parameters": {"passive": value}}}},
    )
    assert resp.status_code == 400
    assert resp.json() == {"errors": [{"detail": f"passive: Expected a json boolean, but got a json {kind}."}]}
    assert control(emulator, "state")["passive"] is False


def test_several_bad_parameters_give_several_errors(emulator: Emulator) -> None:
    resp = requests.patch(
        f"{emulator.url}/v1/maxscale",
        auth=AUTH,
        timeout=5,
        json={"data": {"attributes": {"parameters": {"foo": 1, "admin_port": 1, "passive": 2}}}},
    )
    assert resp.status_code == 400
    assert [e["detail"] for e in resp.json()["errors"]] == [
        "maxscale: The parameter 'foo' is unrecognized.",
        "maxscale: The parameter 'admin_port' cannot be modified at runtime.",
        "passive: Expected a json boolean, but got a json integer.",
    ]


def test_readonly_user_cannot_write(make_emulator: Any) -> None:
    emulator = make_emulator(readonly_user="viewer", readonly_password="v")
    assert requests.get(f"{emulator.url}/v1/maxscale", auth=("viewer", "v"), timeout=5).status_code == 200
    resp = requests.patch(
        f"{emulator.url}/v1/maxscale",
        auth=("viewer", "v"),
        timeout=5,
        json={"data": {"attributes": {"parameters": {"passive": True}}}},
    )
    assert resp.status_code == 403
    assert resp.json() == {"errors": [{"detail": "Administrative access required"}]}


def test_unknown_verb_is_405_and_delete_maxscale_404(emulator: Emulator) -> None:
    assert requests.request("FROB", f"{emulator.url}/v1/maxscale", auth=AUTH, timeout=5).status_code == 405
    resp = requests.delete(f"{emulator.url}/v1/maxscale", auth=AUTH, timeout=5)
    assert resp.status_code == 404 and resp.content == b""


def test_switchover_while_active_moves_the_primary(emulator: Emulator) -> None:
    resp = requests.post(
        f"{emulator.url}/v1/maxscale/modules/mariadbmon/switchover?MariaDB-Monitor&server2", auth=AUTH, timeout=5
    )
    assert resp.status_code == 204
    assert control(emulator, "state")["servers"] == {"server1": "Slave, Running", "server2": "Master, Running"}


def test_release_locks_stops_relocking_for_a_minute(make_emulator: Any) -> None:
    emulator = make_emulator(lock_mode="majority_of_all")
    url = f"{emulator.url}/v1/monitors/MariaDB-Monitor"
    assert (
        requests.get(url, auth=AUTH, timeout=5).json()["data"]["attributes"]["monitor_diagnostics"]["primary"] is True
    )
    rel = requests.post(
        f"{emulator.url}/v1/maxscale/modules/mariadbmon/release-locks?MariaDB-Monitor", auth=AUTH, timeout=5
    )
    assert rel.status_code == 204
    diag = requests.get(url, auth=AUTH, timeout=5).json()["data"]["attributes"]["monitor_diagnostics"]
    assert diag["primary"] is False
    assert all(s["lock_held"] is False for s in diag["server_info"])


def test_passive_survives_restart_with_state_file(make_emulator: Any, tmp_path: Path) -> None:
    state = str(tmp_path / "maxscale.state")
    first = make_emulator(state_file=state)
    requests.patch(
        f"{first.url}/v1/maxscale",
        auth=AUTH,
        timeout=5,
        json={"data": {"attributes": {"parameters": {"passive": True}}}},
    ).raise_for_status()
    first.stop()
    second = make_emulator(state_file=state)
    doc = requests.get(f"{second.url}/v1/maxscale", auth=AUTH, timeout=5).json()
    assert doc["data"]["attributes"]["parameters"]["passive"] is True
    # and an active MaxScale comes back active even when the static config says passive
    requests.patch(
        f"{second.url}/v1/maxscale",
        auth=AUTH,
        timeout=5,
        json={"data": {"attributes": {"parameters": {"passive": False}}}},
    ).raise_for_status()
    second.stop()
    third = make_emulator(state_file=state, passive=True)
    assert control(third, "state")["passive"] is False


def test_uptime_and_dates_look_like_maxscale(emulator: Emulator) -> None:
    attrs = requests.get(f"{emulator.url}/v1/maxscale", auth=AUTH, timeout=5).json()["data"]["attributes"]
    assert isinstance(attrs["uptime"], int)
    assert attrs["started_at"].endswith(" GMT") and attrs["activated_at"] == attrs["started_at"]
    assert attrs["version"] == "24.02.4"


def test_faults_hang_slow_error_reject_and_refuse(emulator: Emulator) -> None:
    url = f"{emulator.url}/v1/maxscale"
    control(emulator, "fault", {"mode": "error"})
    assert requests.get(url, auth=AUTH, timeout=5).status_code == 500
    control(emulator, "fault", {"mode": "reject_auth"})
    assert requests.get(url, auth=AUTH, timeout=5).status_code == 401
    control(emulator, "fault", {"mode": "slow", "delay": 0.3})
    t0 = time.monotonic()
    assert requests.get(url, auth=AUTH, timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    control(emulator, "fault", {"mode": "hang"})
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, auth=AUTH, timeout=0.3)
    control(emulator, "fault", {"mode": "none"})
    assert requests.get(url, auth=AUTH, timeout=5).status_code == 200
    control(emulator, "fault", {"mode": "refuse", "duration": 0.5})
    time.sleep(0.1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, auth=AUTH, timeout=1)
    time.sleep(0.8)
    assert requests.get(url, auth=AUTH, timeout=5).status_code == 200


def test_fault_with_duration_clears_itself(emulator: Emulator) -> None:
    control(emulator, "fault", {"mode": "error", "duration": 0.2})
    time.sleep(0.3)
    assert requests.get(f"{emulator.url}/v1/maxscale", auth=AUTH, timeout=5).status_code == 200


def test_a_client_that_gives_up_on_a_drip_leaves_no_traceback(
    emulator: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    """A scraper's timeout closes the connection mid-answer: nothing for the emulator's log."""
    control(emulator, "fault", {"mode": "drip", "delay": 0.02})
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=3) as sock:
            sock.sendall(b"GET /v1/maxscale HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46bWFyaWFkYg==\r\n\r\n")
            assert sock.recv(1) == b"H"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    time.sleep(0.5)  # the drip writes again, fails, and the handler ends
    control(emulator, "fault", {"mode": "none"})
    assert requests.get(f"{emulator.url}/v1/maxscale", auth=AUTH, timeout=5).status_code == 200
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /v1/maxscale HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"PATCH /v1/maxscale HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!\r\n\r\n",
        b"\x00\x01\x02 garbage\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"PATCH /v1/maxscale HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46bWFyaWFkYg==\r\n"
        b"Content-Length: 5\r\n\r\n\xff\xfe\x00{[",
    ],
)
def test_garbage_never_crashes_it(emulator: Emulator, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=3) as sock:
        sock.sendall(raw)
        try:
            sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            pass
    assert requests.get(f"{emulator.url}/v1/maxscale", auth=AUTH, timeout=5).status_code == 200


BASIC = b"Authorization: Basic YWRtaW46bWFyaWFkYg==\r\n"  # admin:mariadb


def _answers(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` answers (status, headers, body) off a connection."""
    stream = sock.makefile("rb")
    out = []
    for _ in range(count):
        status = int(stream.readline().split()[1])
        headers = {}
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        out.append((status, headers, stream.read(int(headers.get("content-length", "0")))))
    return out


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    ("head", "host"),
    [
        (
            b"GET /v1/maxscale HTTP/1.1\r\nhost: h:1\r\n"
            + BASIC.lower().replace(b"basic ywrtaw46bwfyawfkyg==", b"Basic YWRtaW46bWFyaWFkYg==")
            + b"\r\n",
            "h:1",
        ),
        (b"GET /v1/maxscale HTTP/1.1\r\nHOST: h:2\r\nHost: other:3\r\n" + BASIC + b"\r\n", "h:2"),
        (b"GET /v1/maxscale HTTP/1.1\r\nHost: h:4\r\nAuthorization:\r\n\tBasic YWRtaW46bWFyaWFkYg==\r\n\r\n", "h:4"),
    ],
    ids=["names-in-any-case", "first-of-repeated-wins", "folded-line"],
)
def test_request_heads_as_clients_write_them(emulator: Emulator, head: bytes, host: str) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=3) as sock:
        sock.sendall(head + head)  # pipelined: two answers, in order, on one kept-alive connection
        answers = _answers(sock, 2)
        assert not _closed(sock)
    for status, headers, body in answers:
        assert status == 200, body
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["links"]["self"] == f"http://{host}/v1/maxscale/"


@pytest.mark.parametrize(
    ("head", "stays_open"),
    [
        (b"GET /v1/maxscale HTTP/1.0\r\n" + BASIC + b"\r\n", False),
        (b"GET /v1/maxscale HTTP/1.0\r\nConnection: keep-alive\r\n" + BASIC + b"\r\n", True),
        (b"GET /v1/maxscale HTTP/1.1\r\nConnection: close\r\n" + BASIC + b"\r\n", False),
        (b"GET /v1/maxscale HTTP/1.1\r\nConnection: Keep-Alive\r\n" + BASIC + b"\r\n", True),
    ],
    ids=["1.0", "1.0-keep-alive", "1.1-close", "1.1-keep-alive"],
)
def test_connections_close_when_the_request_says_so(emulator: Emulator, head: bytes, stays_open: bool) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=1) as sock:
        sock.sendall(head)
        assert _answers(sock, 1)[0][0] == 200
        assert _closed(sock) is not stays_open


def test_expect_100_continue_is_answered_before_the_body_is_sent(emulator: Emulator) -> None:
    body = b'{"data": {"attributes": {"parameters": {"passive": true}}}}'
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=3) as sock:
        sock.sendall(
            b"PATCH /v1/maxscale HTTP/1.1\r\nHost: x\r\n"
            + BASIC
            + b"Expect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        assert _answers(sock, 1)[0][0] == 204
    assert control(emulator, "state")["passive"] is True


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /v1/maxscale HTTP/1.1\r\nHost x\r\n\r\n", 400),
        (b"GET /v1/maxscale HTTP/1.1\r\n : x\r\n\r\n", 400),
        (b"GET /v1/maxscale HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n", 431),
        (b"GET /v1/maxscale HTTP/1.1\r\nX: " + b"y" * 70000 + b"\r\n\r\n", 431),
        (b"GET /v1/maxscale HTTP/2.0\r\n\r\n", 505),
        (b"GET /v1/maxscale HTTP/one\r\n\r\n", 400),
        (b"GET /v1/maxscale\r\n\r\n", 400),
        (b"GET /v1/maxscale HTTP/1.1 extra\r\n\r\n", 400),
    ],
    ids=["no-colon", "no-name", "101-headers", "long-line", "http2", "bad-version", "no-version", "four-words"],
)
def test_malformed_heads_get_an_error_and_a_closed_connection(emulator: Emulator, raw: bytes, status: int) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=3) as sock:
        sock.sendall(raw)
        assert _answers(sock, 1)[0][0] == status
        assert _closed(sock)
    assert requests.get(f"{emulator.url}/v1/maxscale", auth=AUTH, timeout=5).status_code == 200


def test_cli_listens_on_the_given_port_and_stops_listening_on_sigusr1(tmp_path: Path) -> None:
    port = free_port()  # a port picked from the clock could be taken; this one was free a moment ago
    proc = subprocess.Popen(
        [sys.executable, "-m", "mxha", "emulator", "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "MaxScale emulator on" in proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/v1/maxscale"
        assert requests.get(url, auth=AUTH, timeout=5).json()["data"]["type"] == "maxscale"
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, auth=AUTH, timeout=1)
        proc.send_signal(signal.SIGUSR2)
        time.sleep(0.5)
        assert requests.get(url, auth=AUTH, timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert proc.returncode == 0

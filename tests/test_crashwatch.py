"""The crash watch (``check.track_file``): a real listening socket on loopback stands in for MaxScale's
REST port; the track file is read as keepalived reads it; the keepalived lines are the ones the lab
renders and keepalived itself accepts them."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import requires_program
from helpers import write_node_config

from mxha.config import load_node_config
from mxha.exporter.crashwatch import CrashWatch, TrackFile, rest_endpoint
from mxha.lab.emulator import Emulator
from mxha.lab.keepalived_conf import VrrpSpec, render_keepalived_conf


class Listener:
    """A TCP port that accepts and keeps connections, like MaxScale's REST API; ``close`` closes it
    and every accepted connection at once, as the kernel does for a process that exits."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.conns:
            conn.close()


def read_value(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def wait_value(path: Path, value: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_value(path) == value:
            return True
        time.sleep(0.01)
    return False


StartWatch = Callable[[str, Callable[[float], bool]], threading.Event]  # (MaxScale URL, healthy_since) -> stop


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[StartWatch]:
    stops: list[tuple[threading.Event, threading.Thread]] = []

    def start(url: str, healthy_since: Callable[[float], bool]) -> threading.Event:
        stop = threading.Event()
        w = CrashWatch(url, str(tmp_path / "maxscale.track"), healthy_since)
        thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
        thread.start()
        stops.append((stop, thread))
        return stop

    yield start
    for stop, thread in stops:
        stop.set()
        thread.join(5)


def test_gone_is_written_when_the_port_closes_and_cleared_only_once_healthy(tmp_path: Path, watch: StartWatch) -> None:
    track = tmp_path / "maxscale.track"
    healthy = {"since": 0.0}  # the exporter's check: passed at this time (0: never)
    listener = Listener()
    stop = watch(f"http://127.0.0.1:{listener.port}", lambda t: healthy["since"] > t)
    assert wait_value(track, 0), "a listening MaxScale: 0"
    closed = time.monotonic()
    listener.close()
    assert wait_value(track, 1), "the port closed: 1"
    # the idle connection tells at once; no polling interval is waited for
    assert time.monotonic() - closed < 0.5
    back = Listener(listener.port)
    time.sleep(0.5)
    assert read_value(track) == 1, "listening again but the check has not passed since: still 1"
    healthy["since"] = time.time()
    assert wait_value(track, 0), "listening and the check passed since: 0"
    back.close()
    assert wait_value(track, 1)
    stop.set()
    assert wait_value(track, 0), "a stopped watch hands the decision back to the vrrp_script: 0"


def test_a_hung_maxscale_is_not_called_gone(tmp_path: Path, watch: StartWatch) -> None:
    """A port that accepts but never answers (a frozen process: the kernel still accepts) is the check's."""
    track = tmp_path / "maxscale.track"
    listener = Listener()
    watch(f"http://127.0.0.1:{listener.port}", lambda t: True)
    assert wait_value(track, 0)
    time.sleep(0.5)
    assert read_value(track) == 0


def test_nothing_listening_at_start_is_gone(tmp_path: Path, watch: StartWatch) -> None:
    probe = Listener()
    port = probe.port
    probe.close()
    watch(f"http://127.0.0.1:{port}", lambda t: True)
    assert wait_value(tmp_path / "maxscale.track", 1)


def test_track_file_is_replaced_not_rewritten_in_place(tmp_path: Path) -> None:
    """A reader never sees a half-written file: each value is a new inode renamed over the old one."""
    track = TrackFile(str(tmp_path / "t"))
    assert track.write(1)
    first = (tmp_path / "t").stat().st_ino
    assert not track.write(1), "unchanged: not written again"
    assert track.write(0)
    assert (tmp_path / "t").stat().st_ino != first and read_value(tmp_path / "t") == 0
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:8989", ("127.0.0.1", 8989)),
        ("https://maxscale.example:8443/prefix", ("maxscale.example", 8443)),
        ("https://10.0.0.1", ("10.0.0.1", 443)),
    ],
)
def test_rest_endpoint(url: str, endpoint: tuple[str, int]) -> None:
    assert rest_endpoint(url) == endpoint


def test_track_file_in_a_missing_folder_stops_the_exporter_not_the_hooks(tmp_path: Path) -> None:
    """One line naming the key, exit 2, from the exporter; `mxha check` reads the same node.yml and
    must not fail on the exporter's key (a failing check would put keepalived in FAULT)."""
    import sys

    mxha = str(Path(sys.executable).with_name("mxha"))
    cfg = write_node_config(tmp_path / "node.yml", "http://127.0.0.1:9", check={"track_file": "/nonexistent/x"})
    assert load_node_config(str(cfg)).check.track_file == "/nonexistent/x"
    proc = subprocess.run(
        [mxha, "exporter", "--config.file", str(cfg), "--web.listen-address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mxha exporter: config error: check.track_file: the folder of /nonexistent/x does not exist"
    ]
    check = subprocess.run([mxha, "check", "--config.file", str(cfg)], capture_output=True, text=True, timeout=30)
    assert "config error" not in check.stdout + check.stderr and check.stdout.startswith("FAIL: MaxScale")


def test_rendered_keepalived_conf_tracks_the_file_on_the_governing_instance_only() -> None:
    conf = render_keepalived_conf(
        router_id="node1",
        interface="eth0",
        instances=[
            VrrpSpec("VI_1", 51, 150, "198.51.100.100/24"),
            VrrpSpec("VI_2", 52, 150, "198.51.100.101/24", governing=False),
        ],
        check_script="/bin/true",
        notify_script=None,
        track_file="/run/mxha/maxscale.track",
    )
    assert 'track_file maxscale_gone {\n  file "/run/mxha/maxscale.track"\n  weight 0\n}' in conf
    assert conf.count("  track_file {\n    maxscale_gone\n  }") == 1
    assert conf.index("maxscale_gone\n  }") < conf.index("vrrp_instance VI_2")
    without = render_keepalived_conf(
        router_id="node1", interface="eth0", instances=[], check_script=None, notify_script=None
    )
    assert "track_file" not in without


@requires_program("keepalived")
def test_lab_node_keepalived_conf_passes_keepalived_config_test(tmp_path: Path) -> None:
    from mxha.lab.node import NodeSpec, installed_mxha

    spec = NodeSpec(
        "node1",
        "127.0.0.1",
        tmp_path / "n",
        [VrrpSpec("VI_1", 51, 150, "198.51.100.100/24")],
        hooks=installed_mxha(),
        crash_watch=True,
    )
    spec.write()
    conf = (spec.workdir / "keepalived.conf").read_text()
    assert f'file "{spec.workdir / "maxscale.track"}"' in conf
    assert load_node_config(str(spec.config_file)).check.track_file == str(spec.workdir / "maxscale.track")
    proc = subprocess.run(
        ["keepalived", "--config-test", "-f", str(spec.workdir / "keepalived.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_exporter_runs_the_watch_and_hands_the_file_back_when_stopped(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    """The installed ``mxha exporter`` against the emulator over HTTP: 0 while MaxScale listens, 1 once
    it stops, 0 again after SIGTERM (the vrrp_script decides alone)."""
    import signal
    import sys

    from helpers import free_port

    emulator = make_emulator()
    track = tmp_path / "maxscale.track"
    cfg = write_node_config(
        tmp_path / "node.yml",
        emulator.url,
        check={"track_file": str(track), "interval": 0.2},
        keepalived={"pid_file": str(tmp_path / "none.pid"), "dump_dir": str(tmp_path)},
    )
    mxha = str(Path(sys.executable).with_name("mxha"))
    proc = subprocess.Popen(
        [mxha, "exporter", "--config.file", str(cfg), "--web.listen-address", f"127.0.0.1:{free_port()}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_value(track, 0, timeout=20)
        emulator.stop()
        assert wait_value(track, 1), "MaxScale's port closed: 1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert read_value(track) == 0, "a stopped exporter hands the decision back: 0"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

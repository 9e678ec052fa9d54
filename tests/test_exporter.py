"""The exporter's snapshot, metrics and HTTP routes under faults (emulator + keepalived stand-in)."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import KEEPALIVED_FIXTURES, REPO, control, requires_program
from helpers import MxhaServer, write_node_config
from prometheus_client import generate_latest

from mxha.config import load_node_config
from mxha.exporter.app import ExporterApp
from mxha.exporter.collector import node_registry
from mxha.exporter.keepalived import SignalDumpReader
from mxha.exporter.node import NodeReader
from mxha.lab.emulator import Emulator

JSON_SIGNUM = signal.SIGRTMIN + 2
STANDIN = Path(__file__).with_name("keepalived_standin.py")


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(mode: str, scenario: str = "steady/node1") -> Path:
        d = tmp_path / f"ka-{len(procs)}"
        d.mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, str(STANDIN), str(d), str(KEEPALIVED_FIXTURES / scenario), mode, str(int(JSON_SIGNUM))]
            )
        )
        deadline = time.monotonic() + 5
        while not (d / "keepalived.pid").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return d

    yield start
    for p in procs:
        p.terminate()
        p.wait(5)


def make_reader(cfg_path: Path, ka_dir: Path | None, mode: str = "json", **kw: Any) -> NodeReader:
    cfg = load_node_config(str(cfg_path))
    dump = SignalDumpReader(
        pid_file=str((ka_dir or cfg_path.parent) / "keepalived.pid"),
        dump_dir=str(ka_dir or cfg_path.parent),
        mode=mode,
        min_interval=kw.pop("min_interval", 0.0),
        timeout=kw.pop("timeout", 0.5),
        json_signum=int(JSON_SIGNUM),
    )
    # 192.0.2.100 is "on this host" for these tests: the kernel lookup is the one seam replaced here
    return NodeReader(cfg, dump, dump=dump, addresses=kw.pop("addresses", lambda: {"192.0.2.100"}))


def scrape(reader: NodeReader) -> str:
    """The exporter's whole exposition (its registry: the node's families, build info, process_*)."""
    return generate_latest(node_registry(reader.snapshot)).decode()


def value(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def cfg(emulator: Emulator, tmp_path: Path) -> Path:
    return write_node_config(
        tmp_path / "node.yml",
        emulator.url,
        keepalived={"governing_instance": "VI_1", "min_signal_interval": 0},
        maxscale={"password": "mariadb", "read_timeout": 0.5},
    )


def test_healthy_snapshot_and_metrics(cfg: Path, standin: Callable[..., Path]) -> None:
    reader = make_reader(cfg, standin("good"))
    reader.run_check_once()
    text = scrape(reader)
    assert value(text, "mxha_keepalived_up") == 1
    assert value(text, 'mxha_vrrp_state{interface="v1",state="MASTER",vrid="51",vrrp_instance="VI_1"}') == 1
    assert value(text, 'mxha_vip_present{governing="true",vip="192.0.2.100",vrrp_instance="VI_1"}') == 1
    assert value(text, 'mxha_vip_present{governing="false",vip="192.0.2.101",vrrp_instance="VI_2"}') == 0
    assert value(text, "mxha_maxscale_passive") == 0
    assert value(text, 'mxha_maxscale_info{commit="source-build",version="24.02.4"}') == 1
    assert value(text, "mxha_check_success") == 1
    assert value(text, 'mxha_vrrp_became_master_total{vrid="51",vrrp_instance="VI_1"}') == 1
    assert "mxha_maxscale_monitor_primary{" not in text  # locks off: absent, not 0


def test_kernel_addresses_are_read_after_the_dump(
    cfg: Path, standin: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """keepalived adds the VIP before it can dump MASTER: addresses asked of the kernel after the dump
    agree with it, asked before it a transition in between reported a MASTER without its VIP."""
    order: list[str] = []
    reader = make_reader(cfg, standin("good"), addresses=lambda: order.append("addresses") or {"192.0.2.100"})
    begin = reader.keepalived.begin  # type: ignore[attr-defined]

    def begin_and_note() -> Callable[[], Any]:
        finish = begin()

        def finished() -> Any:
            state = finish()
            order.append("dump")
            return state

        return finished

    monkeypatch.setattr(reader.keepalived, "begin", begin_and_note)
    reader.snapshot()
    assert order == ["dump", "addresses"]


@requires_program("promtool")
def test_exposition_passes_promtool_check_metrics(cfg: Path, standin: Callable[..., Path]) -> None:
    reader = make_reader(cfg, standin("good"), mode="text")
    reader.run_check_once()
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=scrape(reader), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_monitor_primary_with_cooperative_locks(
    make_emulator: Any, tmp_path: Path, standin: Callable[..., Path]
) -> None:
    emulator = make_emulator(lock_mode="majority_of_all")
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    text = scrape(make_reader(cfg, standin("good")))
    assert value(text, 'mxha_maxscale_monitor_primary{monitor="MariaDB-Monitor"}') == 1


def test_keepalived_not_running(cfg: Path) -> None:
    reader = make_reader(cfg, None)
    snap = reader.snapshot()
    assert snap.keepalived is None and "not running" in (snap.keepalived_error or "")
    assert value(scrape(reader), "mxha_keepalived_up") == 0


def test_stale_dump_gives_up_0_not_old_data(cfg: Path, standin: Callable[..., Path]) -> None:
    d = standin("stale")
    (d / "keepalived.json").write_text((KEEPALIVED_FIXTURES / "steady/node1/keepalived.json").read_text())
    reader = make_reader(cfg, d, timeout=0.3)
    t0 = time.monotonic()
    snap = reader.snapshot()
    assert time.monotonic() - t0 < 1.5
    assert snap.keepalived is None and "no new dump" in (snap.keepalived_error or "")
    assert "mxha_vrrp_state{" not in scrape(reader)


def test_truncated_dump_gives_up_0(cfg: Path, standin: Callable[..., Path]) -> None:
    reader = make_reader(cfg, standin("truncated"), timeout=0.3)
    snap = reader.snapshot()
    assert snap.keepalived is None and "not valid JSON" in (snap.keepalived_error or "")
    text_reader = make_reader(cfg, standin("truncated"), mode="text", timeout=0.3)
    assert text_reader.snapshot().keepalived is None


@pytest.mark.parametrize("mode", ["json", "text"])
def test_half_written_then_completed_dump_is_waited_for(cfg: Path, standin: Callable[..., Path], mode: str) -> None:
    reader = make_reader(cfg, standin("late-complete"), mode=mode, timeout=1.0)
    snap = reader.snapshot()
    assert snap.keepalived is not None, snap.keepalived_error
    assert [i.state for i in snap.keepalived.instances] == ["MASTER", "BACKUP"]


def test_concurrent_scrapes_share_one_dump(cfg: Path, standin: Callable[..., Path]) -> None:
    d = standin("good")
    reader = make_reader(cfg, d, min_interval=1.0)
    results = []
    threads = [threading.Thread(target=lambda: results.append(reader.snapshot())) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.keepalived is not None for r in results)
    assert int((d / "signals").read_text()) == 1


def test_dump_readers_racing_share_the_dump_in_flight(cfg: Path, standin: Callable[..., Path]) -> None:
    """The dump reader itself (not only the snapshot's lock): a read that starts while another's dump
    is on its way (late-complete: 30 ms to finish) waits for that one instead of signalling again,
    and a scrape's two halves (begin, then finish) leave the same rate limit in place."""
    d = standin("late-complete")
    reader = make_reader(cfg, d, min_interval=5.0, timeout=2.0)
    dump = reader.dump
    assert dump is not None
    finish = dump.begin()  # signalled; the dump is still being written
    results = []
    threads = [threading.Thread(target=lambda: results.append(dump.read())) for _ in range(5)]
    for t in threads:
        t.start()
    first = finish()
    for t in threads:
        t.join()
    assert [i.state for i in first.instances] == ["MASTER", "BACKUP"]
    assert len(results) == 5 and all(r is first for r in results)
    assert int((d / "signals").read_text()) == 1
    assert dump.read() is first and int((d / "signals").read_text()) == 1  # within min_signal_interval


@pytest.mark.parametrize("fault,expect", [("error", "HTTP 500"), ("reject_auth", "HTTP 401"), ("hang", "no answer")])
def test_maxscale_faults(cfg: Path, emulator: Emulator, standin: Callable[..., Path], fault: str, expect: str) -> None:
    control(emulator, "fault", {"mode": fault})
    reader = make_reader(cfg, standin("good"))
    t0 = time.monotonic()
    reader.run_check_once()
    text = scrape(reader)
    assert time.monotonic() - t0 < 3.5  # check timeout 1 s + MaxScale read bounded by its timeouts
    assert value(text, "mxha_maxscale_up") == 0
    assert "mxha_maxscale_passive" not in text
    assert value(text, "mxha_check_success") == 0
    assert expect in (reader.snapshot().maxscale.error or "")


def test_maxscale_down(tmp_path: Path, standin: Callable[..., Path]) -> None:
    cfg = write_node_config(tmp_path / "n.yml", "http://127.0.0.1:9")
    reader = make_reader(cfg, standin("good"))
    reader.run_check_once()
    text = scrape(reader)
    assert value(text, "mxha_maxscale_up") == 0 and value(text, "mxha_check_success") == 0
    assert value(text, "mxha_keepalived_up") == 1


def test_keepalived_down_still_checks_last_known_vips_with_the_kernel(cfg: Path, standin: Callable[..., Path]) -> None:
    d = standin("good")
    reader = make_reader(cfg, d)
    assert reader.snapshot().keepalived is not None
    (d / "keepalived.pid").write_text("999999\n")
    snap = reader.snapshot()
    assert snap.keepalived is None
    assert {(v.address, v.present) for v in snap.vips} == {("192.0.2.100", True), ("192.0.2.101", False)}


def test_no_secrets_in_metrics_or_state(tmp_path: Path, make_emulator: Any, standin: Callable[..., Path]) -> None:
    emulator = make_emulator(password="Zq-very-secret-9")
    cfg = write_node_config(tmp_path / "n.yml", emulator.url, maxscale={"password": "Zq-very-secret-9"})
    for mode in ("json", "text"):
        reader = make_reader(cfg, standin("good"), mode=mode)
        reader.run_check_once()
        out = scrape(reader) + json.dumps(reader.snapshot().to_state().to_json()) + repr(reader.snapshot())
        assert "s3cretPW" not in out and "Zq-very-secret-9" not in out
        assert reader.snapshot().maxscale.up


def _wsgi_get(app: ExporterApp, path: str) -> tuple[str, dict[str, Any]]:
    captured: dict[str, Any] = {}
    body = b"".join(
        app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, headers: captured.update(status=status))
    )
    return captured["status"], json.loads(body) if body.startswith(b"{") else {}


def test_check_route_fails_safe_when_stale(cfg: Path, standin: Callable[..., Path]) -> None:
    reader = make_reader(cfg, standin("good"))
    app = ExporterApp(reader)
    assert _wsgi_get(app, "/check")[0].startswith("503")  # nothing run yet
    reader.run_check_once()
    status, doc = _wsgi_get(app, "/check")
    assert status.startswith("200") and doc["success"] is True and doc["age_seconds"] < 1
    from dataclasses import replace

    assert reader.check_result is not None
    reader.check_result = replace(reader.check_result, checked_at=time.time() - 60)
    status, doc = _wsgi_get(app, "/check")
    assert status.startswith("503") and doc["reason"].startswith("stale result")
    state = reader.snapshot().to_state().to_json()
    assert state["check"]["success"] is False and state["check"]["reason"].startswith("stale")


def test_name_filters_read_the_node_only_when_they_name_its_families(
    cfg: Path, standin: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``name[]`` (prometheus_client's filter): a scrape of the process's own families takes no
    snapshot (no signal to keepalived, no MaxScale request); one naming a node family does."""
    reader = make_reader(cfg, standin("good"))
    snapshots = []
    real = reader.snapshot
    monkeypatch.setattr(reader, "snapshot", lambda: snapshots.append(1) or real())
    app = ExporterApp(reader)

    def metrics(query: str) -> str:
        environ = {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", "QUERY_STRING": query}
        return b"".join(app(environ, lambda status, headers: None)).decode()

    text = metrics("name[]=process_cpu_seconds_total&name[]=mxha_build_info")
    assert "process_cpu_seconds_total " in text and "mxha_build_info{" in text and snapshots == []
    text = metrics("name[]=mxha_keepalived_up")
    assert [line for line in text.splitlines() if not line.startswith("#")] == ["mxha_keepalived_up 1.0"]
    assert snapshots == [1]


def test_exporter_process_end_to_end(cfg: Path, standin: Callable[..., Path], tmp_path: Path) -> None:
    d = standin("good")
    text = cfg.read_text().replace("keepalived:\n", f"keepalived:\n  pid_file: {d}/keepalived.pid\n  dump_dir: {d}\n")
    cfg.write_text(text)
    with MxhaServer("exporter", cfg) as server:
        base = server.url
        state = requests.get(base + "/state", timeout=2).json()
        assert state["node"] == "node1" and state["keepalived"]["up"] is True
        assert state["keepalived"]["instances"][0]["governing"] is True
        assert requests.get(base + "/check", timeout=2).status_code == 200
        assert "mxha_keepalived_up 1.0" in requests.get(base + "/metrics", timeout=2).text
        assert requests.get(base + "/nope", timeout=2).status_code == 404
        assert server.stop() == 0


@pytest.mark.parametrize(
    "yaml_text,key",
    [
        ("maxscale:\n  url: ftp://x\n", "maxscale.url"),
        ("maxscale:\n  password: a\n  password_file: /x\n", "maxscale.password_file"),
        ("check:\n  timeout: -1\n", "check.timeout"),
        ("keepalived:\n  source: dbus\n", "keepalived.source"),
        ("keepalived:\n  source: fifo\n", "keepalived.notify_fifo"),
        ("keepalived:\n  vips: [not-an-ip]\n", "keepalived.vips"),
        ("bogus: 1\n", "bogus"),
        ("check: [1, 2]\n", "check"),
        ("maxscale:\n  password_env: MXHA_TEST_UNSET_VAR\n", "maxscale.password_env"),
        ("{{{{\n", "not valid YAML"),
    ],
)
def test_bad_config_stops_startup_with_one_line_naming_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(yaml_text)
    proc = subprocess.run(
        [sys.executable, "-m", "mxha", "exporter", "--config.file", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], proc.stderr


def test_a_lost_notify_shows_in_metrics_and_state(cfg: Path, standin: Callable[..., Path], tmp_path: Path) -> None:
    # a notify that ran while MaxScale was down (port 9 refuses) is recorded; the exporter shows it
    dead = write_node_config(
        tmp_path / "dead.yml",
        "http://127.0.0.1:9",
        notify={"timeout": 0.5, "state_file": str(tmp_path / "notify-state.json")},
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mxha", "notify", "--config.file", str(dead), "INSTANCE", "VI_1", "MASTER", "150"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 1
    assert str(tmp_path / "notify-state.json") in cfg.read_text()  # the exporter reads the same file
    reader = make_reader(cfg, standin("good"))
    out = scrape(reader)
    assert value(out, "mxha_notify_last_success") == 0 and value(out, "mxha_notify_desired_passive") == 0
    state = reader.snapshot().to_state().to_json()["notify"]
    assert state["ok"] is False and state["state"] == "MASTER" and "gave up" in state["result"]


@requires_program("setpriv")
def test_a_failed_dump_read_counts_against_the_signal_limit(tmp_path: Path, standin: Callable[..., Path]) -> None:
    """Permission denied on the dump (keepalived's 0600 files, the README's common misconfiguration):
    40 scrapes within a second still signal keepalived once per min_signal_interval, no more."""

    import requests
    from helpers import write_node_config

    d = standin("unreadable")
    cfg = write_node_config(
        tmp_path / "n.yml",
        "http://127.0.0.1:1",
        keepalived={
            "source": "json",
            "pid_file": str(d / "keepalived.pid"),
            "dump_dir": str(d),
            "min_signal_interval": 5,
            "dump_timeout": 0.5,
        },
    )
    # root without the permission-override capabilities: the 0000 dump is unreadable, as for a user
    with MxhaServer("exporter", cfg, prefix=("setpriv", "--bounding-set=-dac_override,-dac_read_search")) as server:
        url = server.url
        texts = [requests.get(url + "/metrics", timeout=5).text for _ in range(40)]
        assert all(value(t, "mxha_keepalived_up") == 0 for t in texts)
        state = requests.get(url + "/state", timeout=5).json()
        assert "permission denied" in state["keepalived"]["error"]
        assert int((d / "signals").read_text()) <= 2  # one per 5 s window (the scrapes took < 5 s)


@requires_program("setpriv")
def test_the_dump_reader_itself_rate_limits_failures(tmp_path: Path, standin: Callable[..., Path]) -> None:
    """Every caller of the reader (not only the exporter's snapshot cache) gets the limit on failures."""
    d = standin("unreadable")
    code = (
        "import sys, signal\n"
        "from mxha.exporter.keepalived import SignalDumpReader, KeepalivedReadError\n"
        f"r = SignalDumpReader(pid_file='{d}/keepalived.pid', dump_dir='{d}', mode='json', min_interval=5,"
        f" timeout=0.5, json_signum={int(JSON_SIGNUM)})\n"
        "errors = []\n"
        "for _ in range(40):\n"
        "    try:\n"
        "        r.read()\n"
        "    except KeepalivedReadError as exc:\n"
        "        errors.append(str(exc))\n"
        "print(len(errors), r.signals_sent, errors[-1])\n"
    )
    proc = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    failures, signals, last = proc.stdout.split(" ", 2)
    assert failures == "40" and signals == "1" and "permission denied" in last
    assert int((d / "signals").read_text()) == 1


def test_the_notify_record_is_read_again_whenever_notify_rewrites_it(tmp_path: Path) -> None:
    """The exporter parses the record only when the file changed: a new record must never be missed."""
    from mxha.exporter.node import NotifyStateCache
    from mxha.notify_record import NotifyEntry, NotifyRecord

    path = tmp_path / "notify-state.json"
    cache = NotifyStateCache(str(path))
    assert cache.read() is None
    for i, state in enumerate(("MASTER", "BACKUP", "MASTER", "FAULT")):
        record = NotifyRecord.read(str(path))
        entry = NotifyEntry(1000.0 + i, "INSTANCE", "VI_1", state, 100, i + 1, result=f"call {i}", ok=True)
        record.add(entry)
        record.desired_passive = state != "MASTER"
        record.write(str(path))  # atomic; the cache compares bytes, not mtimes or inodes
        view = cache.read()
        assert view is not None and (view.state, view.result) == (state, f"call {i}")
        assert cache.read() == view
    path.unlink()
    assert cache.read() is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Thu, 05 Dec 2026 13:00:00 GMT", 1796475600.0),  # IMF-fixdate, as MaxScale writes activated_at
        ("Thursday, 05-Dec-26 13:00:00 GMT", 1796475600.0),  # an obsolete form
        ("Thu, 05 Dec 2026 13:00:00 +0100", 1796472000.0),
        ("Thu, 31 Feb 2026 13:00:00 GMT", None),  # no such day
        ("not a date", None),
        ("", None),
        (None, None),
        (17, None),
    ],
)
def test_http_dates_parse_to_unix_time_or_none(value: Any, expected: float | None) -> None:
    from mxha.exporter.node import _parse_http_date

    assert _parse_http_date(value) == expected


def test_a_maxscale_the_check_found_silent_does_not_hold_state(
    cfg: Path, emulator: Emulator, standin: Callable[..., Path]
) -> None:
    """A frozen MaxScale: once the check got no answer, /state waits at most 0.1 s for it (a peer's
    notify reads /state within its budget right after this node went FAULT), and says no answer."""
    from mxha.exporter.node import SILENT_MAXSCALE_TIMEOUT

    reader = make_reader(cfg, standin("good"))
    assert reader.run_check_once().silent is False
    control(emulator, "fault", {"mode": "hang"})
    t0 = time.monotonic()
    slow = reader.snapshot()
    assert slow.maxscale.error_kind == "no_answer" and time.monotonic() - t0 >= 0.5, "before any check: full wait"
    assert reader.run_check_once().silent is True
    t0 = time.monotonic()
    fast = reader.snapshot()
    assert fast.maxscale.error_kind == "no_answer"
    assert time.monotonic() - t0 < SILENT_MAXSCALE_TIMEOUT + 0.3
    control(emulator, "fault", {"mode": "none"})
    assert reader.run_check_once().silent is False
    assert reader.snapshot().maxscale.up is True


@pytest.mark.parametrize("conf", ["keepalived-primary.conf", "keepalived-backup.conf"])
def test_the_examples_lightweight_check_passes_and_fails_with_the_exporters_verdict(
    tmp_path: Path, emulator: Emulator, standin: Callable[..., Path], conf: str
) -> None:
    """The command keepalived runs for ``chk_maxscale_light`` (the example's line, its port moved to
    this exporter's): exit 0 while the exporter's cached check passes, non-zero once it fails, and
    non-zero when no exporter answers, as a vrrp_script needs."""
    text = (REPO / "examples/keepalived" / conf).read_text()
    block = re.search(r"vrrp_script chk_maxscale_light \{\n  script \"([^\"]+)\"", text)
    assert block is not None
    d = standin("good")
    cfg = write_node_config(
        tmp_path / "node.yml",
        emulator.url,
        keepalived={"pid_file": str(d / "keepalived.pid"), "dump_dir": str(d)},
        check={"interval": 0.2, "timeout": 0.5},
    )
    with MxhaServer("exporter", cfg) as server:
        argv = shlex.split(block.group(1).replace("http://127.0.0.1:9843", server.url))
        assert argv[0] in ("/usr/bin/wget", "/usr/bin/curl") and server.url + "/check" in argv

        def light() -> int:
            return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode

        deadline = time.monotonic() + 10
        while light() != 0 and time.monotonic() < deadline:  # the first check result
            time.sleep(0.1)
        assert light() == 0
        control(emulator, "fault", {"mode": "error"})
        deadline = time.monotonic() + 10
        while light() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert requests.get(server.url + "/check", timeout=2).status_code == 503
        assert light() != 0
        control(emulator, "fault", {"mode": "none"})
        server.stop()
    assert light() != 0  # no exporter: the node stops counting as healthy

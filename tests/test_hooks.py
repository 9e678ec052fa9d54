"""`mxha check` and `mxha notify` as keepalived runs them: real processes against the emulator."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import control
from helpers import write_node_config

from mxha.lab.emulator import Emulator


def run_mxha(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mxha", *args], capture_output=True, text=True, timeout=timeout)


def check(cfg: Path, *extra: str) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc = run_mxha("check", "--config.file", str(cfg), *extra)
    return proc.returncode, proc.stdout.strip(), time.monotonic() - t0


# -- check --------------------------------------------------------------------------------
def test_check_healthy(emulator: Emulator, tmp_path: Path) -> None:
    code, line, _ = check(write_node_config(tmp_path / "n.yml", emulator.url))
    assert (code, line) == (0, "OK: 2/2 expected servers listed, 2 Running")


def test_check_server_missing(emulator: Emulator, tmp_path: Path) -> None:
    cfg = write_node_config(tmp_path / "n.yml", emulator.url, check={"expected_servers": ["server1", "server3"]})
    code, line, _ = check(cfg)
    assert code == 1 and line == "FAIL: 1/2 expected servers listed; missing server3"


def test_check_all_down_is_healthy_by_default_but_not_with_require_running(emulator: Emulator, tmp_path: Path) -> None:
    control(emulator, "servers", {"server1": "Down", "server2": "Down"})
    code, line, _ = check(write_node_config(tmp_path / "a.yml", emulator.url))
    assert (code, line) == (0, "OK: 2/2 expected servers listed, 0 Running")
    cfg = write_node_config(
        tmp_path / "b.yml", emulator.url, check={"expected_servers": ["server1", "server2"], "require_running": True}
    )
    code, line, _ = check(cfg)
    assert (code, line) == (1, "FAIL: 2/2 expected servers listed but none is Running")


def test_check_bad_credentials(emulator: Emulator, tmp_path: Path) -> None:
    cfg = write_node_config(tmp_path / "n.yml", emulator.url, maxscale={"password": "wrong"})
    code, line, _ = check(cfg)
    assert code == 1 and line == "FAIL: MaxScale REST API: GET /v1/servers: HTTP 401: Access denied"
    assert "wrong" not in line


def test_check_http_500(emulator: Emulator, tmp_path: Path) -> None:
    control(emulator, "fault", {"mode": "error"})
    code, line, _ = check(write_node_config(tmp_path / "n.yml", emulator.url))
    assert code == 1 and line.startswith("FAIL: MaxScale REST API: GET /v1/servers: HTTP 500")


def test_check_hang_ends_within_timeout(emulator: Emulator, tmp_path: Path) -> None:
    control(emulator, "fault", {"mode": "hang"})
    cfg = write_node_config(
        tmp_path / "n.yml",
        emulator.url,
        check={"expected_servers": ["server1"], "timeout": 0.5},
        maxscale={"read_timeout": 30},
    )
    code, line, elapsed = check(cfg)
    assert code == 1 and "no answer within" in line
    # the check's 0.5 s ends it, not the 30 s read timeout (the margin is for a loaded machine)
    assert elapsed < 15


def test_check_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, line, _ = check(write_node_config(tmp_path / "n.yml", f"http://127.0.0.1:{port}"))
    assert code == 1 and "cannot connect" in line


def test_check_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yml"
    cfg.write_text("maxscale:\n  url: 5\n")
    code, line, _ = check(cfg)
    assert code == 2 and line == "FAIL: config error: maxscale.url: must be a non-empty string"


def test_check_leaves_no_files_behind(emulator: Emulator, tmp_path: Path) -> None:
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    work = tmp_path / "cwd"
    work.mkdir()
    subprocess.run(
        [sys.executable, "-m", "mxha", "check", "--config.file", str(cfg)], cwd=work, check=True, capture_output=True
    )
    assert list(work.iterdir()) == []


def test_check_imports_stay_lean(emulator: Emulator, tmp_path: Path) -> None:
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    probe = (
        f"import sys; from mxha.cli import main; rc = main(['check', '--config.file', {str(cfg)!r}]); "
        "heavy = [m for m in ('requests', 'flask', 'prometheus_client', 'waitress', 'urllib3') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


# -- notify -------------------------------------------------------------------------------
def notify(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_mxha("notify", "--config.file", str(cfg), *args)


def state_of(cfg: Path) -> dict[str, Any]:
    return json.loads((cfg.parent / "notify-state.json").read_text())


@pytest.mark.parametrize(
    "state,passive", [("MASTER", False), ("BACKUP", True), ("FAULT", True), ("STOP", True), ("DELETED", True)]
)
def test_notify_sets_mode_per_state(make_emulator: Any, tmp_path: Path, state: str, passive: bool) -> None:
    emulator = make_emulator(passive=not passive)
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    proc = notify(cfg, "INSTANCE", "VI_1", state, "150")
    assert proc.returncode == 0, proc.stderr
    assert control(emulator, "state")["passive"] is passive
    doc = state_of(cfg)
    assert doc["desired_passive"] is passive
    last = doc["history"][-1]
    assert (last["state"], last["priority"], last["ok"]) == (state, 150, True)
    assert f"INSTANCE VI_1 {state} 150: passive={str(passive).lower()} set" in proc.stderr


def test_notify_unknown_state_exits_1_and_changes_nothing(emulator: Emulator, tmp_path: Path) -> None:
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    proc = notify(cfg, "INSTANCE", "VI_1", "MASTER_RX_LOWER_PRI", "150")
    assert proc.returncode == 1 and "unknown state" in proc.stderr
    assert [r for r in control(emulator, "requests")["requests"] if r["method"] == "PATCH"] == []


def test_notify_unknown_type_exits_1_and_changes_nothing(emulator: Emulator, tmp_path: Path) -> None:
    # keepalived sends INSTANCE or GROUP; a hand-made call with another TYPE once set MaxScale's
    # mode and then failed with a traceback before recording it
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    proc = notify(cfg, "foo", "bar", "MASTER", "150")
    assert proc.returncode == 1 and "unknown type 'FOO' (expected INSTANCE or GROUP)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [r for r in control(emulator, "requests")["requests"] if r["method"] == "PATCH"] == []


def test_notify_is_idempotent(emulator: Emulator, tmp_path: Path) -> None:
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    for _ in range(2):
        assert notify(cfg, "INSTANCE", "VI_1", "BACKUP").returncode == 0
    assert control(emulator, "state")["passive"] is True


def test_notify_only_for_governing_instance(emulator: Emulator, tmp_path: Path) -> None:
    cfg = write_node_config(tmp_path / "n.yml", emulator.url, keepalived={"governing_instance": "VI_1"})
    proc = notify(cfg, "INSTANCE", "VI_2", "BACKUP", "100")
    assert proc.returncode == 0
    assert control(emulator, "state")["passive"] is False
    assert "not the governing instance" in state_of(cfg)["history"][-1]["result"]
    assert notify(cfg, "GROUP", "G1", "BACKUP").returncode == 0
    assert control(emulator, "state")["passive"] is False
    assert notify(cfg, "INSTANCE", "VI_1", "BACKUP", "150").returncode == 0
    assert control(emulator, "state")["passive"] is True


def test_notify_with_maxscale_down_gives_up_in_time_and_records_it(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_node_config(tmp_path / "n.yml", f"http://127.0.0.1:{port}", notify={"timeout": 1.0})
    t0 = time.monotonic()
    proc = notify(cfg, "INSTANCE", "VI_1", "MASTER", "150")
    assert time.monotonic() - t0 < 5
    assert proc.returncode == 1
    doc = state_of(cfg)
    assert doc["desired_passive"] is False  # what it should be, for the exporter and the remediator
    assert doc["history"][-1]["ok"] is False and "gave up" in doc["history"][-1]["result"]


def test_notify_retries_until_maxscale_answers(emulator: Emulator, tmp_path: Path) -> None:
    control(emulator, "fault", {"mode": "error", "duration": 0.5})
    cfg = write_node_config(tmp_path / "n.yml", emulator.url, notify={"timeout": 3.0})
    proc = notify(cfg, "INSTANCE", "VI_1", "BACKUP")
    assert proc.returncode == 0, proc.stderr
    assert control(emulator, "state")["passive"] is True
    assert "attempt" in state_of(cfg)["history"][-1]["result"]


def test_notify_releases_cooperative_locks_when_going_passive(make_emulator: Any, tmp_path: Path) -> None:
    emulator = make_emulator(lock_mode="majority_of_all")
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    assert notify(cfg, "INSTANCE", "VI_1", "BACKUP").returncode == 0
    posts = [r["path"] for r in control(emulator, "requests")["requests"] if r["method"] == "POST"]
    assert posts == ["/v1/maxscale/modules/mariadbmon/release-locks?MariaDB-Monitor"]
    st = control(emulator, "state")
    assert st["passive"] is True and st["holds_locks"] is False
    assert "locks MariaDB-Monitor: released" in state_of(cfg)["history"][-1]["result"]


def test_overlapping_notifies_newest_wins(make_emulator: Any, tmp_path: Path) -> None:
    # the MASTER call starts first but MaxScale answers it slowly; BACKUP starts later.
    emulator = make_emulator()
    cfg = write_node_config(tmp_path / "n.yml", emulator.url, notify={"timeout": 4.0}, maxscale={"read_timeout": 3.0})
    control(emulator, "fault", {"mode": "slow", "delay": 1.0})
    results: dict[str, int] = {}

    def run(state: str) -> None:
        results[state] = notify(cfg, "INSTANCE", "VI_1", state).returncode

    first = threading.Thread(target=run, args=("MASTER",))
    first.start()
    time.sleep(0.6)  # MASTER holds the lock, waiting on MaxScale
    second = threading.Thread(target=run, args=("BACKUP",))
    second.start()
    first.join()
    second.join()
    assert results == {"MASTER": 0, "BACKUP": 0}
    assert control(emulator, "state")["passive"] is True
    doc = state_of(cfg)
    assert [h["state"] for h in doc["history"]] == ["MASTER", "BACKUP"]
    assert doc["governing_state"] == "BACKUP"


def test_older_transition_never_overwrites_newer(emulator: Emulator, tmp_path: Path) -> None:
    # simulate an old call that got the lock late: the record says a newer one already ran
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    assert notify(cfg, "INSTANCE", "VI_1", "BACKUP").returncode == 0
    doc = state_of(cfg)
    from mxha.config import load_node_config
    from mxha.notify import Transition, _handle

    old = Transition("INSTANCE", "VI_1", "MASTER", 150, doc["governing_seq"] - 1_000_000)
    assert _handle(load_node_config(str(cfg)), old, time.monotonic() + 2) == 0
    assert control(emulator, "state")["passive"] is True
    assert state_of(cfg)["history"][-1]["result"] == "superseded: a newer call decides from live state; nothing done"


def test_event_a_recheck_got_ahead_of_still_names_the_governing_state(emulator: Emulator, tmp_path: Path) -> None:
    # keepalived's MASTER call waits on the lock while the check's recheck (a newer ticket) applies
    # the same live state: the call is skipped as superseded, and the record still says MASTER
    cfg = write_node_config(tmp_path / "n.yml", emulator.url)
    assert notify(cfg, "INSTANCE", "VI_1", "BACKUP").returncode == 0
    from mxha.config import load_node_config
    from mxha.notify import Transition, _handle
    from mxha.notify_record import NotifyRecord

    path = load_node_config(str(cfg)).notify.state_file
    record = NotifyRecord.read(path)
    master_ticket = record.governing_seq + 5
    record.governing_seq += 10  # the recheck that got ahead
    record.write(path)
    event = Transition("INSTANCE", "VI_1", "MASTER", 150, master_ticket)
    assert _handle(load_node_config(str(cfg)), event, time.monotonic() + 2) == 0
    doc = state_of(cfg)
    assert doc["history"][-1]["result"].startswith("superseded")
    assert doc["governing_state"] == "MASTER"
    # and an older event than the newest one seen never takes it back
    stale = Transition("INSTANCE", "VI_1", "BACKUP", 100, master_ticket - 1)
    assert _handle(load_node_config(str(cfg)), stale, time.monotonic() + 2) == 0
    assert state_of(cfg)["governing_state"] == "MASTER"


def test_hooks_in_keepalived_conf_run_as_keepalived_runs_them(emulator: Emulator, tmp_path: Path) -> None:
    """keepalived resolves a script's path (realpath) and runs it from "/": the hook line the lab
    and the tests write must work that way, which `<venv>/bin/python -m mxha` does not (the venv's
    python resolves to the base interpreter, outside the venv)."""
    import os
    import re
    import shlex

    from mxha.lab.keepalived_conf import VrrpSpec
    from mxha.lab.node import NodeSpec, installed_mxha

    spec = NodeSpec("node1", "127.0.0.1", tmp_path / "n", [VrrpSpec("VI_1", 51, 150, "198.51.100.100/24")])
    spec.hooks = installed_mxha()
    spec.write()
    cfg = spec.config_file
    cfg.write_text(cfg.read_text().replace("http://127.0.0.1:8989", emulator.url))
    conf = (spec.workdir / "keepalived.conf").read_text()
    for script in re.findall(r'^\s*(?:script|notify) "([^"]+)"', conf, re.M):
        argv = shlex.split(script)
        argv[0] = os.path.realpath(argv[0])
        if "notify" in argv:
            argv += ["INSTANCE", "VI_1", "MASTER", "150"]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # keepalived's scripts get a bare environment
        proc = subprocess.run(argv, cwd="/", env=env, capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)

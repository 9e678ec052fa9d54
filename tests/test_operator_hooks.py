"""Operator mistakes with the hooks (issue: safe in an operator's hands), over the installed console
script and, where it matters, as keepalived's unprivileged script user (``nobody`` here, through
``setpriv``):

- a hand-run ``mxha check`` changes nothing, ``--follow-up`` (keepalived's line) corrects;
- a root run leaves nothing in the script user's state directory, and the hooks keep working;
- files an older version left owned by root do not stop the script user;
- a missing state directory is one clear line, and going passive still happens;
- the exporter shows ``notify_unordered`` and ``follow_up_missing``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import control
from helpers import write_node_config

from mxha.lab.emulator import Emulator
from mxha.lab.node import installed_mxha
from mxha.lab.waiting import wait_for

ELSEWHERE = "198.51.100.250"  # an address no interface of this host has: the VIP is on another node
SCRIPT_USER = "nobody"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs hooks as another user (setpriv): needs root")


def mxha(*args: str, user: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    argv = [installed_mxha(), *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def patches(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in control(emulator, "requests")["requests"] if r["method"] == "PATCH"]


def passive(emulator: Emulator) -> bool:
    return bool(control(emulator, "state")["passive"])


def owners(directory: Path) -> dict[str, str]:
    import pwd

    return {p.name: pwd.getpwuid(p.stat().st_uid).pw_name for p in directory.iterdir()}


@pytest.fixture
def hooks_dir() -> Iterator[Path]:
    """A state directory owned by the script user, under a path every user can traverse (pytest's
    tmp_path is 0700 root)."""
    base = Path("/run") / f"mxha-test-operator-{os.getpid()}-{time.monotonic_ns()}"
    base.mkdir(mode=0o755)
    os.chmod(base, 0o755)
    state = base / "hooks"
    state.mkdir()
    if os.geteuid() == 0:
        shutil.chown(state, SCRIPT_USER, "nogroup")
    try:
        yield state
    finally:
        shutil.rmtree(base, ignore_errors=True)


def node_config(path: Path, emulator: Emulator, state_dir: Path, **sections: Any) -> Path:
    cfg = write_node_config(
        path,
        emulator.url,
        keepalived=sections.pop("keepalived", {"governing_instance": "VI_1", "vips": [ELSEWHERE]}),
        notify={"state_file": str(state_dir / "notify-state.json"), "timeout": 3.0},
        **sections,
    )
    os.chmod(cfg, 0o644)
    return cfg


# -- 1. a hand-run check only reads -------------------------------------------------------------
def test_a_hand_run_check_changes_nothing_and_the_keepalived_form_corrects(emulator: Emulator, hooks_dir: Path) -> None:
    """The VIP is elsewhere and MaxScale is active (keepalived not started yet, or the backup): a
    person's `mxha check` answers and changes nothing; keepalived's `--follow-up` makes it passive."""
    cfg = node_config(hooks_dir.parent / "node.yml", emulator, hooks_dir)
    if os.geteuid() == 0:  # a person running it as the directory's owner: still only looks
        shutil.chown(hooks_dir, "root", "root")
    for _ in range(3):
        run = mxha("check", "--config.file", str(cfg))
        assert run.returncode == 0 and run.stdout.strip() == "OK: 2/2 expected servers listed, 2 Running", run
    time.sleep(1.0)  # a recheck would have been started in the background by now
    assert patches(emulator) == [] and passive(emulator) is False
    assert list(hooks_dir.iterdir()) == []  # no marker, no lock, no record
    run = mxha("check", "--config.file", str(cfg), "--follow-up")
    assert run.returncode == 0 and "(recheck started: MaxScale passive=false but the VIP is elsewhere)" in run.stdout
    wait_for(lambda: passive(emulator), 15, "keepalived's form of the check made the backup's MaxScale passive")


def test_check_help_says_what_each_form_does() -> None:
    out = mxha("check", "--help").stdout
    assert "only" in out and "reads" in out and "--follow-up" in out and "keepalived" in out


# -- 2. a root run leaves the script user's directory alone ------------------------------------
@needs_root
def test_a_root_run_writes_nothing_and_the_script_user_keeps_working(emulator: Emulator, hooks_dir: Path) -> None:
    cfg = node_config(hooks_dir.parent / "node.yml", emulator, hooks_dir)
    # root debugging: a look, keepalived's check line, a recheck, and each kind of transition
    assert mxha("check", "--config.file", str(cfg)).returncode == 0
    run = mxha("check", "--config.file", str(cfg), "--follow-up")
    assert run.returncode == 0 and f"follow-up skipped: {hooks_dir} belongs to {SCRIPT_USER}" in run.stdout, run
    assert passive(emulator) is False  # no recheck started
    for args in (("INSTANCE", "VI_1", "MASTER", "150"), ()):
        run = mxha("notify", "--config.file", str(cfg), *args)
        assert run.returncode == 2, run
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and f"run this as {SCRIPT_USER}" in lines[0] and "nothing done" in lines[0], lines
        assert "Traceback" not in run.stderr
    assert patches(emulator) == []
    # going passive is never blocked: applied from live state (the VIP is not here), nothing recorded
    run = mxha("notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "BACKUP", "100")
    assert run.returncode == 0, run
    assert "passive=true set" in run.stderr and "not recorded" in run.stderr and SCRIPT_USER in run.stderr
    assert passive(emulator) is True
    assert list(hooks_dir.iterdir()) == []
    # then keepalived, as its script user: every hook works, and a BACKUP still ends passive
    control(emulator, "maxscale", {"passive": False})
    run = mxha("check", "--config.file", str(cfg), "--follow-up", user=SCRIPT_USER)
    assert run.returncode == 0 and "skipped" not in run.stdout, run
    # the recheck the follow-up starts, run here in the foreground: this sandbox's interpreter lives
    # under /root (0700), which `nobody` may exec only as setpriv's own command, not from a child
    run = mxha("notify", "--config.file", str(cfg), user=SCRIPT_USER)
    assert run.returncode == 0 and passive(emulator) is True, run
    control(emulator, "maxscale", {"passive": False})
    run = mxha("notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "BACKUP", "100", user=SCRIPT_USER)
    assert run.returncode == 0, run
    assert passive(emulator) is True
    made = owners(hooks_dir)
    assert "notify-state.json" in made and set(made.values()) == {SCRIPT_USER}, made
    record = hooks_dir / "notify-state.json"
    assert record.stat().st_mode & 0o044 == 0o044  # the exporter, another user, reads it
    history = json.loads(record.read_text())["history"]
    assert history[-1]["state"] == "BACKUP" and history[-1]["ok"] is True


@needs_root
def test_files_an_older_version_left_owned_by_root_do_not_stop_the_script_user(
    emulator: Emulator, hooks_dir: Path
) -> None:
    """Before this rule, one root run left the lock and ticket 0644 root in the directory: every later
    notify of the script user failed with PermissionError, and a BACKUP left its MaxScale active."""
    cfg = node_config(hooks_dir.parent / "node.yml", emulator, hooks_dir)
    for name, text in (("notify-state.json.lock", ""), ("notify-state.json.lock.ticket", f"{time.time_ns():020d}\n")):
        (hooks_dir / name).write_text(text)
        os.chmod(hooks_dir / name, 0o644)  # root's, as an older version's root run left them
    run = mxha("notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "BACKUP", "100", user=SCRIPT_USER)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run
    assert passive(emulator) is True
    assert set(owners(hooks_dir).values()) == {SCRIPT_USER}
    history = json.loads((hooks_dir / "notify-state.json").read_text())["history"]
    assert history[-1]["state"] == "BACKUP" and history[-1]["ok"] is True


@needs_root
def test_a_lock_held_too_long_does_not_block_going_passive(emulator: Emulator, hooks_dir: Path) -> None:
    """Another notify (stuck) holds the lock: a BACKUP still makes this MaxScale passive, from live state."""
    import fcntl

    cfg = node_config(hooks_dir.parent / "node.yml", emulator, hooks_dir)
    lock = hooks_dir / "notify-state.json.lock"
    lock.touch()
    shutil.chown(lock, SCRIPT_USER, "nogroup")
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        run = mxha("notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "BACKUP", "100", user=SCRIPT_USER)
        assert run.returncode == 0, run
        assert passive(emulator) is True
        control(emulator, "maxscale", {"passive": True})
        run = mxha("notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "MASTER", "150", user=SCRIPT_USER)
        assert run.returncode == 1 and passive(emulator) is True  # going active needs the lock: it orders calls


def test_a_missing_state_directory_is_one_line_and_going_passive_still_happens(
    emulator: Emulator, tmp_path: Path
) -> None:
    missing = tmp_path / "not-created"
    cfg = node_config(tmp_path / "node.yml", emulator, missing)
    run = mxha("notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "BACKUP", "100")
    assert run.returncode == 0 and passive(emulator) is True, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"state directory {missing} is missing" in lines[0] and "install -d" in lines[0]
    control(emulator, "maxscale", {"passive": False})
    run = mxha("notify", "--config.file", str(cfg), "INSTANCE", "VI_1", "MASTER", "150")
    assert run.returncode == 2 and "is missing" in run.stderr and "Traceback" not in run.stderr
    assert not missing.exists()  # the hook does not create it (as root it would be root's)
    run = mxha("check", "--config.file", str(cfg), "--follow-up")
    assert run.returncode == 0 and "follow-up skipped" in run.stdout and not missing.exists()


# -- 10. setups nobody is told about ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def exporter_for(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(cfg: Path) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [installed_mxha(), "exporter", "--config.file", str(cfg), "--web.listen-address", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(url + "/healthz", timeout=1).status_code < 500, 20, "the exporter")
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def hazards(url: str) -> tuple[dict[str, str], str]:
    state = requests.get(url + "/state", timeout=5).json()
    metrics = requests.get(url + "/metrics", timeout=5).text
    return {h["hazard"]: h["severity"] for h in state["hazards"]}, metrics


def test_the_exporter_shows_a_setup_without_vips_as_notify_unordered(
    emulator: Emulator, tmp_path: Path, exporter_for: Any
) -> None:
    cfg = node_config(tmp_path / "node.yml", emulator, tmp_path, keepalived={"pid_file": str(tmp_path / "none.pid")})
    url = exporter_for(cfg)
    found, metrics = hazards(url)
    assert found == {"notify_unordered": "warning"}
    assert 'mxha_setup_hazard{hazard="notify_unordered",severity="warning"} 1.0' in metrics


def test_the_exporter_shows_a_host_whose_check_has_no_follow_up(
    emulator: Emulator, tmp_path: Path, exporter_for: Any
) -> None:
    """An upgraded host whose keepalived line has no --follow-up: the marker stops moving."""
    cfg = node_config(
        tmp_path / "node.yml",
        emulator,
        tmp_path,
        keepalived={"pid_file": str(tmp_path / "none.pid"), "vips": ["127.0.0.1"], "min_signal_interval": 0.1},
    )
    marker = tmp_path / "notify-state.json.follow-up"
    marker.touch()
    os.utime(marker, (time.time() - 120, time.time() - 120))  # the last follow-up, two minutes ago
    url = exporter_for(cfg)
    found, metrics = hazards(url)
    assert found == {"follow_up_missing": "warning"}
    assert 'mxha_setup_hazard{hazard="follow_up_missing",severity="warning"} 1.0' in metrics
    assert mxha("check", "--config.file", str(cfg)).returncode == 0  # a person's check is not keepalived's
    time.sleep(0.2)
    assert hazards(url)[0] == {"follow_up_missing": "warning"}
    assert mxha("check", "--config.file", str(cfg), "--follow-up").returncode == 0
    wait_for(lambda: hazards(url)[0] == {}, 5, "the hazard gone once keepalived's form of the check ran")


def test_the_lightweight_check_never_prints_credentials_in_its_url(emulator: Emulator, tmp_path: Path) -> None:
    cfg = node_config(tmp_path / "node.yml", emulator, tmp_path)
    run = mxha("check", "--config.file", str(cfg), "--via", f"http://probe:s3cr3t-pw@127.0.0.1:{free_port()}/check")
    assert run.returncode == 1 and "unreachable" in run.stdout, run
    assert "s3cr3t-pw" not in run.stdout + run.stderr


@needs_root
def test_calls_racing_to_replace_a_root_leftover_lock_still_exclude_each_other(hooks_dir: Path) -> None:
    """Several notify calls of the script user meet a lock file left 0644 root: each may replace it,
    and each that locked a file since replaced must lock again. Otherwise two hold "the" lock at once
    (a review reproduced it) and an older MASTER write can land after a newer BACKUP one."""
    import sys

    lock = hooks_dir / "notify-state.json.lock"
    log = hooks_dir / "held.log"
    go = hooks_dir / "go"
    child = (
        "import os, sys, time\n"
        "from mxha.notify import acquire_lock\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.001)\n"
        f"fd = acquire_lock({str(lock)!r}, time.monotonic() + 30)\n"
        f"with open({str(log)!r}, 'a') as fh: fh.write(f'in {{time.monotonic()}}\\n')\n"
        "time.sleep(0.05)\n"
        f"with open({str(log)!r}, 'a') as fh: fh.write(f'out {{time.monotonic()}}\\n')\n"
        "os.close(fd)\n"
    )
    for round_ in range(8):
        lock.write_text("")
        os.chmod(lock, 0o644)  # root's: a leftover of an older version's root run
        log.unlink(missing_ok=True)
        go.unlink(missing_ok=True)
        procs = [
            subprocess.Popen(
                ["setpriv", f"--reuid={SCRIPT_USER}", "--regid=nogroup", "--clear-groups", sys.executable, "-c", child],
                cwd="/",
            )
            for _ in range(6)
        ]
        time.sleep(0.6)  # every child waiting for the start
        go.touch()
        assert all(p.wait(60) == 0 for p in procs)
        events = [line.split() for line in log.read_text().splitlines()]
        depth = 0
        for kind, _ in events:  # appended in order: an "in" while another holds the lock is a second holder
            depth += 1 if kind == "in" else -1
            assert depth <= 1, f"round {round_}: two calls held the lock at once: {events}"
        assert len(events) == 12

"""The container image, built from this checkout with podman and run: the CLI, the exporter reading an
emulator over the host network, the remediator, the image's own health check, and what the image
must not hold (the lab, the emulator, the tests).

No registry is needed: the Dockerfile's base (its BASE_IMAGE argument) is a Debian bookworm made
here from Debian's packages with debootstrap and kept in podman's storage under a name that changes
with its recipe. podman keeps the image's layers too, so a second run rebuilds only what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import ALERTMANAGER_FIXTURES, REPO
from helpers import free_port

import mxha
from mxha.lab.emulator import Emulator

pytestmark = pytest.mark.slow

# Debian's runc and cgroupfs: crun cannot set rlimits in every sandbox, and not every host has
# systemd to manage cgroups. With podman's default ulimits off (CONTAINERS_CONF below) runc runs too.
PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs")
CONTAINERS_CONF = "[containers]\ndefault_ulimits = []\n"

BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What Debian's slim images leave out too: package caches and lists, documentation, translations.
BASE_PRUNED = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")
BASE_RECIPE = json.dumps([BASE_SUITE, BASE_PACKAGES, DEBIAN_MIRROR, BASE_PRUNED])
BASE_IMAGE = f"localhost/mxha-test-base:{BASE_SUITE}-{hashlib.sha256(BASE_RECIPE.encode()).hexdigest()[:12]}"

IMAGE = "localhost/maxscale-ha:test"
IMAGE_LABEL = "io.github.maxscale-ha.test"  # marks this test's builds, so it prunes only its own
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # pip reaches PyPI only through it on some hosts


class Podman:
    """podman with this test's runtime flags and containers.conf (the machine's own stay untouched)."""

    def __init__(self, conf: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120, stdin: Any = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*PODMAN, *args], capture_output=True, text=True, env=self.env, timeout=timeout, stdin=stdin, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args[:3])}: exit {proc.returncode}\n{(proc.stdout + proc.stderr)[-3000:]}"
            )
        return proc


def _missing(program: str) -> None:
    """A program make test installs: as root (CI) its absence is a failure, otherwise a skip."""
    message = f"{program} is not installed: ./scripts/install-deps.sh installs it (make test runs it as root)"
    if os.geteuid() == 0:
        pytest.fail(message)
    pytest.skip(message)


def _build_base(podman: Podman, workdir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"no {BASE_IMAGE} yet, and building it needs root (debootstrap)")
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        _missing("debootstrap")
    root = workdir / "rootfs"
    proc = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE,
            str(root),
            DEBIAN_MIRROR,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"debootstrap failed:\n{(proc.stdout + proc.stderr)[-3000:]}"
    for pruned in BASE_PRUNED:
        # find does not follow the root file system's absolute symlinks out to the host's files
        subprocess.run(["find", str(root / pruned), "-mindepth", "1", "-delete"], check=True)
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    try:
        podman("import", "-", BASE_IMAGE, stdin=tar.stdout, timeout=300)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        assert tar.wait(timeout=60) == 0
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    """podman that can run containers, and the base image. Skips where podman cannot run any (or,
    without root, where the base cannot be built); as root, a program missing is a failure."""
    for program in ("podman", "runc"):
        if shutil.which(program) is None:
            _missing(program)
    workdir = tmp_path_factory.mktemp("podman")
    (workdir / "containers.conf").write_text(CONTAINERS_CONF)
    podman = Podman(workdir / "containers.conf")
    info = podman("info", check=False)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {info.stderr.strip()[-500:]}")
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        _build_base(podman, workdir)
    probe = podman("run", "--rm", "--network", "none", BASE_IMAGE, "true", check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run containers here: {probe.stderr.strip()[-500:]}")
    return podman


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image built from this checkout, exactly as the Dockerfile says, on the cached base."""
    # This test's earlier builds that nothing names any more: only those an hour old, so that a
    # concurrent run's image (used by id) is not removed under it
    podman("image", "prune", "--force", "--filter", f"label={IMAGE_LABEL}", "--filter", "until=1h", check=False)
    iid = tmp_path_factory.mktemp("image") / "iid"
    ca: list[str] = []
    if HOST_CA.exists():
        ca = ["--volume", f"{HOST_CA.parent}:{HOST_CA.parent}:ro", "--build-arg", f"PIP_CERT={HOST_CA}"]
    build = [
        "build",
        "--pull=never",
        "--format=docker",  # the OCI format has no HEALTHCHECK: podman would drop it
        "--network=host",  # pip fetches the dependencies' wheels from PyPI
        *ca,
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "--label",
        f"{IMAGE_LABEL}=1",
    ]
    # The build stage gets a name of its own: the prune above keeps named images and their layers,
    # so the dependencies' wheels stay cached (the second build reuses every layer of this one)
    podman(*build, "--target", "build", "--tag", f"{IMAGE}-build", str(REPO), timeout=900)
    podman(*build, "--iidfile", str(iid), "--tag", IMAGE, str(REPO), timeout=900)
    return iid.read_text().strip()  # by id: a concurrent run may move the tag


def healthcheck_command(podman: Podman, image: str) -> list[str]:
    test = json.loads(podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image).stdout)["Test"]
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]


class Containers:
    """Containers this test starts, each removed by name at teardown whatever happened."""

    def __init__(self, podman: Podman, image: str) -> None:
        self.podman = podman
        self.image = image
        self.names: list[str] = []

    def name(self, role: str) -> str:
        name = f"mxha-test-{role}-{os.getpid()}-{secrets.token_hex(3)}"
        self.names.append(name)
        return name

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """One command in a fresh container, named so that teardown removes it even when it hangs
        (a ``mxha emulator`` that exists in the image serves until stopped)."""
        name = self.name("run")
        try:
            # no network needed, and none asked for: no bridge, no firewall rules on the host
            run = ("run", "--rm", "--no-healthcheck", "--network=none", "--name", name)
            return self.podman(*run, *args, check=check, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"podman run {' '.join(args)}: still running after 60 s")

    def start(self, role: str, config_dir: Path, port: int, *args: str) -> str:
        name = self.name(role)
        self.podman(
            "run",
            "--detach",
            "--name",
            name,
            "--network=host",
            "--volume",
            f"{config_dir}:/etc/mxha:ro",
            "--env",
            f"MXHA_HEALTH_PORT={port}",
            self.image,
            role,
            "--config.file",
            f"/etc/mxha/{role}.yml",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            *args,
        )
        self.wait_healthy(name, port)
        return name

    def wait_healthy(self, name: str, port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            running = self.podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            if running != "true":
                break
            time.sleep(0.2)
        logs = self.podman("logs", name, check=False)
        pytest.fail(f"{name} never answered /healthz on 127.0.0.1:{port}:\n{logs.stdout}{logs.stderr}")

    def remove_all(self) -> None:
        for name in self.names:
            self.podman("rm", "--force", "--time", "0", name, check=False)


@pytest.fixture
def containers(podman: Podman, image: str) -> Iterator[Containers]:
    started = Containers(podman, image)
    try:
        yield started
    finally:
        started.remove_all()


def config_dir(path: Path, files: dict[str, str]) -> Path:
    """A directory to mount as /etc/mxha, readable by the image's user (10001), not only by root."""
    path.mkdir()
    path.chmod(0o755)
    for name, text in files.items():
        (path / name).write_text(text)
        (path / name).chmod(0o644)
    return path


def assert_health_check_passes(podman: Podman, image: str, name: str) -> None:
    proc = podman("healthcheck", "run", name, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the same command aimed at a port nothing listens on fails: the check asks, it does not just exit 0
    closed = podman(
        "exec", "--env", f"MXHA_HEALTH_PORT={free_port()}", name, *healthcheck_command(podman, image), check=False
    )
    assert closed.returncode != 0


def poll(read: Callable[[], Any], done: Callable[[Any], bool], seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
    return value


def test_the_cli_runs_in_the_image(image: str, containers: Containers) -> None:
    assert containers.run(image, "--version").stdout.strip() == f"mxha {mxha.__version__}"
    columns = {**os.environ, "COLUMNS": "100"}
    host = subprocess.run(
        [sys.executable, "-m", "mxha", "--help"], capture_output=True, text=True, env=columns, check=True
    )
    assert containers.run("--env", "COLUMNS=100", image, "--help").stdout == host.stdout


def test_the_image_holds_no_lab_emulator_or_tests(image: str, containers: Containers) -> None:
    for command in (["emulator", "--web.listen-address", "127.0.0.1:0"], ["lab", "status"]):
        proc = containers.run(image, *command, check=False)
        assert proc.returncode == 2 and "not in this installation" in proc.stderr, proc.stderr
    # Every non-empty file of the checkout's lab/ and tests/, looked for by content anywhere in the
    # image (wherever a COPY might have put it), and the package's own folder by name
    ours = {
        hashlib.sha256(f.read_bytes()).hexdigest(): str(f.relative_to(REPO))
        for folder in ("lab", "tests")
        for f in (REPO / folder).rglob("*")
        if f.is_file() and "__pycache__" not in f.parts and f.stat().st_size > 0
    }
    probe = """
import hashlib, importlib.util, json, os, sys
import mxha
ours = set(json.loads(sys.argv[1]))
found = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    for name in files:
        path = os.path.join(top, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() in ours:
                    found.append(path)
package = os.path.dirname(mxha.__file__)
found += [os.path.join(top, d) for top, dirs, _ in os.walk(package) for d in dirs if d in ("lab", "emulator", "tests")]
print(json.dumps({"lab": importlib.util.find_spec("mxha.lab") is not None, "package": package, "found": found}))
"""
    # a canary the walk must find, so an empty answer means "none there", not "never looked"
    canary = hashlib.sha256((REPO / "mxha/cli.py").read_bytes()).hexdigest()
    wanted = json.dumps([*ours, canary])
    # as root, to read every file (the image's user cannot read /etc/shadow and the like)
    proc = containers.run("--user", "0", "--entrypoint", "python3", image, "-c", probe, wanted)
    seen = json.loads(proc.stdout)
    assert seen["lab"] is False and seen["package"].startswith("/opt/mxha/lib/"), seen
    assert seen["found"] == [f"{seen['package']}/cli.py"], seen["found"]


def test_the_exporter_reads_an_emulator_over_the_host_network(
    podman: Podman, image: str, containers: Containers, emulator: Emulator, tmp_path: Path
) -> None:
    node = {
        "node": "image-test",
        "maxscale": {"url": emulator.url, "password_file": "/etc/mxha/maxscale.password"},
        "check": {"expected_servers": ["server1", "server2"]},
    }
    conf = config_dir(tmp_path / "etc", {"exporter.yml": yaml.safe_dump(node), "maxscale.password": "mariadb\n"})
    port = free_port()
    name = containers.start("exporter", conf, port)
    url = f"http://127.0.0.1:{port}"

    state = poll(lambda: requests.get(f"{url}/state", timeout=5).json(), lambda s: bool(s["check"]["checked_at"]))
    assert state["node"] == "image-test"
    assert state["maxscale"]["up"] is True and state["maxscale"]["version"] == emulator.config.version
    assert state["check"]["success"] is True, state["check"]
    metrics = requests.get(f"{url}/metrics", timeout=5).text
    assert re.search(r"^mxha_maxscale_up 1\.0$", metrics, re.M), metrics[:2000]
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200

    status = podman("exec", name, "cat", "/proc/1/status").stdout
    assert re.search(r"^Uid:\s+10001\s+10001\s+10001\s+10001$", status, re.M), status
    assert_health_check_passes(podman, image, name)


def test_the_remediator_refuses_an_unauthenticated_webhook(
    podman: Podman, image: str, containers: Containers, emulator: Emulator, tmp_path: Path
) -> None:
    token = secrets.token_hex(16)
    remediator = {
        "dry_run": True,
        "audit_log": "/var/lib/mxha-remediator/audit.jsonl",  # the example config's: the image makes it writable
        "auth": {"bearer_token_file": "/etc/mxha/webhook.token"},
        "clusters": {
            "mx-image": {
                "nodes": [
                    {
                        "name": "maxscale1",
                        "state_url": f"http://127.0.0.1:{free_port()}/state",
                        "maxscale": {"url": emulator.url, "password_file": "/etc/mxha/maxscale.password"},
                    }
                ]
            }
        },
    }
    files = {
        "remediator.yml": yaml.safe_dump(remediator),
        "webhook.token": token + "\n",
        "maxscale.password": "mariadb\n",
    }
    conf = config_dir(tmp_path / "etc", files)
    port = free_port()
    name = containers.start("remediator", conf, port)
    url = f"http://127.0.0.1:{port}"

    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    body = (ALERTMANAGER_FIXTURES / "webhook-1.body").read_bytes()  # a real Alertmanager's, for cluster mx-prod
    json_type = {"Content-Type": "application/json"}
    assert requests.post(f"{url}/webhook", data=body, headers=json_type, timeout=10).status_code == 401
    wrong = {**json_type, "Authorization": "Bearer not-the-token"}
    assert requests.post(f"{url}/webhook", data=body, headers=wrong, timeout=10).status_code == 401
    # the token gets the same body through: the 401s were about credentials (mx-prod is not ours: ignored)
    right = {**json_type, "Authorization": f"Bearer {token}"}
    answer = requests.post(f"{url}/webhook", data=body, headers=right, timeout=10)
    assert answer.status_code == 200 and answer.json()["ignored_alerts"] == 1, answer.text

    assert podman("exec", name, "test", "-f", "/var/lib/mxha-remediator/audit.jsonl", check=False).returncode == 0
    assert_health_check_passes(podman, image, name)

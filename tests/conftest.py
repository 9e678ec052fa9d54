"""Shared test fixtures: real local servers first (the MaxScale emulator over HTTP)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mxha.lab.emulator import Emulator, EmulatorConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MXHA_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
MAXSCALE_FIXTURES = FIXTURES / "maxscale-24.02.4"
KEEPALIVED_FIXTURES = FIXTURES / "keepalived-2.2.7"
ALERTMANAGER_FIXTURES = FIXTURES / "alertmanager-0.25"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((MAXSCALE_FIXTURES / name).read_text())


@pytest.fixture
def make_emulator(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """Start MaxScale emulators on loopback (ephemeral ports); all stopped at teardown."""
    started: list[Emulator] = []

    def factory(**kwargs: Any) -> Emulator:
        kwargs.setdefault("port", 0)
        emulator = Emulator(EmulatorConfig(**kwargs))
        emulator.start()
        started.append(emulator)
        return emulator

    yield factory
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator()


def control(emulator: Emulator, what: str, payload: dict[str, Any] | None = None) -> Any:
    """Use the emulator's control API over HTTP, as the lab does."""
    import requests

    if payload is None:
        return requests.get(f"{emulator.url}/__emulator__/{what}", timeout=5).json()
    resp = requests.post(f"{emulator.url}/__emulator__/{what}", json=payload, timeout=5)
    resp.raise_for_status()
    return resp.json()


def requires_program(*names: str) -> pytest.MarkDecorator:
    missing = [n for n in names if shutil.which(n) is None and not Path("/usr/sbin", n).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (make test installs it)")


def root_and_netns() -> str | None:
    """Why namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"ip netns unavailable: {probe.stderr.strip()}"
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite tests/golden/* from what the code produces now"
    )


LAB_MODULES = ("test_lab_e2e.py",)  # `mxha lab up` with its default names, on LAB_SUBNET (tests/pair.py)


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which turns the group into the test's id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test`` runs ``-n 3 --dist loadgroup``) the tests that use network
    namespaces run in two groups, each one test after the other in one worker, in collection order
    (a module's lab is brought up once): the emulator lab's (``mxha lab up`` with its default
    namespace names) on 198.51.100.0/25, and the rest on 198.51.100.128/25 (``tests/pair.py``): the
    tests that build their own harness, and the stand-in lab (``lab up --prefix mxhm``). The two
    groups never share a name, an address or a host route. The container
    image's tests share podman's build cache, the replicas' tests one lock store: one worker each."""
    for item in items:
        if item.get_closest_marker("netns") is not None:
            group = "lab" if item.path.name in LAB_MODULES else "netns"
            item.add_marker(pytest.mark.xdist_group(group))
        elif item.path.name == "test_image.py":
            item.add_marker(pytest.mark.xdist_group("image"))
        elif item.path.name == "test_remediator_replicas.py":  # one lock store (3 mariadbd), not one per worker
            item.add_marker(pytest.mark.xdist_group("lock-store"))


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Compare text with tests/golden/NAME; with --update-golden, write it instead."""

    def check(name: str, text: str) -> None:
        path = REPO / "tests" / "golden" / name
        if request.config.getoption("--update-golden"):
            path.write_text(text)
            return
        assert path.exists(), f"no golden file {path}: run pytest --update-golden and review the diff"
        assert text == path.read_text(), f"{name} changed: if on purpose, run pytest --update-golden"

    return check

"""What the benchmarks measure with, in one place: percentiles, a process's CPU and RSS from /proc."""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads_cpu_seconds(pid: int) -> float:
    """CPU of a process's living threads in nanoseconds' resolution (``/proc/PID/task/*/schedstat``),
    where ``cpu_seconds`` counts clock ticks (10 ms): a few seconds of an idle exporter are a tick or
    two, which made its background CPU read as 0 or 4 ms/s from one run to the next. Threads that
    ended are not counted: for a server whose threads live as long as it does."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return total / 1e9


SYSTEM_PYTHON = "/usr/bin/python3"  # what the README's first hour makes its venv with (Debian's python3-venv)


def system_python() -> str | None:
    """The distribution's python3 when it is this interpreter's minor version (the wheel and the
    dependencies' compiled modules then load in it), else None. Users on Debian 12 run the hooks on
    it: a build with profile-guided and link-time optimisation, where an interpreter built from
    source (pyenv's default) has neither and starts and imports about a tenth slower."""
    if not os.access(SYSTEM_PYTHON, os.X_OK) or os.path.realpath(SYSTEM_PYTHON) == os.path.realpath(sys.executable):
        return None
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, check=False
    )
    return SYSTEM_PYTHON if probe.stdout.strip() == str(sys.version_info[:2]) else None


def python_label(python: str) -> str:
    """``/usr/bin/python3.11 3.11.2``: which interpreter a row ran on (a venv's python is a link)."""
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"{os.path.realpath(python)} {version}"


def user_install(work: Path, python: str | None = None, venv_name: str = "venv") -> Path:
    """This tree installed as users install it (a wheel, in a venv of its own, ``work/venv_name``,
    made by ``python``, this interpreter by default); return its ``mxha`` console script. `make`'s
    .venv is an editable install, whose import hook (and the pathlib it imports) adds about 0.3 MiB
    to every process: a user never pays that, so the bench should not. The dependencies come from
    the running interpreter's site-packages (a .pth line), so nothing is downloaded; the tree is
    copied first so that no stale build/ of the repo gets into the wheel. The copy and the wheel are
    made once per ``work``: several venvs (one per interpreter) install the same wheel."""
    src, venv, wheels = work / "src", work / venv_name, work / "wheel"
    skip = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "lab-out", "out")
    if not src.exists():
        shutil.copytree(REPO, src, ignore=skip)
    subprocess.run([python or sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    if not wheels.exists():
        subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], check=True)
    wheel = next(wheels.glob("*.whl"))
    venv_python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(venv_python), "install", "--no-deps", "--no-index", str(wheel)], check=True)
    purelib = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "mxha-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "mxha"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# Prometheus's own scrape request (2.45): what the exporter answers in production. Prometheus asks
# for OpenMetrics first and accepts gzip, which makes prometheus_client compress.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


class Scraper:
    """A scraper sending Prometheus's request headers; http.client reads each answer to its last byte.
    ``keep_alive``: one connection for every scrape, as Prometheus keeps them; otherwise a new
    connection per scrape, timed from the connect. (http.client's parsing adds a tenth of a
    millisecond or so of this process's CPU to each figure: nothing next to the budgets.)"""

    def __init__(self, host: str, port: int, keep_alive: bool, timeout: float = 5.0) -> None:
        self.address = (host, port)
        self.keep_alive = keep_alive
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def headers(self) -> dict[str, str]:
        return {
            "User-Agent": "Prometheus/2.45.3",
            "Accept": PROMETHEUS_ACCEPT,
            "Accept-Encoding": "gzip",
            "X-Prometheus-Scrape-Timeout-Seconds": "10",
            **({} if self.keep_alive else {"Connection": "close"}),
        }

    def scrape(self, path: str = "/metrics") -> tuple[float, int, dict[str, str], bytes]:
        """(milliseconds from connect or send to the last byte, status, headers, the body as sent)."""
        started = time.perf_counter()
        if self.conn is None:
            self.conn = http.client.HTTPConnection(*self.address, timeout=self.timeout)
            self.conn.connect()
            assert self.conn.sock is not None
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn.request("GET", path, headers=self.headers())
        answer = self.conn.getresponse()
        body = answer.read()
        elapsed = (time.perf_counter() - started) * 1000
        headers = {name.lower(): value for name, value in answer.getheaders()}
        if not self.keep_alive or answer.will_close:
            self.close()
        return elapsed, answer.status, headers, body

    def text(self, path: str = "/metrics") -> str:
        _, _, headers, body = self.scrape(path)
        return (gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body).decode()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

"""How the remediator changes a MaxScale's mode: the REST API (default) or the user's maxctrl.

The maxctrl driver runs an argument list (never a shell), with ONE host per call (a host
list would act on every host listed), the password on standard input (``-p ''``: a password
on the command line is visible to every user in /proc), and a timeout.
"""

from __future__ import annotations

import subprocess
import time
from typing import Protocol
from urllib.parse import urlsplit

from mxha.maxscale import MaxScaleClient, MaxScaleError, release_outcome
from mxha.remediator.config import NodeSettings


class DriverError(RuntimeError):
    """A change that did not give its answer. ``may_land``: it was sent and no answer came, so
    MaxScale may have applied it, or may still apply it later (no fencing token exists in its REST
    API); otherwise it is known not to have been applied (refused, or answered with an error)."""

    def __init__(self, message: str, *, may_land: bool = False) -> None:
        super().__init__(message)
        self.may_land = may_land


class Driver(Protocol):
    def set_passive(self, passive: bool, deadline: float) -> None: ...

    def release_locks(self, monitor: str, deadline: float) -> str: ...


class RestDriver:
    def __init__(self, client: MaxScaleClient) -> None:
        self.client = client

    def set_passive(self, passive: bool, deadline: float) -> None:
        try:
            self.client.set_passive(passive, deadline=deadline)
        except MaxScaleError as exc:
            raise DriverError(str(exc), may_land=exc.sent and exc.status is None) from exc

    def release_locks(self, monitor: str, deadline: float) -> str:
        try:
            return self.client.release_locks(monitor, deadline=deadline)
        except MaxScaleError as exc:
            raise DriverError(str(exc)) from exc


class MaxctrlDriver:
    def __init__(self, node: NodeSettings) -> None:
        self.node = node
        parts = urlsplit(node.maxscale.url)
        host = parts.hostname or ""
        # maxctrl -h takes HOST:PORT; an IPv6 address keeps its brackets, or the port is lost in it
        self.hostport = f"[{host}]:{parts.port or 8989}" if ":" in host else f"{host}:{parts.port or 8989}"
        self.secure = parts.scheme == "https"

    def argv(self, *command: str) -> list[str]:
        ms = self.node.maxscale
        argv = [
            self.node.maxctrl_path,
            "-h",
            self.hostport,
            "-u",
            ms.user,
            "-p",
            "",
            "-t",
            str(int(self.node.maxctrl_timeout * 1000)),
        ]
        if self.secure:
            argv.append("--secure")
            if ms.ca_file:
                argv += ["--tls-ca-cert", ms.ca_file]
            if ms.insecure_skip_verify:
                argv.append("--tls-verify-server-cert=false")
        return [*argv, *command]

    def _run(self, deadline: float, *command: str) -> str:
        argv = self.argv(*command)
        timeout = min(self.node.maxctrl_timeout + 1.0, deadline - time.monotonic())
        if timeout <= 0:
            raise DriverError(f"maxctrl {' '.join(command)}: the request budget was spent")
        try:
            proc = subprocess.run(
                argv,
                input=(self.node.maxscale.password or "") + "\n",
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise DriverError(f"maxctrl not found at {self.node.maxctrl_path}") from exc
        except subprocess.TimeoutExpired as exc:
            # maxctrl may have sent the request before it was stopped
            raise DriverError(f"maxctrl {' '.join(command)} timed out", may_land=True) from exc
        if proc.returncode != 0:
            detail = " ".join((proc.stderr.strip() or proc.stdout.strip()).split())[:500]
            # its own -t timeout (an HTTP client timeout inside maxctrl): the request may have been sent
            raise DriverError(
                f"maxctrl {' '.join(command)} exited {proc.returncode}: {detail}", may_land="timeout" in detail.lower()
            )
        return proc.stdout.strip()

    def set_passive(self, passive: bool, deadline: float) -> None:
        out = self._run(deadline, "alter", "maxscale", "passive", "true" if passive else "false")
        if "OK" not in out:
            raise DriverError(f"maxctrl alter maxscale passive: unexpected output {out[:200]!r}")

    def release_locks(self, monitor: str, deadline: float) -> str:
        try:
            self._run(deadline, "call", "command", "mariadbmon", "release-locks", monitor)
        except DriverError as exc:
            outcome = release_outcome(str(exc))
            if outcome is not None:
                return outcome
            raise
        return "released"


def make_driver(node: NodeSettings) -> Driver:
    if node.driver == "maxctrl":
        return MaxctrlDriver(node)
    return RestDriver(node.maxscale.client())

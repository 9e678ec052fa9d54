"""The seed tutorial's own notify script, read from the tutorial itself (``../shared/seed/``), for
the lab's baseline scenario. Two substitutions, both printed by the scenario: its output file moves
into the lab folder (it writes ``/home/user/state.txt``), and ``maxctrl`` becomes the lab's
maxctrl-compatible command (``mxha lab maxctrl``) pointed at the node's MaxScale."""

from __future__ import annotations

import os
import re
from pathlib import Path

SEED_NAME = "maxscale-failover-with-keepalived-and-maxctrl.md"


class SeedNotFound(FileNotFoundError):
    pass


def seed_file() -> Path:
    """``$MXHA_SEED_DIR``, else ``shared/seed`` beside the checkout or the working directory."""
    here = Path(__file__).resolve()
    candidates = [Path(os.environ["MXHA_SEED_DIR"])] if os.environ.get("MXHA_SEED_DIR") else []
    candidates += [p / "shared" / "seed" for p in (here.parents[1].parent, Path.cwd().parent, Path.cwd())]
    for folder in candidates:
        if (folder / SEED_NAME).exists():
            return folder / SEED_NAME
    raise SeedNotFound(f"{SEED_NAME} not found (looked in {', '.join(str(c) for c in candidates)}; set MXHA_SEED_DIR)")


def tutorial_notify_script(
    maxctrl: str, outfile: str, text: str | None = None, release_on_backup: str | None = None
) -> str:
    """The tutorial's notify script with ``maxctrl`` and ``OUTFILE`` replaced. ``release_on_backup``
    (a monitor name): the variant MariaDB's newer tutorial describes for cooperative locks, which
    adds ``maxctrl call command mariadbmon release-locks MONITOR`` to the BACKUP branch."""
    text = seed_file().read_text() if text is None else text
    blocks = re.findall(r"```[a-z]*\n(#!/bin/bash\n.*?)```", text, re.S)
    script = next((b for b in blocks if "maxctrl alter maxscale passive" in b and "STATE=$3" in b), None)
    if script is None:
        raise SeedNotFound("the tutorial's notify script (a bash block calling maxctrl alter maxscale passive)")
    script, outfiles = re.subn(r"^OUTFILE=.*$", f"OUTFILE={outfile}", script, flags=re.M)
    script, calls = re.subn(r"\bmaxctrl ", f"{maxctrl} ", script)
    if outfiles != 1 or calls < 2:
        raise SeedNotFound("the tutorial's notify script no longer has one OUTFILE= and its maxctrl calls")
    if release_on_backup is not None:
        branch = re.search(r'"BACKUP"\).*?alter maxscale passive true\n', script, re.S)
        if branch is None:
            raise SeedNotFound("the tutorial's BACKUP branch (alter maxscale passive true)")
        line = f"                  {maxctrl} call command mariadbmon release-locks {release_on_backup}\n"
        script = script[: branch.end()] + line + script[branch.end() :]
    return script

#!/usr/bin/env python3
"""Rewrite pyproject.toml for the production image: the package without the lab.

The container runs the exporter and the remediator only; the lab (network-namespace harness,
scenarios, the MaxScale emulator) is for `make demo`, the tests and the bench, and has no
business in a production image. The Dockerfile runs this before building the wheel; a test
builds the wheel the same way and checks its file list.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LAB = ("mxha.lab", "mxha.lab.emulator")


def strip_lab(text: str) -> str:
    for name in LAB:
        text = re.sub(rf'"{re.escape(name)}" = "[^"]*",\s*', "", text)  # package-dir entries
        text = re.sub(rf'"{re.escape(name)}",\s*', "", text)  # packages list
        text = re.sub(rf'^"{re.escape(name)}" = \[.*\]\n', "", text, flags=re.M)  # package-data
    if any(f'"{name}"' in text for name in LAB):
        raise SystemExit("production_pyproject: the lab is still listed; pyproject.toml changed shape")
    return text


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "pyproject.toml")
    path.write_text(strip_lab(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

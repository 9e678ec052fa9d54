"""Write the rule files: ``python -m mxha.alerts.generate [--out DIR] [--runbook-base URL] [--exporter-job JOB]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from mxha.alerts.rules import DEFAULT_RUNBOOK_BASE, VARIANTS, build_rules, header

FILES = {"production": "mxha-rules.yml", "lab": "mxha-rules-lab.yml"}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def render(variant: str, runbook_base: str = DEFAULT_RUNBOOK_BASE, exporter_job: str = "mxha-exporter") -> str:
    d = VARIANTS[variant]
    body = yaml.dump(build_rules(d, runbook_base, exporter_job), Dumper=_Dumper, sort_keys=False, width=120)
    return header(d) + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the mxha Prometheus rule files.")
    # relative to where it runs: an installed package's own folder (site-packages) is no place to write
    parser.add_argument("--out", default="alerts", help="output folder, created if missing (default: ./alerts)")
    parser.add_argument("--runbook-base", default=DEFAULT_RUNBOOK_BASE, help="URL of runbooks.md (anchors appended)")
    parser.add_argument("--exporter-job", default="mxha-exporter", help="Prometheus job name of the exporters")
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for variant, filename in FILES.items():
        path = Path(args.out) / filename
        path.write_text(render(variant, args.runbook_base, args.exporter_job))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The import graph: components meet only over HTTP or files whose model lives in the core.

Components are the card's top-level folders installed as ``mxha.<folder>``; the core is ``mxha/``
(the CLI dispatches to the components, as the composition root, and is the one exception).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

COMPONENTS = ("exporter", "remediator", "lab", "alerts", "dashboards")


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_component_imports_another() -> None:
    crossings = []
    for component in COMPONENTS:
        for path in sorted((REPO / component).glob("*.py")):
            for module in imports_of(path):
                parts = module.split(".")
                if len(parts) >= 2 and parts[0] == "mxha" and parts[1] in COMPONENTS and parts[1] != component:
                    crossings.append(f"{component}/{path.name} imports {module}")
    assert crossings == []


def test_the_core_imports_no_component_except_the_cli() -> None:
    crossings = []
    for path in sorted((REPO / "mxha").glob("*.py")):
        if path.name in ("cli.py", "__main__.py"):
            continue
        for module in imports_of(path):
            parts = module.split(".")
            if len(parts) >= 2 and parts[0] == "mxha" and parts[1] in COMPONENTS:
                crossings.append(f"mxha/{path.name} imports {module}")
    assert crossings == []


def test_the_hooks_import_nothing_heavy_at_module_level() -> None:
    """mxha check / mxha notify run in a fresh process per event: the core modules they load
    stay on the standard library (PyYAML is imported lazily by the config loader)."""
    heavy = {"requests", "flask", "prometheus_client", "waitress", "urllib3", "yaml"}
    hooks = ("notify.py", "healthcheck.py", "maxscale.py", "transport.py", "model.py", "notify_record.py")
    for name in (*hooks, "peers.py", "policy.py", "vip.py"):  # config.py: PyYAML, lazily
        tops = {m.split(".")[0] for m in imports_of(REPO / "mxha" / name) if "." not in m or m.startswith(tuple(heavy))}
        assert not (tops & heavy), f"mxha/{name}: {tops & heavy}"

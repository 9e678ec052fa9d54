"""Small helpers the tests share: node config files pointing at emulators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_node_config(path: Path, maxscale_url: str, **sections: Any) -> Path:
    doc: dict[str, Any] = {
        "node": sections.pop("node", "node1"),
        "maxscale": {
            "url": maxscale_url,
            "user": "admin",
            "password": "mariadb",
            "connect_timeout": 0.5,
            "read_timeout": 1.0,
            **sections.pop("maxscale", {}),
        },
        "check": {"expected_servers": ["server1", "server2"], "timeout": 1.0, **sections.pop("check", {})},
        "notify": {"state_file": str(path.parent / "notify-state.json"), "timeout": 2.0, **sections.pop("notify", {})},
    }
    doc.update(sections)
    path.write_text(yaml.safe_dump(doc))
    return path

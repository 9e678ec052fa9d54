"""``mxha lab maxctrl``: the few ``maxctrl`` commands the tutorial's scripts use, for the lab's
baseline scenario (the real ``maxctrl`` is a Node.js program not installable here).

Same defaults as maxctrl (``--hosts 127.0.0.1:8989``, ``-u admin``, ``-p mariadb``), same REST
calls, "OK" on success and ``Error: ...`` with exit 1 otherwise. Commands:
``alter maxscale KEY VALUE`` (PATCH /v1/maxscale), ``list servers`` (GET /v1/servers) and
``call command mariadbmon release-locks MONITOR`` (POST /v1/maxscale/modules/mariadbmon/release-locks).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mxha.maxscale import MaxScaleClient, MaxScaleError
from mxha.transport import BadUrl, check_http_url


def _value(text: str) -> Any:
    """maxctrl sends true/false as booleans and plain numbers as numbers."""
    if text in ("true", "false"):
        return text == "true"
    if text.isdigit():
        return int(text)
    return text


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="mxha lab maxctrl", description=__doc__)
    p.add_argument("--hosts", default="127.0.0.1:8989")
    p.add_argument("-u", "--user", default="admin")
    p.add_argument("-p", "--password", default="mariadb")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (maxctrl: -t, in ms)")
    p.add_argument("words", nargs="+")
    args = p.parse_args(argv)
    host = args.hosts.split(",")[0]
    try:
        check_http_url(f"http://{host}")
    except BadUrl as exc:
        print(f"mxha lab maxctrl: --hosts: must be HOST:PORT; it {exc}", file=sys.stderr)
        return 2
    client = MaxScaleClient(f"http://{host}", args.user, args.password, read_timeout=args.timeout)
    words = args.words
    try:
        if words[:2] == ["alter", "maxscale"] and len(words) == 4:
            client.request(
                "PATCH", "/v1/maxscale", {"data": {"attributes": {"parameters": {words[2]: _value(words[3])}}}}
            )
            print("OK")
            return 0
        if words[:4] == ["call", "command", "mariadbmon", "release-locks"] and len(words) == 5:
            client.call_module_command("mariadbmon", "release-locks", [words[4]])
            print("OK")
            return 0
        if words == ["list", "servers"]:
            for server in client.get_servers():
                attrs = server.get("attributes", {})
                print(json.dumps({"id": server.get("id"), "state": attrs.get("state")}))
            return 0
    except MaxScaleError as exc:
        print(f"Error: {exc}")
        return 1
    print(f"Error: unsupported command: {' '.join(words)}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

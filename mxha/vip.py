"""Who holds an address: asked of the kernel (netlink), not taken from keepalived's word."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import threading

NETLINK_ROUTE = 0
RTM_NEWADDR = 20
RTM_GETADDR = 22
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2

_seq_lock = threading.Lock()
_seq = 0


class VipLookupError(RuntimeError):
    pass


def _next_seq() -> int:
    global _seq
    with _seq_lock:
        _seq = (_seq + 1) & 0x7FFFFFFF
        return _seq


def parse_netlink_addresses(payload: bytes, seq: int) -> tuple[set[str], bool]:
    """Addresses in a chunk of RTM_NEWADDR replies; the flag says the dump is complete."""
    found: set[str] = set()
    offset = 0
    while offset + 16 <= len(payload):
        length, msg_type, _flags, msg_seq, _pid = struct.unpack_from("=IHHII", payload, offset)
        if length < 16 or offset + length > len(payload):
            raise VipLookupError("truncated netlink message")
        if msg_seq == seq:
            if msg_type == NLMSG_DONE:
                return found, True
            if msg_type == NLMSG_ERROR:
                (errno,) = struct.unpack_from("=i", payload, offset + 16)
                raise VipLookupError(f"netlink error {-errno}")
            if msg_type == RTM_NEWADDR:
                family = payload[offset + 16]
                attrs: dict[int, bytes] = {}
                pos = offset + 16 + 8
                end = offset + length
                while pos + 4 <= end:
                    rta_len, rta_type = struct.unpack_from("=HH", payload, pos)
                    if rta_len < 4:
                        break
                    attrs[rta_type] = payload[pos + 4 : pos + rta_len]
                    pos += (rta_len + 3) & ~3
                raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
                if raw is not None and family in (socket.AF_INET, socket.AF_INET6):
                    found.add(socket.inet_ntop(family, raw))
        offset += (length + 3) & ~3
    return found, False


def local_addresses_netlink(timeout: float = 1.0) -> set[str]:
    seq = _next_seq()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        header = struct.pack("=IHHII", 16 + 8, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        sock.send(header + struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0))
        addresses: set[str] = set()
        while True:
            chunk = sock.recv(65536)
            found, done = parse_netlink_addresses(chunk, seq)
            addresses |= found
            if done:
                return addresses


def addresses_from_ip_json(text: str) -> set[str]:
    """``ip -j addr`` output (the fallback, and what the fixtures recorded)."""
    try:
        links = json.loads(text)
    except ValueError as exc:
        raise VipLookupError(f"ip -j addr: not JSON: {exc}") from exc
    found: set[str] = set()
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            local = info.get("local") if isinstance(info, dict) else None
            if isinstance(local, str):
                found.add(str(ipaddress.ip_address(local)))
    return found


_IPV6_CANONICAL: dict[str, str] = {}  # inet_ntop's form -> ipaddress's; a host's addresses rarely change


def _canonical_ipv6(address: str) -> str:
    canonical = _IPV6_CANONICAL.get(address)
    if canonical is None:
        if len(_IPV6_CANONICAL) >= 1024:  # addresses come and go (privacy addresses): stay bounded
            _IPV6_CANONICAL.clear()
        canonical = _IPV6_CANONICAL[address] = str(ipaddress.ip_address(address))
    return canonical


def local_addresses() -> set[str]:
    """Every address on a local interface of this network namespace, normalised."""
    try:
        # inet_ntop's IPv4 form is already the canonical one; IPv6 is written as ipaddress writes it
        # (glibc's differs for IPv4-mapped ones), remembered: parsing it again was half the lookup
        return {a if ":" not in a else _canonical_ipv6(a) for a in local_addresses_netlink()}
    except (OSError, VipLookupError):
        import subprocess  # the fallback only: mxha check's follow-up asks netlink every interval

        try:
            proc = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, timeout=2, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise VipLookupError(f"cannot list local addresses: {exc}") from exc
        return addresses_from_ip_json(proc.stdout)

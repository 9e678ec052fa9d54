"""keepalived.conf for the lab and the tests (the hooks' documented shape, in one place)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VrrpSpec:
    name: str
    vrid: int
    priority: int
    vip: str  # address/prefix
    governing: bool = True


def render_keepalived_conf(
    *,
    router_id: str,
    interface: str,
    instances: list[VrrpSpec],
    check_script: str | None,
    notify_script: str | None,
    notify_fifo: str | None = None,
    recheck_script: str | None = None,
    password: str = "s3cretPW",
    check_interval: float = 1,
    check_timeout: float = 2,
    fall: int = 2,
    rise: int = 2,
    track_file: str | None = None,
) -> str:
    lines = ["global_defs {", f"  router_id {router_id}", "  enable_script_security", "  script_user root"]
    if notify_fifo:
        lines.append(f"  vrrp_notify_fifo {notify_fifo}")
    lines.append("}")
    if check_script:
        lines += [
            "vrrp_script chk_maxscale {",
            f'  script "{check_script}"',
            f"  interval {check_interval:g}",
            f"  timeout {check_timeout:g}",
            f"  fall {fall}",
            f"  rise {rise}",
            "}",
        ]
    if track_file:
        # the exporter's crash watch (check.track_file): 1 the moment MaxScale's REST port refuses
        # connections; weight 0 makes any non-zero value FAULT (a priority-0 advert: the backup takes
        # over after its skew time, not after the check's falls)
        lines += ["track_file maxscale_gone {", f'  file "{track_file}"', "  weight 0", "}"]
    for spec in instances:
        lines += [
            f"vrrp_instance {spec.name} {{",
            "  state BACKUP",
            f"  interface {interface}",
            f"  virtual_router_id {spec.vrid}",
            f"  priority {spec.priority}",
            "  advert_int 1",
        ]
        if spec.governing:
            lines += ["  authentication {", "    auth_type PASS", f"    auth_pass {password}", "  }"]
        lines += ["  virtual_ipaddress {", f"    {spec.vip} dev {interface}", "  }"]
        if spec.governing and check_script:
            lines += ["  track_script {", "    chk_maxscale", "  }"]
        if spec.governing and track_file:
            lines += ["  track_file {", "    maxscale_gone", "  }"]
        if spec.governing and notify_script:
            lines.append(f'  notify "{notify_script}"')
        if spec.governing and recheck_script:
            # a MASTER hearing a lower priority: a partition healing (keepalived runs no notify on
            # the node that stays MASTER), or one-way VRRP loss while it lasts
            lines.append(f'  notify_master_rx_lower_pri "{recheck_script}"')
        lines.append("}")
    return "\n".join(lines) + "\n"

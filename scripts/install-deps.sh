#!/usr/bin/env bash
# Installs the Debian packages the tests and the lab need, when they are missing.
# Idempotent; needs root for apt-get (without root it says what is missing and goes on,
# and the tests that need those programs skip with a message).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have keepalived || need+=(keepalived)
have promtool || need+=(prometheus)
have prometheus-alertmanager || need+=(prometheus-alertmanager)
have amtool || need+=(prometheus-alertmanager)
have nft || need+=(nftables)
have ip || need+=(iproute2)
have curl || need+=(curl)
have wget || need+=(wget)  # the example keepalived configs' lightweight check
have node || need+=(nodejs)
have mariadbd || need+=(mariadb-server)  # the remediator replicas' lock store, in the tests and the lab
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# the container image test (tests/test_image.py): podman with Debian's runc (crun cannot run
# containers in every sandbox), and debootstrap for the image's base, since no registry may be reachable
have podman || need+=(podman)
have runc || need+=(runc)
have debootstrap || need+=(debootstrap)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
# shellcheck disable=SC2207
need=($(printf '%s\n' "${need[@]}" | sort -u))
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages (need root to install): ${need[*]}" >&2
  exit 0
fi
echo "install-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

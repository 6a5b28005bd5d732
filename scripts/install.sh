#!/usr/bin/env bash
# The one install step for infralab, shared by the Makefile, .ci/run and vm/.
# Idempotent: each part is skipped when already done. Works as root, or through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAMP=.venv/.infralab-installed

APT_PACKAGES=(
  mininet openvswitch-switch iproute2 ethtool tcpdump iperf3 iputils-ping traceroute
  netcat-openbsd iptables procps python3 python3-venv python3-dev bind9-dnsutils
  nsd bind9 unbound knot-dnsutils ldnsutils dnsperf pdns-server pdns-backend-bind curl
  stun-client stun-server openssh-server openssh-client sudo
  kea-dhcp4-server kea-admin isc-dhcp-client udhcpc dnsmasq-base graphviz librsvg2-bin
  frr chromium
)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "infralab install: apt packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python environment: the machine's python3 (>= 3.11), project installed editable with dev extras.
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  PY=${PYTHON:-python3}
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".[dev]"
  touch "$STAMP"
fi

# Mininet comes from Debian's package (the 2.3.0 release, with the mnexec it was built with),
# not PyPI's 2.3.0.dev6 snapshot of 2020, whose Cluster Edition breaks every remote link on
# Python 3 (bytes added to str). The venv sees only that one package, through a link.
SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -L "$SITE/mininet" ]; then
  .venv/bin/pip uninstall -y -q mininet >/dev/null 2>&1 || true
  ln -sfn /usr/lib/python3/dist-packages/mininet "$SITE/mininet"
fi

# Open vSwitch: no systemd here, so start the daemons ourselves when they are not running
# (not when building the VM image in a chroot: there systemd starts it at boot).
if [ -z "${INFRALAB_NO_OVS_START:-}" ] && ! as_root ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  echo "infralab install: starting Open vSwitch (userspace datapath)"
  as_root /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  as_root ovs-vsctl --timeout=5 show >/dev/null
fi
echo "infralab install: ready ($ROOT/.venv)"

#!/usr/bin/env bash
# SMOKE=kernel, inside the course VM: the guest's Debian kernel has Open vSwitch's
# kernel datapath and netem, so here `auto` must choose both. Checks that `infralab up`
# says so, runs the scenario tests that touch routing, NAT, links and DHCP on them, and
# measures kernel vs userspace datapath and netem vs the delay line in this same guest
# (bench/kernel.py: ratios only; software emulation makes absolute figures meaningless).
# Every verdict line starts with KERNEL-SMOKE (vm/smoke.sh quotes them); exit 0 = pass.
set -uo pipefail
cd "$(dirname "$0")/.."
say() { echo "KERNEL-SMOKE: $*"; }
env_raw=/sys/firmware/qemu_fw_cfg/by_name/opt/infralab.env/raw  # vm/smoke.sh SMOKE_ENV
if [ -r "$env_raw" ]; then
  for kv in $(tr -d '\0' < "$env_raw"); do export "${kv?}"; done
  say "settings: $(tr -d '\0' < "$env_raw")"
fi
fail=0
modprobe openvswitch 2>/dev/null; modprobe sch_netem 2>/dev/null
say "kernel $(uname -r); modules: $(lsmod | awk '$1 ~ /^(openvswitch|sch_netem)$/ {printf "%s ", $1}')"
up=$(.venv/bin/infralab up duo --no-cli 2>&1)
echo "$up" | grep -E "datapath:|links:" | sed 's/^/KERNEL-SMOKE: up duo: /'
echo "$up" | grep -q "datapath: kernel" || { say "FAIL: auto did not choose the kernel datapath"; fail=1; }
echo "$up" | grep -q "links: netem" || { say "FAIL: auto did not choose netem"; fail=1; }
# a topology whose bridges really are on the kernel datapath while it runs
.venv/bin/infralab up duo --script /dev/stdin >/tmp/dp.log 2>&1 <<'EOF' || fail=1
sh ovs-vsctl --bare --columns=name,datapath_type list Bridge | tr '\n' ' ' | sed 's/^/bridges: /'; echo
sh ovs-dpctl show | head -3
EOF
grep -E "^bridges:|system@" /tmp/dp.log | sed 's/^/KERNEL-SMOKE: /'
if grep -q "netdev" /tmp/dp.log; then say "FAIL: a bridge is on the userspace datapath"; fail=1; fi
tests=${KERNEL_TESTS:-tests/scenarios/test_links.py,tests/scenarios/test_services_links.py,tests/scenarios/test_routing.py,tests/scenarios/test_nat.py,tests/scenarios/test_nat_lab.py,tests/scenarios/test_dhcp.py}
tests=${tests//,/ }  # (comma-separated: SMOKE_ENV's values have no spaces)
# shellcheck disable=SC2086
CI=true timeout "${KERNEL_TEST_LIMIT:-4200}" .venv/bin/python -m pytest -p no:cacheprovider -q -s -rfs \
  -o console_output_style=classic $tests >/tmp/pytest.log 2>&1
rc=$?
grep -oE "(LINK-NETEM|TB-TOPO delay|NAT-[A-Z]+ ).*" /tmp/pytest.log | sed 's/^/KERNEL-SMOKE: pytest: /'
grep -E "^(FAILED|ERROR|SKIPPED)|passed|failed" /tmp/pytest.log | sed 's/^/KERNEL-SMOKE: pytest: /'
[ "$rc" = 0 ] || { say "FAIL: scenario tests (status $rc)"; tail -60 /tmp/pytest.log; fail=1; }
if [ "${KERNEL_BENCH:-1}" = 1 ]; then
  timeout 3000 .venv/bin/python -m bench --only kernel --runs "${KERNEL_BENCH_RUNS:-5}" --seconds 3 \
    >/tmp/bench.log 2>&1 || { say "FAIL: bench"; tail -30 /tmp/bench.log; fail=1; }
  sed -n '/^Kernel paths/,$p' /tmp/bench.log | sed 's/^/KERNEL-SMOKE: bench: /'
fi
left=$(ovs-vsctl list-br; ip netns list)
[ -z "$left" ] || { say "FAIL: left behind: $left"; fail=1; }
ip link show ovs-system >/dev/null 2>&1 && { say "FAIL: ovs-system datapath left behind"; fail=1; }
tp=$(ovs-vsctl get Open_vSwitch . datapaths)  # the NAT zones' conntrack timeout policies
[ "$tp" = "{}" ] || { say "FAIL: conntrack timeout policies left behind: $tp"; fail=1; }
say "done, status $fail"
exit $fail

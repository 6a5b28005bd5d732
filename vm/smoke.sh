#!/usr/bin/env bash
# `make vm-smoke`: boot vm/out/infralab.img from its own boot loader under QEMU, the way
# VirtualBox would (BIOS, the disk on a SATA/AHCI controller), let the image's smoke unit
# run infralab inside, and pass when it reports INFRALAB-SMOKE-PASS on the serial console.
# SMOKE=check (default): `infralab validate world` + `infralab up duo`;
# SMOKE=demo: `make demo`, offline, as a student would run it;
# SMOKE=lab: the NAT lab's steps as typed at the prompt (labs/nat.cli), then `lab check nat`;
# SMOKE=labs: every lab's handout as typed, each on a fresh network (vm/labs-smoke.sh);
# SMOKE=kernel: the kernel datapath and netem chosen by auto, the routing, NAT, link and
# DHCP scenario tests on them, and kernel/userspace ratios (vm/kernel-smoke.sh).
# TREE=1: attach this checkout's committed code (git archive HEAD) as a second disk; the
# guest runs it in the image's environment (no rebuild for a code change).
# KVM when usable, else software emulation. The image is not changed (-snapshot).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-system-x86_64 >/dev/null; then  # (its own tool, installed when missing)
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-system-x86; }
fi
[ -f "${OUT:-vm/out}/infralab.img" ] || { echo "vm-smoke: no image; run 'make vm' first"; exit 1; }
OUT=${OUT:-vm/out}
SMOKE=${SMOKE:-check}
LIMIT=${LIMIT:-$([ "$SMOKE" = check ] && echo 1200 || echo 5400)}
extra=()
if [ -n "${SMOKE_ENV:-}" ]; then  # e.g. SMOKE_ENV="KERNEL_BENCH=0": settings for the guest
  extra+=(-fw_cfg "name=opt/infralab.env,string=${SMOKE_ENV//,/,,}")  # (QEMU: ,, is a comma)
fi
if [ "${TREE:-0}" = 1 ]; then
  git archive --format=tar HEAD > "$OUT/tree.tar"
  extra+=(-drive "file=$OUT/tree.tar,format=raw,if=none,id=tree"
          -device ide-hd,drive=tree,bus=ahci.1)
fi
log=$OUT/smoke-$SMOKE.log
rm -f "$log"  # a verdict comes only from this run's console
boot() {  # $@: acceleration options. Gives up early when the kernel has not started
  # within $START_LIMIT s (KVM under nested virtualisation can hang silently).
  echo "vm-smoke: booting the disk ($*), SMOKE=$SMOKE, at most ${LIMIT}s; console in $log"
  timeout "$LIMIT" qemu-system-x86_64 "$@" -m 3072 -smp 2 -nographic -no-reboot \
    -drive "file=$OUT/infralab.img,format=raw,if=none,id=disk" \
    -device ahci,id=ahci -device ide-hd,drive=disk,bus=ahci.0,bootindex=0 "${extra[@]}" \
    -fw_cfg "name=opt/infralab.smoke,string=$SMOKE" -snapshot -nic none \
    </dev/null >"$log" 2>&1 &
  local pid=$! waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge "${START_LIMIT:-240}" ] && ! grep -q "Linux version" "$log"; then
      echo "vm-smoke: no kernel output after ${waited}s, giving up on this boot"
      kill "$pid" 2>/dev/null || true
      break
    fi
    sleep 5; waited=$((waited + 5))
  done
  wait "$pid" 2>/dev/null || true
}
if [ -w /dev/kvm ] && [ "${ACCEL:-}" != tcg ]; then
  boot -enable-kvm -cpu qemu64  # (-cpu host trips over MSRs under nested virtualisation)
fi
if ! grep -q "INFRALAB-SMOKE" "$log" 2>/dev/null; then
  boot -machine accel=tcg  # software emulation: slow, but it works anywhere
fi
grep -aE "(KERNEL|LABS)-SMOKE" "$log" | tr -d '\r' || true
if grep -q "INFRALAB-SMOKE-PASS" "$log"; then
  echo "vm-smoke: PASS ($SMOKE, booted from the disk's own boot loader)"
else
  echo "vm-smoke: FAIL; the console's last lines:"; tail -30 "$log"; exit 1
fi

#!/usr/bin/env bash
# `make vm-smoke`: boot vm/out/infralab.img under QEMU (KVM when usable, else software
# emulation), let the image's smoke unit run infralab inside, and pass when it reports
# INFRALAB-SMOKE-PASS on the serial console. The image itself is not changed (-snapshot).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-vm/out}
LIMIT=${LIMIT:-1200}
log=$OUT/smoke.log
boot() {  # $@: acceleration options
  echo "vm-smoke: booting ($*), at most ${LIMIT}s; console in $log"
  timeout "$LIMIT" qemu-system-x86_64 "$@" -m 3072 -smp 2 -nographic -no-reboot \
    -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 infralab.smoke=1" \
    -drive "file=$OUT/infralab.img,format=raw,if=virtio" -snapshot -nic none \
    </dev/null >"$log" 2>&1 || true
}
if [ -w /dev/kvm ] && [ "${ACCEL:-}" != tcg ]; then
  boot -enable-kvm -cpu qemu64  # (-cpu host trips over MSRs under nested virtualisation)
fi
if ! grep -q "INFRALAB-SMOKE" "$log" 2>/dev/null; then
  boot -machine accel=tcg  # software emulation: slow, but it works anywhere
fi
if grep -q INFRALAB-SMOKE-PASS "$log"; then
  echo "vm-smoke: PASS (infralab validate world + infralab up duo inside the VM)"
else
  echo "vm-smoke: FAIL; the console's last lines:"; tail -30 "$log"; exit 1
fi

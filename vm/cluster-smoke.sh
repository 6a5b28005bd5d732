#!/usr/bin/env bash
# `make vm-cluster-smoke`: the two-kernel proof of cluster runs. Two guests of
# vm/out/infralab.img (-snapshot: the image is not changed) on one private virtual network
# (QEMU's socket netdev: a point-to-point Ethernet between the two, nothing else on it);
# each runs vm/cluster-role.sh through the image's smoke unit. Guest A runs `infralab up
# duo --servers A,B` by VXLAN and by GRE; this script passes when A reports PASS for both
# and nothing left. A throwaway ssh key, made here, is handed to both guests through QEMU's
# firmware config. Software emulation unless KVM works: slow, keep to duo.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-system-x86_64 >/dev/null; then  # (its own tool, installed when missing)
  apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
fi
OUT=${OUT:-vm/out}
LIMIT=${LIMIT:-3600}
PORT=${PORT:-47311}
key=$OUT/cluster-key
rm -f "$key" "$key.pub" "$OUT"/cluster-{a,b}.log
ssh-keygen -q -t ed25519 -N "" -C infralab-cluster-smoke -f "$key"
accel=(-machine accel=tcg)
[ -w /dev/kvm ] && [ "${ACCEL:-}" = kvm ] && accel=(-enable-kvm -cpu qemu64)
guest() {  # $1 role, $2 MAC, $3 netdev
  timeout "$LIMIT" qemu-system-x86_64 "${accel[@]}" -m 2048 -smp 1 -nographic -no-reboot \
    -drive "file=$OUT/infralab.img,format=raw,if=none,id=disk" \
    -device ahci,id=ahci -device ide-hd,drive=disk,bus=ahci.0,bootindex=0 \
    -fw_cfg "name=opt/infralab.smoke,string=$1" \
    -fw_cfg "name=opt/infralab.pubkey,file=$key.pub" \
    -fw_cfg "name=opt/infralab.key,file=$key" \
    -netdev "socket,id=n0,$3" -device "virtio-net-pci,netdev=n0,mac=$2" -snapshot \
    </dev/null >"$OUT/cluster-${1: -1}.log" 2>&1 &
  echo $!
}
echo "vm-cluster-smoke: two guests (${accel[*]}), at most ${LIMIT}s; consoles in $OUT/cluster-{a,b}.log"
b=$(guest clusterb 52:54:00:19:25:12 "listen=127.0.0.1:$PORT")
sleep 2
a=$(guest clustera 52:54:00:19:25:11 "connect=127.0.0.1:$PORT")
trap 'kill $a $b 2>/dev/null || true' EXIT
t0=$SECONDS
while kill -0 "$a" 2>/dev/null; do
  grep -q "INFRALAB-SMOKE-\(PASS\|FAIL\)" "$OUT/cluster-a.log" && break
  sleep 10
done
echo "vm-cluster-smoke: guest A done after $((SECONDS - t0))s"
grep -a "INFRALAB-CLUSTER" "$OUT/cluster-a.log" "$OUT/cluster-b.log" | sed 's/\r//' || true
if grep -q "INFRALAB-SMOKE-PASS" "$OUT/cluster-a.log"; then
  echo "vm-cluster-smoke: PASS (duo split over two kernels, by VXLAN and by GRE)"
else
  echo "vm-cluster-smoke: FAIL; guest A's last lines:"; tail -30 "$OUT/cluster-a.log"; exit 1
fi

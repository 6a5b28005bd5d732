#!/usr/bin/env bash
# `make vm`: a Debian 12 disk image with infralab and every peer it uses installed, so
# the labs work offline. debootstrap builds the system; the checkout's committed files go
# to /opt/infralab; the same install script as CI (scripts/install.sh) runs inside.
# Output in vm/out/: infralab.img (raw ext4 root filesystem), vmlinuz, initrd.img —
# boot them with QEMU (see vm/README.md; vm/smoke.sh does, and checks infralab inside).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-vm/out}
ROOTFS=$OUT/rootfs
IMG=$OUT/infralab.img
SIZE=${SIZE:-8G}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" -eq 0 ] || exec sudo -E bash "$0" "$@"

for tool in debootstrap mkfs.ext4 git; do
  command -v "$tool" >/dev/null || { echo "vm: needs $tool (apt-get install debootstrap e2fsprogs git)"; exit 2; }
done
mkdir -p "$OUT"

cleanup() {
  for m in dev/pts dev sys proc; do
    mountpoint -q "$ROOTFS/$m" && umount -l "$ROOTFS/$m" || true
  done
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
}
trap cleanup EXIT

if [ ! -f "$ROOTFS/.infralab-debootstrap" ]; then
  echo "vm: debootstrap bookworm into $ROOTFS"
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase \
    --include=linux-image-amd64,systemd-sysv,udev,kmod,sudo,ca-certificates,git,make,python3,python3-venv,iproute2,procps,less,nano \
    bookworm "$ROOTFS" "$MIRROR"
  touch "$ROOTFS/.infralab-debootstrap"
fi

echo "vm: the checkout (committed files) to /opt/infralab"
rm -rf "$ROOTFS/opt/infralab"
mkdir -p "$ROOTFS/opt/infralab"
git archive HEAD | tar -x -C "$ROOTFS/opt/infralab"

mount -t proc proc "$ROOTFS/proc"
mount --rbind /sys "$ROOTFS/sys"
mount --rbind /dev "$ROOTFS/dev"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"  # no daemons in the chroot
chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
echo "deb $MIRROR bookworm main" > "$ROOTFS/etc/apt/sources.list"

echo "vm: scripts/install.sh inside (apt packages, .venv, no Open vSwitch start)"
# the build machine's CA bundle stands in during the build (pip behind a TLS-inspecting
# proxy needs it); the image keeps its own Debian bundle
bundle="$ROOTFS/etc/ssl/certs/ca-certificates.crt"
cp "$bundle" "$OUT/ca-bundle.orig"
cp /etc/ssl/certs/ca-certificates.crt "$bundle"
chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  INFRALAB_NO_OVS_START=1 bash /opt/infralab/scripts/install.sh
cp "$OUT/ca-bundle.orig" "$bundle"

echo "vm: users, hostname, fstab, console, the smoke-test unit"
echo infralab > "$ROOTFS/etc/hostname"
echo "/dev/vda / ext4 defaults 0 1" > "$ROOTFS/etc/fstab"
chroot "$ROOTFS" bash -c 'id student >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo student;
  echo "student:infralab" | chpasswd; echo "root:infralab" | chpasswd;
  echo "student ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/student;
  chown -R student: /opt/infralab;
  systemctl enable openvswitch-switch >/dev/null 2>&1 || true'
install -m 0644 vm/infralab-smoke.service "$ROOTFS/etc/systemd/system/infralab-smoke.service"
chroot "$ROOTFS" systemctl enable infralab-smoke.service >/dev/null
cp "$ROOTFS"/boot/vmlinuz-* "$OUT/vmlinuz"
cp "$ROOTFS"/boot/initrd.img-* "$OUT/initrd.img"
cleanup
trap - EXIT

echo "vm: filesystem image $IMG ($SIZE, sparse)"
rm -f "$IMG"
mkfs.ext4 -F -q -L infralab -d "$ROOTFS" "$IMG" "$SIZE"
echo "vm: done: $IMG, $OUT/vmlinuz, $OUT/initrd.img (boot: vm/README.md; check: make vm-smoke)"
